"""CAM threshold sweeps: CAM dicts to label maps at a background threshold, and many thresholds scored at once.

CAMs are ``{class index 0..19: H x W map}`` dicts. A CAM becomes a label map by argmax over
``[t, maps...]`` with the background score ``t`` first, so ties go to background; class ``c`` becomes
label ``c + 1``. ``t`` is compared at the maps' precision (float32 for float32 maps), as psa's and IRN's
``np.pad(cams, ..., constant_values=t)`` does.

:class:`CamSweep` scores many thresholds in one pass: a pixel whose top map value is ``m`` takes its
top class for every threshold below ``m`` and background for the others, so one histogram over
(number of thresholds below ``m``, ground truth, top class) serves all thresholds.
"""
from __future__ import annotations

import math
from typing import Iterable, Mapping, Sequence

import numpy as np

from ..classes import IGNORE_INDEX, NUM_CLASSES
from ..errors import DataError
from .scores import (
    SEG_CLASSES, ConfusionMatrix, EvalResult, add_named, check_shape, check_values, intersection_union, mean_iou,
    nothing_scored,
)

CamDict = Mapping[int, np.ndarray]
MAX_THRESHOLDS = 1001  # a step of 0.001 over [0, 1]


def threshold_range(start: float, stop: float, step: float) -> np.ndarray:
    """Thresholds ``start, start+step, ..., stop`` (stop included), rounded to drop float noise."""
    if step <= 0 or stop < start:
        raise ValueError(f"bad threshold range {start}:{stop}:{step}: need step > 0 and stop >= start")
    count = int(math.floor((stop - start) / step + 1e-9)) + 1
    if count > MAX_THRESHOLDS:  # each threshold holds a confusion matrix per image
        raise ValueError(f"{count} thresholds in {start}:{stop}:{step}: at most {MAX_THRESHOLDS} (a step of "
                         f"{(stop - start) / (MAX_THRESHOLDS - 1):.2g} or more)")
    return np.round(start + step * np.arange(count), 10)


DEFAULT_THRESHOLDS = threshold_range(0.0, 0.95, 0.01)


