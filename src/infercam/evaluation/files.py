"""Scores of prediction files (CAM ``.npy`` files or label PNGs) against a VOC folder's ground truth PNGs."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from ..classes import IGNORE_INDEX, NUM_CLASSES
from ..data.voc import SEG_DIR, read_label_png
from ..errors import DataError, InferCamError
from ..io import load_cams
from ..text import counted
from .scores import TRUTH_PROBLEM, EvalResult, Pred, check_shape, evaluate_label_maps
from .sweep import DEFAULT_THRESHOLDS, CamDict, evaluate_cam_dicts



def _pred_shape(pred: np.ndarray | CamDict) -> tuple[int, ...] | None:
    if isinstance(pred, np.ndarray):
        return pred.shape
    return next((np.shape(m) for m in pred.values()), None)


def ignore_classes(gt: np.ndarray, classes: Sequence[int]) -> np.ndarray:
    """``gt`` with the pixels of VOC classes ``classes`` (0..19) set to ignore (255): a CAM source that cannot
    see a class (e.g. ImageNet networks and person) is scored on the others only."""
    if not len(classes):
        return gt
    return np.where(np.isin(gt, np.asarray(classes) + 1), IGNORE_INDEX, gt).astype(gt.dtype)


def ignore_predicted(pred: Pred, classes: Sequence[int]) -> Pred:
    """A prediction scored without the VOC classes ``classes`` (0..19): a CAM dict loses their maps (the pixel goes
    to the next class or background), a label map turns them into 255 (a miss for the true class, no false
    positive), so an ignored class takes no part in the mean."""
    if not isinstance(pred, dict):
        return ignore_classes(np.asarray(pred), classes)  # the same 255 as the ground truth's
    dropped = {int(c) for c in classes}
    return {c: m for c, m in pred.items() if c not in dropped}


def _read_pairs(pred_dir: str | os.PathLike, voc_root: str | os.PathLike, names: Iterable[str],
                suffix: str, reader: Callable[[Path], Pred], missing: str,
                skipped: list[str], notes: list[str], ignored: Sequence[int] = (),
                not_found: dict[str, list[str]] | None = None) -> Iterator[tuple[str, np.ndarray, Pred]]:
    """(name, ground truth, prediction) from files; missing, damaged or wrong-size files raise or, with
    ``missing="skip"``, are appended to ``skipped`` (a damaged or wrong-size one with its reason in ``notes``, a
    missing one under its kind, "prediction" or "ground truth", in ``not_found``);
    the classes ``ignored`` are left out of both (:func:`ignore_classes`, :func:`ignore_predicted`)."""
    if missing not in ("error", "skip"):
        raise ValueError(f"missing must be 'error' or 'skip', got {missing!r}")
    if isinstance(names, (str, os.PathLike)):  # else scored letter by letter: "prediction not found: <dir>/s.npy"
        raise ValueError(f"names must be a list of image names, not one string ({names!r}); read a list file with "
                         "infercam.data.voc.read_image_list")
    bad = [c for c in ignored
           if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or not 0 <= c < NUM_CLASSES]
    if bad:
        raise ValueError(f"ignored classes must be VOC class indices 0..{NUM_CLASSES - 1} (person: 14), got {bad}")
    found, first = False, ""  # first: why the first image left out was
    for name in names:
        pred_path = Path(pred_dir) / f"{name}{suffix}"
        gt_path = Path(voc_root) / SEG_DIR / f"{name}.png"
        absent = next((p for p in (pred_path, gt_path) if not p.is_file()), None)
        if absent is not None:
            what = "prediction" if absent == pred_path else "ground truth"
            reason = f"{what} not found: {absent}"
            if missing == "error":
                raise DataError(f"{reason} (use --missing skip to leave it out)")
            first = first or reason
            skipped.append(name)
            if not_found is not None:
                not_found.setdefault(what, []).append(name)
            continue
        try:  # a damaged or wrong-size file: named (a ground truth one as such), and left out only if asked
            pred = ignore_predicted(reader(pred_path), ignored)
            try:
                gt = ignore_classes(read_label_png(gt_path), ignored)
            except InferCamError as exc:
                raise DataError(f"{TRUTH_PROBLEM}{exc}") from None
            shape = _pred_shape(pred)
            if shape is not None:
                check_shape(shape, gt.shape, str(pred_path))
        except InferCamError as exc:
            if missing == "error":
                raise DataError(f"{exc} (use --missing skip to leave it out)") from None
            notes.append(str(exc))
            first = first or str(exc)
            skipped.append(name)
            continue
        found = True
        yield name, gt, pred
    if not found and skipped:
        raise DataError(f"every image was skipped ({counted(len(skipped), 'image')}): no prediction or ground truth "
                        f"files that could be scored (the first: {first})")


def evaluate_cams(pred_dir: str | os.PathLike, voc_root: str | os.PathLike, names: Iterable[str],
                  thresholds: Sequence[float] = DEFAULT_THRESHOLDS, missing: str = "error",
                  ignored: Sequence[int] = ()) -> EvalResult:
    """Score ``<pred_dir>/<name>.npy`` CAM files (psa or IRN layout, see :func:`infercam.io.load_cams`)
    against ``<voc_root>/SegmentationClass/<name>.png`` (without the classes ``ignored``); with ``missing="skip"``
    the result counts what was left out, names the images whose file was not found (``not_found``) and says why a
    damaged file was (``notes``), printing nothing."""
    skipped: list[str] = []
    notes: list[str] = []
    not_found: dict[str, list[str]] = {}
    result = evaluate_cam_dicts(_read_pairs(pred_dir, voc_root, names, ".npy", load_cams, missing, skipped,
                                            notes, ignored, not_found), thresholds)
    return dataclasses.replace(result, num_skipped=len(skipped), notes=notes, not_found=not_found)


def evaluate_labels(pred_dir: str | os.PathLike, voc_root: str | os.PathLike, names: Iterable[str],
                    missing: str = "error", ignored: Sequence[int] = ()) -> EvalResult:
    """Score ``<pred_dir>/<name>.png`` label maps against ``<voc_root>/SegmentationClass/<name>.png`` (without
    the classes ``ignored``); ``missing="skip"`` as :func:`evaluate_cams`."""
    skipped: list[str] = []
    notes: list[str] = []
    not_found: dict[str, list[str]] = {}
    result = evaluate_label_maps(_read_pairs(pred_dir, voc_root, names, ".png", read_label_png, missing, skipped,
                                             notes, ignored, not_found))
    return dataclasses.replace(result, num_skipped=len(skipped), notes=notes, not_found=not_found)
