"""Segmentation evaluation against VOC ground truth: confusion matrices, IoU, and CAM threshold sweeps.

Conventions (21 classes: 0 background, 1..20 the VOC classes):

* ground truth pixels of value 255 are ignored;
* a prediction of 255 on a valid ground truth pixel is a miss (a false negative of the ground truth
  class) and a false positive of no class;
* IoU_c = TP/(TP+FP+FN); mIoU is the mean over the classes with TP+FP+FN > 0, i.e. classes absent
  from both ground truth and prediction are left out of the mean;
* :class:`ConfusionMatrix` gives fractions in [0, 1]; :class:`EvalResult` (and its JSON) percentages.

CAMs are ``{class index 0..19: H x W map}`` dicts. A CAM becomes a label map by argmax over
``[t, maps...]`` with the background score ``t`` first, so ties go to background; class ``c`` becomes
label ``c + 1``. ``t`` is compared at the maps' precision (float32 for float32 maps), as psa's and IRN's
``np.pad(cams, ..., constant_values=t)`` does.

:class:`CamSweep` scores many thresholds in one pass: a pixel whose top map value is ``m`` takes its
top class for every threshold below ``m`` and background for the others, so one histogram over
(number of thresholds below ``m``, ground truth, top class) serves all thresholds.
"""
from __future__ import annotations

import dataclasses
import math
import os
import sys
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, Sequence, TypeVar

import numpy as np

from .classes import IGNORE_INDEX, NUM_CLASSES, VOC_CLASSES
from .data.voc import SEG_DIR, read_label_png
from .errors import DataError, InferCamError
from .io import load_cams

SEG_CLASSES = NUM_CLASSES + 1
CLASS_NAMES: tuple[str, ...] = ("background",) + VOC_CLASSES

CamDict = Mapping[int, np.ndarray]
Pred = TypeVar("Pred")


def threshold_range(start: float, stop: float, step: float) -> np.ndarray:
    """Thresholds ``start, start+step, ..., stop`` (stop included), rounded to drop float noise."""
    if step <= 0 or stop < start:
        raise ValueError(f"bad threshold range {start}:{stop}:{step}: need step > 0 and stop >= start")
    count = int(math.floor((stop - start) / step + 1e-9)) + 1
    return np.round(start + step * np.arange(count), 10)


DEFAULT_THRESHOLDS = threshold_range(0.0, 0.95, 0.01)


def _intersection_union(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """TP and TP+FP+FN per class from counts of shape (..., C, C+1): rows ground truth, columns
    prediction, the last column predictions of 255."""
    classes = counts.shape[-2]
    tp = np.diagonal(counts[..., :classes], axis1=-2, axis2=-1)
    union = counts.sum(-1) + counts[..., :classes].sum(-2) - tp
    return tp, union


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num/den, NaN where den is 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.maximum(den, 1), np.nan)


def _mean_iou(counts: np.ndarray) -> np.ndarray:
    """mIoU (fraction) over the classes present, for counts of shape (..., C, C+1)."""
    tp, union = _intersection_union(counts)
    present = union > 0
    iou_sum = np.where(present, tp / np.maximum(union, 1), 0.0).sum(-1)
    return _ratio(iou_sum, present.sum(-1))


def _check_values(arr: np.ndarray, classes: int, what: str) -> None:
    """Refuse label values other than 0..classes-1 and 255."""
    bad = ((arr < 0) | (arr >= classes)) & (arr != IGNORE_INDEX)
    if bad.any():
        raise DataError(f"{what} holds label {int(arr[bad][0])}; expected 0..{classes - 1} or {IGNORE_INDEX}")


def _check_shape(pred_shape: tuple[int, ...], gt_shape: tuple[int, ...], what: str) -> None:
    if tuple(pred_shape) != tuple(gt_shape):
        raise DataError(f"{what} is {'x'.join(map(str, pred_shape))} but the ground truth is "
                        f"{'x'.join(map(str, gt_shape))}")


