"""PASCAL VOC layout: image lists, image-level labels and paths.

Labels come from, in order: a psa-style ``cls_labels.npy`` (dict name -> 20-vector), the
``Annotations/<name>.xml`` files, or the ``SegmentationClass/<name>.png`` masks.
"""
from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..classes import IGNORE_INDEX, NUM_CLASSES, VOC_CLASSES
from ..errors import DataError, LabelError
from ..text import counted

IMAGE_DIR = "JPEGImages"
SEG_DIR = "SegmentationClass"
ANNOT_DIR = "Annotations"
# JPEG's other suffixes (.jfif, .jpe) too: browsers save photos as .jfif, and grad-cam ships one.
JPEG_EXTENSIONS = (".jpg", ".jpeg", ".jfif", ".jpe")
IMAGE_EXTENSIONS = (*JPEG_EXTENSIONS, ".png", ".bmp", ".tif", ".tiff", ".webp")


COMMENT = re.compile(r"(?:^|\s)#.*")  # a list file's comment: "#" at a line's start or after white space


def read_image_list(path: str | os.PathLike, root: str | os.PathLike | None = None) -> list[str]:
    """Image names from a list file: one per line, or psa-style lines whose first column is a path.

    A line with spaces is one name when ``root`` has ``JPEGImages/<whole line>`` (``my image`` ->
    ``my image.jpg``), else psa's reading (its first column). Blank lines and ``#`` comments (at the start of a
    line or after a space, so that ``pic#1`` is a name) are skipped;
    Windows line endings are fine; duplicates are an error.
    """
    path = Path(path)
    if path.is_dir():
        raise DataError(f"list file {path} is a folder: give a text file of image names, one per line")
    if not path.exists():  # a pipe (bash's <(...)) or /dev/stdin is read like a file
        raise DataError(f"list file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(f"list file is not UTF-8 text: {path}") from None
    except OSError as exc:
        raise DataError(f"cannot read list file {path}: {exc.strerror or exc}") from None
    names: list[str] = []
    for line in text.splitlines():
        line = COMMENT.sub("", line).strip()
        if not line:
            continue
        whole = _image_name(line)
        if len(line.split()) > 1 and not (root is not None and find_image(Path(root), whole).exists()):
            whole = _image_name(line.split()[0])
        names.append(whole)
    if not names:
        raise DataError(f"list file holds no image names: {path}")
    counts = Counter(names)
    dupes = sorted(n for n, c in counts.items() if c > 1)
    if dupes:
        raise DataError(f"list file names an image twice: {', '.join(dupes[:5])} ({path})")
    return names


def _image_name(entry: str) -> str:
    """``JPEGImages/2007_000032.jpg`` or ``2007_000032`` -> ``2007_000032``."""
    name = os.path.basename(entry)
    stem, ext = os.path.splitext(name)
    return stem if ext.lower() in IMAGE_EXTENSIONS else name


def labels_to_indices(vector: np.ndarray, name: str = "", length: int = NUM_CLASSES) -> list[int]:
    """Indices of the positive entries of a ``length``-vector of image labels (20 for VOC); a LabelError for
    anything else: not numbers (e.g. strings '0'/'1'), not 1-D (a 4 x 5 array is no 20-vector), another length,
    or values other than 0 and 1."""
    vector = np.asarray(vector)
    if vector.dtype.kind not in "biuf":
        raise LabelError(f"label vector of {name or 'image'} is not numeric (dtype {vector.dtype}): image labels "
                         "must be the numbers 0 or 1 (or booleans)")
    if vector.ndim != 1:
        raise LabelError(f"label vector of {name or 'image'} is an array of shape {vector.shape}, expected a "
                         f"vector of {counted(length, 'entry', 'entries')}")
    if vector.shape[0] != length:
        raise LabelError(f"label vector of {name or 'image'} has {counted(vector.shape[0], 'entry', 'entries')}, "
                         f"expected {length}")
    bad = vector[~np.isin(vector.astype(np.float64), (0.0, 1.0))]
    if bad.size:
        raise LabelError(f"label vector of {name or 'image'} holds {bad[0]!r}: image labels must be 0 or 1 "
                         "(or booleans)")
    return [int(i) for i in np.flatnonzero(vector > 0.5)]


def load_cls_labels(path: str | os.PathLike) -> dict[str, list[int]]:
    """psa's ``cls_labels.npy``: a pickled dict name -> 20-vector, as class index lists.

    Vectors of another length (e.g. 1000 ImageNet classes, for a network used without a class map) are
    accepted when every image's vector has that length.
    """
    return _label_table(path)[0]


def _label_table(path: str | os.PathLike) -> tuple[dict[str, list[int]], int]:
    """(name -> class indices, the vectors' length) of a ``cls_labels.npy`` (see :func:`load_cls_labels`)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise LabelError(f"label file not found: {path}")
    try:
        obj = np.load(path, allow_pickle=True)
        table = obj.item() if obj.shape == () else None
    except Exception as exc:
        raise LabelError(f"cannot read label file {path}: {exc}") from None
    if not isinstance(table, dict):
        raise LabelError(f"label file {path} does not hold a dict name -> 20-vector (psa's cls_labels.npy)")
    shapes = {np.shape(v) for v in table.values()}
    shape = shapes.pop() if len(shapes) == 1 else ()
    length = shape[0] if len(shape) == 1 else NUM_CLASSES
    return {str(k): labels_to_indices(v, str(k), length) for k, v in table.items()}, length


def labels_from_xml(path: str | os.PathLike) -> list[int]:
    """Class indices named by the ``<object><name>`` tags of a VOC annotation file (a person's ``<part>``
    names are not classes); a name that is no VOC class is an error, not dropped."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise LabelError(f"cannot read annotation {path}: {exc}") from None
    found = {(obj.findtext("name") or "").strip() for obj in root.iter("object")}
    unknown = sorted(n for n in found if n not in VOC_CLASSES)
    if unknown:
        raise LabelError(f"annotation {path} names {', '.join(repr(n) for n in unknown)}, no PASCAL VOC class "
                         f"(the classes are: {', '.join(VOC_CLASSES)})")
    return sorted(VOC_CLASSES.index(n) for n in found)


def voc_annotation(filename: str, width: int, height: int, objects: list[tuple[str, tuple[int, ...], bool]],
                   folder: str = "", segmented: bool = False) -> ET.ElementTree:
    """A minimal VOC annotation: file name, size, and each object's (class name, box x0 y0 x1 y1, truncated)."""
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = folder
    ET.SubElement(root, "filename").text = filename
    dims = ET.SubElement(root, "size")
    for tag, value in (("width", width), ("height", height), ("depth", 3)):
        ET.SubElement(dims, tag).text = str(value)
    ET.SubElement(root, "segmented").text = str(int(segmented))
    for name, box, truncated in objects:
        node = ET.SubElement(root, "object")
        ET.SubElement(node, "name").text = name
        ET.SubElement(node, "pose").text = "Unspecified"
        ET.SubElement(node, "truncated").text = str(int(truncated))
        ET.SubElement(node, "difficult").text = "0"
        bndbox = ET.SubElement(node, "bndbox")
        for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), box):
            ET.SubElement(bndbox, tag).text = str(value)
    tree = ET.ElementTree(root)
    ET.indent(tree)
    return tree


