"""What a run over a data set writes per image, and whether an earlier run finished it (resume): CAM files,
heatmaps and patches (:class:`Outputs`) or label PNGs (:class:`LabelOutputs`)."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
from PIL import Image

from ..classes import IGNORE_INDEX, VOC_CLASSES
from ..data.voc import read_label_png
from ..errors import InferCamError
from ..io import (
    cam_file_problem, check_dir, ensure_dir, heatmap_path, save_cams, save_heatmaps, save_image, save_label_png,
    write_json,
)
from ..method.engine import InferCamResult
from ..method.split import Box

MISSING = "not written"  # an output file a previous run did not write (the image is simply to do)


@dataclass
class Outputs:
    """Where one run writes: CAM files, heatmap overlays and (for InferCam) the patches."""

    cam_dir: Path | None = None
    fmt: str = "psa"
    heatmap_dir: Path | None = None
    split_dir: Path | None = None
    class_names: tuple[str, ...] = VOC_CLASSES  # names in the heatmap files: the network's classes
    needs_labels: ClassVar[bool] = True  # maps are made for the image's classes: an image without any is skipped

    def __post_init__(self) -> None:
        if not (self.cam_dir or self.heatmap_dir or self.split_dir):
            raise InferCamError("nothing to write: give --out-cam and/or --heatmap")
        for folder, what in self._folders():
            check_dir(folder, what)

    def _folders(self) -> list[tuple[Path, str]]:
        named = ((self.cam_dir, "CAM folder"), (self.heatmap_dir, "heatmap folder"), (self.split_dir, "split folder"))
        return [(folder, what) for folder, what in named if folder is not None]

    @property
    def folder(self) -> Path:
        """The first output folder (the one a torchrun job's merged manifest is written to)."""
        return self.cam_dir or self.heatmap_dir or self.split_dir  # type: ignore[return-value]

    @property
    def folders(self) -> list[Path]:
        """Every output folder, once however it is spelt (a relative path, a link): each holds the run's manifest
        and lock."""
        unique: dict[str, Path] = {}
        for folder, _ in self._folders():
            unique.setdefault(os.path.realpath(folder), folder)
        return list(unique.values())

    def prepare(self) -> None:
        """Create the output folders (done when the run starts, after its inputs were checked)."""
        for folder, what in self._folders():
            ensure_dir(folder, what)

    def problem(self, name: str, labels: list[int], size: tuple[int, int], since: float | None = None) -> str | None:
        """Why the outputs of this image (of ``size`` H, W) are not finished: ``MISSING`` when a file is not
        there, a reason when the CAM file is damaged or from other labels or another image, or a file is older
        than ``since`` (the start of the --overwrite run this one continues); None when done."""
        if self.cam_dir is not None:
            path = self.cam_dir / f"{name}.npy"
            if not path.exists():
                return MISSING
            reason = cam_file_problem(path, labels, size) or older_than(path, since)
            if reason is not None:
                return reason
        if self.split_dir is not None:
            reason = split_problem(self.split_dir, name, size) or older_than(self.split_dir / f"{name}.json", since)
            if reason is not None:
                return reason
        if self.heatmap_dir is not None:
            for c in labels:
                path = heatmap_path(self.heatmap_dir, name, c, self.class_names)
                reason = picture_problem(path, size) or older_than(path, since)
                if reason is not None:
                    return reason
        return None

    def write(self, name: str, image: np.ndarray, result: InferCamResult | dict[int, np.ndarray]) -> None:
        """Write every requested output; the CAM file last, since its presence marks the image done."""
        cams = result.cams if isinstance(result, InferCamResult) else result
        if self.split_dir is not None and isinstance(result, InferCamResult):
            save_split(self.split_dir, name, image, result)
        if self.heatmap_dir is not None and cams:
            save_heatmaps(self.heatmap_dir, name, image, cams, self.class_names)
        if self.cam_dir is not None:
            save_cams(self.cam_dir / f"{name}.npy", cams, self.fmt)


@dataclass
class LabelOutputs:
    """Where a run of label maps writes: one palette PNG ``<name>.png`` per image (pseudo labels, predictions)."""

    folder: Path
    source: Path | None = None  # the folder of <name>.npy CAM files the labels are made from, if any
    needs_labels: bool = True  # pseudo labels hold the image's classes only; predictions need no image labels

    def __post_init__(self) -> None:
        check_dir(self.folder, "label folder")

    def prepare(self) -> None:
        """Create the folder (done when the run starts)."""
        ensure_dir(self.folder, "label folder")

    @property
    def folders(self) -> list[Path]:
        return [self.folder]

    def problem(self, name: str, labels: list[int], size: tuple[int, int], since: float | None = None) -> str | None:
        """``MISSING`` when the image's PNG is not there, a reason when it does not load, is not of ``size``, holds
        a class the image is not labelled with (the label file changed; with ``needs_labels``), is older than its
        source CAM file (that was computed again) or than ``since``; None when done."""
        path = self.folder / f"{name}.png"
        if not path.exists():
            return MISSING
        try:
            label = read_label_png(path)
        except InferCamError as exc:
            return str(exc)
        if label.shape != tuple(size):
            return f"{path} is {label.shape[0]}x{label.shape[1]}, not the image's {size[0]}x{size[1]}"
        stray = sorted(set(np.unique(label).tolist()) - {0, IGNORE_INDEX} - {c + 1 for c in labels})
        if stray and self.needs_labels:
            return f"{path} holds class {stray[0] - 1}, which the image is not labelled with"
        cam = None if self.source is None else self.source / f"{name}.npy"
        if cam is not None and cam.exists() and cam.stat().st_mtime > path.stat().st_mtime:
            return f"{path} is older than {cam}, which was written again since"
        return older_than(path, since)

    def write(self, name: str, image: np.ndarray, result: np.ndarray) -> None:
        save_label_png(self.folder / f"{name}.png", result)


def older_than(path: Path, since: float | None) -> str | None:
    """A reason when ``path`` was written before ``since`` (a time stamp): by the run an --overwrite run replaced;
    None when it is newer, or there is no such run."""
    if since is None or path.stat().st_mtime >= since:
        return None
    return f"{path} was written before the --overwrite run this one continues"


def picture_problem(path: Path, size: tuple[int, int]) -> str | None:
    """``MISSING`` when the picture is not there, a reason when it does not decode whole or is not ``size`` (H, W);
    None when it is usable."""
    if not path.exists():
        return MISSING
    try:
        with Image.open(path) as img:
            img.load()
            shape = (img.height, img.width)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        return f"{path} does not decode ({type(exc).__name__}: {exc})"
    return None if shape == tuple(size) else f"{path} is {shape[0]}x{shape[1]}, not {size[0]}x{size[1]}"


def split_problem(folder: Path, name: str, size: tuple[int, int]) -> str | None:
    """Why ``save_split``'s files of an image of ``size`` are not finished (the record, then each patch whole and of
    its box's size); None when they are."""
    record = folder / f"{name}.json"
    if not record.exists():
        return MISSING
    try:
        data = json.loads(record.read_text(encoding="utf-8"))
        boxes = [Box(*b) for b in data["boxes"]]
        recorded = tuple(data["image_size"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"{record} is damaged ({type(exc).__name__}: {exc})"
    if recorded != tuple(size) or len(boxes) != 4:
        return f"{record} is of another image ({recorded[0]}x{recorded[-1]}, {len(boxes)} patches)"
    for k, box in enumerate(boxes, start=1):
        reason = picture_problem(folder / f"{name}_{k}.jpg", (box.height, box.width))
        if reason is not None:
            return reason
    return None


def save_split(folder: Path, name: str, image: np.ndarray, result: InferCamResult) -> None:
    """The four patches as ``<name>_1.jpg`` .. ``_4.jpg`` (the authors' layout) and ``<name>.json``."""
    for k, box in enumerate(result.boxes, start=1):
        rows, cols = box.slices()
        save_image(folder / f"{name}_{k}.jpg", np.ascontiguousarray(image[rows, cols]))
    write_json(folder / f"{name}.json", {
        "image_size": list(image.shape[:2]),
        "boxes": [list(b) for b in result.boxes],
        "box_order": ["top-left", "top-right", "bottom-left", "bottom-right"],
        "centers": {int(c): list(p) for c, p in zip(sorted(result.baseline), result.centers)},
    })