class ConfusionMatrix:
    """Pixel counts by (ground truth, prediction) accumulated over images, ground truth 255 ignored.

    ``counts`` is (C, C+1): rows ground truth, columns prediction, the last column predictions of 255.
    """

    def __init__(self, num_classes: int = SEG_CLASSES) -> None:
        self.num_classes = num_classes
        self.counts = np.zeros((num_classes, num_classes + 1), dtype=np.int64)

    def update(self, gt: np.ndarray, pred: np.ndarray) -> None:
        """Add one image: ``gt`` and ``pred`` are same-shape integer label maps."""
        gt, pred = np.asarray(gt), np.asarray(pred)
        _check_shape(pred.shape, gt.shape, "prediction")
        _check_values(gt, self.num_classes, "ground truth")
        _check_values(pred, self.num_classes, "prediction")
        valid = gt != IGNORE_INDEX
        cols = np.minimum(pred[valid].astype(np.intp), self.num_classes)
        codes = gt[valid].astype(np.intp) * (self.num_classes + 1) + cols
        self.counts += np.bincount(codes, minlength=self.counts.size).reshape(self.counts.shape)

    def iou(self) -> np.ndarray:
        """Per-class IoU; NaN for classes absent from both ground truth and prediction."""
        return _ratio(*_intersection_union(self.counts))

    def miou(self) -> float:
        """Mean IoU over the classes present (fraction); NaN before any pixel is counted."""
        return float(_mean_iou(self.counts))

    def precision(self) -> np.ndarray:
        """Per-class TP/(TP+FP); NaN for classes never predicted."""
        tp = np.diagonal(self.counts)
        return _ratio(tp, self.counts[:, : self.num_classes].sum(0))

    def recall(self) -> np.ndarray:
        """Per-class TP/(TP+FN); NaN for classes absent from the ground truth."""
        return _ratio(np.diagonal(self.counts), self.counts.sum(1))

    def foreground(self) -> dict[str, float]:
        """Class-agnostic scores (fractions): any object class vs background. ``share`` and ``truth_share`` are the
        predicted and true object pixels per labelled pixel; a map that covers too little or too much shows here."""
        objects = slice(1, self.num_classes)
        predicted, true = self.counts[:, objects].sum(), self.counts[objects].sum()
        hits, total = self.counts[objects, objects].sum(), self.counts.sum()

        def fraction(num: int, den: int) -> float:
            return float(num / den) if den else math.nan

        return {"share": fraction(predicted, total), "truth_share": fraction(true, total),
                "recall": fraction(hits, true), "precision": fraction(hits, predicted)}