# what a label PNG of another mode is, in words (PIL's modes)
LABEL_MODES = {"RGB": "a colour image (mode RGB: colours, not class indices)", "RGBA": "a colour image (mode RGBA)",
               "I;16": "a 16-bit image (mode I;16)", "I": "a 16/32-bit image (mode I)", "1": "a 1-bit image (mode 1)",
               "LA": "a grayscale image with alpha (mode LA)"}


def read_label_png(path: str | os.PathLike) -> np.ndarray:
    """A VOC label PNG as an H x W uint8 index map (palette indices, not colours); a LabelError for a file that
    is not a PNG (e.g. JPEG data under a .png name: its lossy values are no labels) or not palette/grayscale."""
    try:
        with Image.open(path) as img:
            if img.format != "PNG":
                raise LabelError(f"label file is not a PNG but {img.format or 'another format'} data: {path}")
            if img.mode not in ("P", "L"):
                raise LabelError(f"label PNG must be 8-bit palette or grayscale (one class index per pixel), got "
                                 f"{LABEL_MODES.get(img.mode, 'mode ' + img.mode)}: {path}")
            return np.asarray(img, dtype=np.uint8).copy()
    except LabelError:
        raise
    except (OSError, ValueError) as exc:
        raise LabelError(f"cannot read label PNG {path}: {exc}") from None


def labels_in(label: np.ndarray) -> list[int]:
    """Class indices present in a VOC label map (1..20 -> 0..19; background 0 and ignore 255 left out)."""
    return [int(v) - 1 for v in np.unique(label) if 1 <= v <= NUM_CLASSES]


def labels_from_segmentation(path: str | os.PathLike) -> list[int]:
    """Class indices present in a VOC segmentation mask file."""
    return labels_in(read_label_png(path))