def _top_class(cams: CamDict, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel, the top map value (-inf without maps) and its VOC label (class c -> c+1)."""
    if not cams:
        return np.full(shape, -np.inf), np.zeros(shape, np.intp)
    keys = np.array(sorted(int(k) for k in cams), dtype=np.intp)
    if keys[0] < 0 or keys[-1] >= NUM_CLASSES:
        raise DataError(f"CAM class indices must be 0..{NUM_CLASSES - 1}, got {keys.tolist()}")
    maps = [np.asarray(cams[k]) for k in sorted(cams, key=int)]
    maps = [m if np.issubdtype(m.dtype, np.floating) else m.astype(np.float64) for m in maps]
    for k, m in zip(keys, maps):
        check_shape(m.shape, shape, "CAM map")
        if not np.isfinite(m).all():  # NaN would be background to a threshold and foreground to the sweep
            raise DataError(f"the CAM map of class {int(k)} holds NaN or infinite values")
    if len(maps) == 1:
        return maps[0], np.full(shape, keys[0] + 1, np.intp)
    stacked = np.stack(maps)
    top = stacked.argmax(0)
    return np.take_along_axis(stacked, top[None], 0)[0], keys[top] + 1


def cam_to_label(cams: CamDict, threshold: float, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Label map (uint8, 0 background, c+1 for class c) of a CAM dict at a background threshold.

    ``shape`` is needed only when the dict is empty (no labelled class: all background).
    """
    if not math.isfinite(threshold):  # NaN: every pixel background
        raise ValueError(f"threshold must be a finite number, got {threshold}")
    if shape is None:
        if not cams:
            raise ValueError("cam_to_label needs shape for an empty CAM dict")
        shape = np.asarray(next(iter(cams.values()))).shape
    top, label = _top_class(cams, tuple(shape))
    return np.where(top > top.dtype.type(threshold), label, 0).astype(np.uint8)


def _sweep_confusions(hist: np.ndarray) -> np.ndarray:
    """(T, C, C+1) confusion counts per threshold from a (T+1, C, C+1) histogram over (number of
    thresholds below the pixel's top value, ground truth, top class label)."""
    at_or_below = np.cumsum(hist, axis=0)[:-1]  # pixels that are background at threshold i
    counts = hist.sum(0) - at_or_below
    counts[..., 0] += at_or_below.sum(-1)
    return counts


class CamSweep:
    """Accumulates CAM predictions against ground truth for many background thresholds at once."""

    def __init__(self, thresholds: Sequence[float] = DEFAULT_THRESHOLDS) -> None:
        self.thresholds = np.unique(np.asarray(thresholds, dtype=np.float64))
        if self.thresholds.size == 0:
            raise ValueError("CamSweep needs at least one threshold")
        if not np.isfinite(self.thresholds).all():
            raise ValueError(f"thresholds must be finite numbers, got {self.thresholds.tolist()}")
        self._shape = (self.thresholds.size + 1, SEG_CLASSES, SEG_CLASSES + 1)
        self._hist = np.zeros(self._shape, dtype=np.int64)
        self._images: list[tuple[np.ndarray, np.ndarray]] = []  # sparse per-image histograms
        self.peak = -math.inf  # the largest CAM value added

    def add(self, gt: np.ndarray, cams: CamDict) -> None:
        """Add one image: a ground truth label map and the CAM dict of its labelled classes."""
        gt = np.asarray(gt)
        if gt.ndim != 2:
            raise DataError(f"ground truth must be H x W, got shape {gt.shape}")
        check_values(gt, SEG_CLASSES, "ground truth")
        top, label = _top_class(cams, gt.shape)
        valid = gt != IGNORE_INDEX
        self.peak = max(self.peak, float(top.max(initial=-math.inf)))
        below = np.searchsorted(self.thresholds.astype(top.dtype), top[valid], side="left")
        codes = (below * SEG_CLASSES + gt[valid]) * (SEG_CLASSES + 1) + label[valid]
        hist = np.bincount(codes, minlength=self._hist.size)
        self._hist += hist.reshape(self._shape)
        nonzero = np.flatnonzero(hist)
        self._images.append((nonzero.astype(np.int32), hist[nonzero]))

    def _index(self, threshold: float) -> int:
        i = int(np.argmin(np.abs(self.thresholds - threshold)))
        if not np.isclose(self.thresholds[i], threshold, rtol=0, atol=1e-9):
            raise ValueError(f"threshold {threshold} is not in the sweep")
        return i

    def confusion(self, threshold: float) -> ConfusionMatrix:
        """The accumulated confusion matrix at one of the sweep's thresholds."""
        cm = ConfusionMatrix(SEG_CLASSES)
        cm.counts = _sweep_confusions(self._hist)[self._index(threshold)]
        return cm

    def mious(self) -> np.ndarray:
        """mIoU (fraction) for each threshold, in the order of ``self.thresholds``."""
        return mean_iou(_sweep_confusions(self._hist))

    def per_image(self, threshold: float) -> tuple[np.ndarray, np.ndarray]:
        """Per-image TP and TP+FP+FN counts (N, 21) at one threshold, in the order images were added."""
        i = self._index(threshold)
        counts = np.zeros((len(self._images),) + self._shape[1:], dtype=np.int64)
        for n, (codes, values) in enumerate(self._images):
            hist = np.zeros(self._hist.size, dtype=np.int64)
            hist[codes] = values
            counts[n] = _sweep_confusions(hist.reshape(self._shape))[i]
        return intersection_union(counts)

    def result(self, names: Sequence[str]) -> EvalResult:
        """Scores at every threshold and, in detail, at the best one (lowest threshold on ties)."""
        if len(names) != len(self._images):
            raise ValueError(f"{len(names)} names for {len(self._images)} images")
        mious = 100 * self.mious()
        best = int(np.nanargmax(mious)) if not np.isnan(mious).all() else 0
        t = float(self.thresholds[best])
        inter, union = self.per_image(t)
        return EvalResult(
            miou=float(mious[best]), best_threshold=t,
            per_threshold={float(k): float(v) for k, v in zip(self.thresholds, mious)},
            confusion=self.confusion(t), names=list(names),
            per_image_intersection=inter, per_image_union=union, cam_peak=self.peak,
        )


def evaluate_cam_dicts(items: Iterable[tuple[str, np.ndarray, CamDict]],
                       thresholds: Sequence[float] = DEFAULT_THRESHOLDS) -> EvalResult:
    """Score in-memory CAMs: ``items`` yields (name, ground truth label map, CAM dict)."""
    sweep = CamSweep(thresholds)
    names = []
    for name, gt, cams in items:
        add_named(name, sweep.add, gt, cams)
        names.append(name)
    if not names:
        raise DataError("no images to evaluate")
    if not sweep.confusion(sweep.thresholds[0]).counts.any():
        raise DataError(nothing_scored(len(names)))
    return sweep.result(names)