def _top_class(cams: CamDict, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel, the top map value (-inf without maps) and its VOC label (class c -> c+1)."""
    if not cams:
        return np.full(shape, -np.inf), np.zeros(shape, np.intp)
    keys = np.array(sorted(int(k) for k in cams), dtype=np.intp)
    if keys[0] < 0 or keys[-1] >= NUM_CLASSES:
        raise DataError(f"CAM class indices must be 0..{NUM_CLASSES - 1}, got {keys.tolist()}")
    maps = [np.asarray(cams[k]) for k in sorted(cams, key=int)]
    maps = [m if np.issubdtype(m.dtype, np.floating) else m.astype(np.float64) for m in maps]
    for m in maps:
        _check_shape(m.shape, shape, "CAM map")
    if len(maps) == 1:
        return maps[0], np.full(shape, keys[0] + 1, np.intp)
    stacked = np.stack(maps)
    top = stacked.argmax(0)
    return np.take_along_axis(stacked, top[None], 0)[0], keys[top] + 1


def cam_to_label(cams: CamDict, threshold: float, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Label map (uint8, 0 background, c+1 for class c) of a CAM dict at a background threshold.

    ``shape`` is needed only when the dict is empty (no labelled class: all background).
    """
    if shape is None:
        if not cams:
            raise ValueError("cam_to_label needs shape for an empty CAM dict")
        shape = np.asarray(next(iter(cams.values()))).shape
    top, label = _top_class(cams, tuple(shape))
    return np.where(top > top.dtype.type(threshold), label, 0).astype(np.uint8)


def format_threshold(t: float) -> str:
    """'0.15' style text: two decimals unless the threshold needs more."""
    return f"{t:.2f}" if round(t, 2) == t else f"{t:g}"


@dataclasses.dataclass(frozen=True, eq=False)
class EvalResult:
    """Scores of one evaluation; IoU, precision and recall in percent.

    ``per_image_intersection`` and ``per_image_union`` (N, 21) are the TP and TP+FP+FN counts of each
    image at the best threshold, for resampling (bootstrap) over images.
    """

    miou: float
    best_threshold: float | None
    per_threshold: dict[float, float]
    confusion: ConfusionMatrix
    names: list[str]
    per_image_intersection: np.ndarray
    per_image_union: np.ndarray
    num_skipped: int = 0

    @property
    def num_images(self) -> int:
        return len(self.names)

    @property
    def per_class(self) -> dict[str, dict[str, float]]:
        """Class name -> {"iou", "precision", "recall"} in percent (NaN where undefined)."""
        scores = zip(self.confusion.iou(), self.confusion.precision(), self.confusion.recall())
        return {name: {"iou": 100 * i, "precision": 100 * p, "recall": 100 * r}
                for name, (i, p, r) in zip(CLASS_NAMES, scores)}

    def to_dict(self) -> dict:
        """The summary as JSON-ready data (no per-image counts); undefined (NaN) scores become None."""
        def num(x: float) -> float | None:
            return None if math.isnan(x) else round(float(x), 4)

        return {
            "miou": num(self.miou),
            "best_threshold": self.best_threshold,
            "per_threshold": {format_threshold(t): num(v) for t, v in self.per_threshold.items()},
            "per_class": {c: {k: num(v) for k, v in s.items()} for c, s in self.per_class.items()},
            "foreground": {k: num(100 * v) for k, v in self.confusion.foreground().items()},
            "num_images": self.num_images,
            "num_skipped": self.num_skipped,
        }


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
        self._shape = (self.thresholds.size + 1, SEG_CLASSES, SEG_CLASSES + 1)
        self._hist = np.zeros(self._shape, dtype=np.int64)
        self._images: list[tuple[np.ndarray, np.ndarray]] = []  # sparse per-image histograms

    def add(self, gt: np.ndarray, cams: CamDict) -> None:
        """Add one image: a ground truth label map and the CAM dict of its labelled classes."""
        gt = np.asarray(gt)
        if gt.ndim != 2:
            raise DataError(f"ground truth must be H x W, got shape {gt.shape}")
        _check_values(gt, SEG_CLASSES, "ground truth")
        top, label = _top_class(cams, gt.shape)
        valid = gt != IGNORE_INDEX
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
        return _mean_iou(_sweep_confusions(self._hist))

    def per_image(self, threshold: float) -> tuple[np.ndarray, np.ndarray]:
        """Per-image TP and TP+FP+FN counts (N, 21) at one threshold, in the order images were added."""
        i = self._index(threshold)
        counts = np.zeros((len(self._images),) + self._shape[1:], dtype=np.int64)
        for n, (codes, values) in enumerate(self._images):
            hist = np.zeros(self._hist.size, dtype=np.int64)
            hist[codes] = values
            counts[n] = _sweep_confusions(hist.reshape(self._shape))[i]
        return _intersection_union(counts)

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
            per_image_intersection=inter, per_image_union=union,
        )


def _named(name: str, add: Callable[[np.ndarray, Pred], None], gt: np.ndarray, pred: Pred) -> None:
    """Call ``add(gt, pred)``, prefixing input errors with the image name."""
    try:
        add(gt, pred)
    except DataError as exc:
        raise DataError(f"{name}: {exc}") from None


def evaluate_cam_dicts(items: Iterable[tuple[str, np.ndarray, CamDict]],
                       thresholds: Sequence[float] = DEFAULT_THRESHOLDS) -> EvalResult:
    """Score in-memory CAMs: ``items`` yields (name, ground truth label map, CAM dict)."""
    sweep = CamSweep(thresholds)
    names = []
    for name, gt, cams in items:
        _named(name, sweep.add, gt, cams)
        names.append(name)
    if not names:
        raise DataError("no images to evaluate")
    return sweep.result(names)