def find_image(root: Path, name: str) -> Path:
    """``JPEGImages/<name>.jpg``, or the same name with another common extension."""
    base = root / IMAGE_DIR
    jpg = base / f"{name}.jpg"
    if jpg.exists():
        return jpg
    for ext in IMAGE_EXTENSIONS:
        for cand in (base / f"{name}{ext}", base / f"{name}{ext.upper()}"):
            if cand.exists():
                return cand
    return jpg  # reported as missing by the image loader


def check_layout(root: str | os.PathLike) -> Path:
    """``root`` as a Path, or a DataError when it is no folder with a JPEGImages/ folder in it."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data set folder not found: {root}")
    if not (root / IMAGE_DIR).is_dir():
        raise DataError(f"no {IMAGE_DIR}/ folder in {root} (expected PASCAL VOC layout)")
    return root


def image_names(root: str | os.PathLike) -> list[str]:
    """Every image in ``<root>/JPEGImages`` by name (sorted), or a DataError saying why there are none."""
    root = check_layout(root)
    names = sorted({p.stem for p in (root / IMAGE_DIR).iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS})
    if not names:
        raise DataError(f"no images in {root / IMAGE_DIR}")
    return names


@dataclass
class VOCDataset:
    """Names, image paths and image-level labels of a VOC-layout folder."""

    root: Path
    names: list[str]
    labels_path: Path | None = None
    _table: dict[str, list[int]] | None = field(default=None, repr=False)
    label_length: int | None = None  # the label file's vector length (None: labels from annotations or masks)

    @classmethod
    def open(cls, root: str | os.PathLike, list_file: str | os.PathLike | None = None,
             labels: str | os.PathLike | None = None) -> "VOCDataset":
        """Open a VOC-layout folder; ``list_file`` defaults to every image in JPEGImages."""
        root = check_layout(root)
        names = read_image_list(list_file, root) if list_file is not None else image_names(root)
        labels_path = Path(labels) if labels is not None else None
        if labels_path is None and (root / "cls_labels.npy").is_file():
            labels_path = root / "cls_labels.npy"
        table, length = _label_table(labels_path) if labels_path is not None else (None, None)
        return cls(root, names, labels_path, table, length)

    def check_label_length(self, classes: int, owner: str = "the network", verb: str = "has",
                           guessed: bool = False) -> None:
        """A LabelError, before any image runs, when the label file's vectors do not have one entry per class of
        ``owner`` (e.g. 21 entries with the background first, for a 20-class network): read as they are, every
        class index would be shifted. ``verb`` agrees with ``owner`` ("the CAMs ... have"). ``guessed``: the class
        count is an assumption (VOC's), so only the background-first length (one entry more) is refused."""
        if guessed and self.label_length != classes + 1:
            return
        if self.label_length is not None and self.label_length != classes:
            hint = (" (a background entry first? psa's cls_labels.npy has one entry per foreground class)"
                    if self.label_length == classes + 1 else "")
            raise LabelError(f"the label vectors of {self.labels_path} have "
                             f"{counted(self.label_length, 'entry', 'entries')}, but "
                             f"{owner} {verb} {counted(classes, 'class', 'classes')}{hint}")

    def __len__(self) -> int:
        return len(self.names)

    def image_path(self, name: str) -> Path:
        return find_image(self.root, name)

    def segmentation_path(self, name: str) -> Path:
        return self.root / SEG_DIR / f"{name}.png"

    def labels(self, name: str) -> list[int]:
        """Image-level class indices (0..19) of ``name``, from the first source that has it."""
        if self._table is not None:
            if name in self._table:
                return self._table[name]
            raise LabelError(f"image {name!r} is not in the label file {self.labels_path}")
        xml = self.root / ANNOT_DIR / f"{name}.xml"
        if xml.is_file():
            return labels_from_xml(xml)
        seg = self.segmentation_path(name)
        if seg.is_file():
            return labels_from_segmentation(seg)
        raise LabelError(
            f"no image labels for {name!r}: give --labels cls_labels.npy, or provide "
            f"{ANNOT_DIR}/{name}.xml or {SEG_DIR}/{name}.png"
        )

    def ground_truth(self, name: str) -> np.ndarray:
        """The segmentation mask of ``name`` (0 background, 1..20 classes, 255 ignore)."""
        path = self.segmentation_path(name)
        if not path.is_file():
            raise DataError(f"ground truth not found: {path}")
        return read_label_png(path)


__all__ = [
    "IGNORE_INDEX", "VOCDataset", "find_image", "labels_from_segmentation", "labels_from_xml",
    "labels_in", "labels_to_indices", "load_cls_labels", "read_image_list", "read_label_png", "voc_annotation",
]