def evaluate_label_maps(items: Iterable[tuple[str, np.ndarray, np.ndarray]]) -> EvalResult:
    """Score in-memory label maps: ``items`` yields (name, ground truth, prediction), both H x W."""
    total = ConfusionMatrix(SEG_CLASSES)
    names, inters, unions = [], [], []
    for name, gt, pred in items:
        image = ConfusionMatrix(SEG_CLASSES)
        _named(name, image.update, gt, pred)
        total.counts += image.counts
        inter, union = _intersection_union(image.counts)
        names.append(name)
        inters.append(inter)
        unions.append(union)
    if not names:
        raise DataError("no images to evaluate")
    return EvalResult(
        miou=100 * total.miou(), best_threshold=None, per_threshold={}, confusion=total, names=names,
        per_image_intersection=np.stack(inters), per_image_union=np.stack(unions),
    )


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


def _read_pairs(pred_dir: str | os.PathLike, voc_root: str | os.PathLike, names: Iterable[str],
                suffix: str, reader: Callable[[Path], Pred], missing: str,
                skipped: list[str], ignored: Sequence[int] = ()) -> Iterator[tuple[str, np.ndarray, Pred]]:
    """(name, ground truth, prediction) from files; missing files raise or, with ``missing="skip"``,
    are appended to ``skipped``; ground truth of the classes ``ignored`` is ignored."""
    if missing not in ("error", "skip"):
        raise ValueError(f"missing must be 'error' or 'skip', got {missing!r}")
    found = False
    for name in names:
        pred_path = Path(pred_dir) / f"{name}{suffix}"
        gt_path = Path(voc_root) / SEG_DIR / f"{name}.png"
        absent = next((p for p in (pred_path, gt_path) if not p.is_file()), None)
        if absent is not None:
            if missing == "error":
                kind = "prediction" if absent == pred_path else "ground truth"
                raise DataError(f"{kind} not found: {absent} (use --missing skip to leave it out)")
            skipped.append(name)
            continue
        try:
            pred = reader(pred_path)
        except InferCamError as exc:  # a damaged prediction file: named, and left out only if asked
            if missing == "error":
                raise DataError(f"{exc} (use --missing skip to leave it out)") from None
            print(f"infercam eval: note: {exc}; left out", file=sys.stderr)
            skipped.append(name)
            continue
        gt = ignore_classes(read_label_png(gt_path), ignored)
        shape = _pred_shape(pred)
        if shape is not None:
            _check_shape(shape, gt.shape, str(pred_path))
        found = True
        yield name, gt, pred
    if not found and skipped:
        raise DataError(f"all {len(skipped)} images were skipped: no prediction or ground truth files")


def evaluate_cams(pred_dir: str | os.PathLike, voc_root: str | os.PathLike, names: Iterable[str],
                  thresholds: Sequence[float] = DEFAULT_THRESHOLDS, missing: str = "error",
                  ignored: Sequence[int] = ()) -> EvalResult:
    """Score ``<pred_dir>/<name>.npy`` CAM files (psa or IRN layout, see :func:`infercam.io.load_cams`)
    against ``<voc_root>/SegmentationClass/<name>.png`` (without the classes ``ignored``)."""
    skipped: list[str] = []
    result = evaluate_cam_dicts(_read_pairs(pred_dir, voc_root, names, ".npy", load_cams, missing, skipped,
                                            ignored), thresholds)
    return dataclasses.replace(result, num_skipped=len(skipped))


def evaluate_labels(pred_dir: str | os.PathLike, voc_root: str | os.PathLike, names: Iterable[str],
                    missing: str = "error", ignored: Sequence[int] = ()) -> EvalResult:
    """Score ``<pred_dir>/<name>.png`` label maps against ``<voc_root>/SegmentationClass/<name>.png`` (without
    the classes ``ignored``)."""
    skipped: list[str] = []
    result = evaluate_label_maps(_read_pairs(pred_dir, voc_root, names, ".png", read_label_png, missing, skipped,
                                             ignored))
    return dataclasses.replace(result, num_skipped=len(skipped))
