"""Scores of label maps against VOC ground truth: confusion matrices, IoU, precision, recall.

Conventions (21 classes: 0 background, 1..20 the VOC classes):

* ground truth pixels of value 255 are ignored;
* a prediction of 255 on a valid ground truth pixel is a miss (a false negative of the ground truth
  class) and a false positive of no class;
* IoU_c = TP/(TP+FP+FN); mIoU is the mean over the classes with TP+FP+FN > 0, i.e. classes absent
  from both ground truth and prediction are left out of the mean;
* :class:`ConfusionMatrix` gives fractions in [0, 1]; :class:`EvalResult` (and its JSON) percentages.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable, Iterable, Sequence, TypeVar

import numpy as np

from ..classes import IGNORE_INDEX, NUM_CLASSES, VOC_CLASSES
from ..errors import DataError
from ..io import NORMALISED_PEAK
from ..text import counted, listed

SEG_CLASSES = NUM_CLASSES + 1
CLASS_NAMES: tuple[str, ...] = ("background",) + VOC_CLASSES

Pred = TypeVar("Pred")


def intersection_union(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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


def mean_iou(counts: np.ndarray) -> np.ndarray:
    """mIoU (fraction) over the classes present, for counts of shape (..., C, C+1)."""
    tp, union = intersection_union(counts)
    present = union > 0
    iou_sum = np.where(present, tp / np.maximum(union, 1), 0.0).sum(-1)
    return _ratio(iou_sum, present.sum(-1))


def check_values(arr: np.ndarray, classes: int, what: str) -> None:
    """Refuse label values other than 0..classes-1 and 255."""
    bad = ((arr < 0) | (arr >= classes)) & (arr != IGNORE_INDEX)
    if bad.any():
        raise DataError(f"{what} holds label {int(arr[bad][0])}; expected 0..{classes - 1} or {IGNORE_INDEX}")


def check_shape(pred_shape: tuple[int, ...], gt_shape: tuple[int, ...], what: str) -> None:
    """Refuse a prediction (``what``) whose size is not the ground truth's."""
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
        check_shape(pred.shape, gt.shape, "prediction")
        check_values(gt, self.num_classes, "ground truth")
        check_values(pred, self.num_classes, "prediction")
        valid = gt != IGNORE_INDEX
        cols = np.minimum(pred[valid].astype(np.intp), self.num_classes)
        codes = gt[valid].astype(np.intp) * (self.num_classes + 1) + cols
        self.counts += np.bincount(codes, minlength=self.counts.size).reshape(self.counts.shape)

    def iou(self) -> np.ndarray:
        """Per-class IoU; NaN for classes absent from both ground truth and prediction."""
        return _ratio(*intersection_union(self.counts))

    def miou(self) -> float:
        """Mean IoU over the classes present (fraction); NaN before any pixel is counted."""
        return float(mean_iou(self.counts))

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


def format_threshold(t: float) -> str:
    """'0.15' style text: two decimals unless the threshold needs more."""
    return f"{t:.2f}" if round(t, 2) == t else f"{t:g}"


def not_found_note(what: str, names: Sequence[str]) -> str:
    """The note for images left out because their ``what`` file ("prediction", "ground truth") does not exist,
    naming the first of them; eval and report say it alike."""
    return f"{what} not found for {counted(len(names), 'image')}: {listed(names)}"


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
    notes: list[str] = dataclasses.field(default_factory=list)  # why damaged files were left out
    # images left out because a file does not exist: "prediction" / "ground truth" -> their names, in list order
    not_found: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    cam_peak: float | None = None  # the largest CAM value scored (None for label maps): above 1, not normalised

    @property
    def num_images(self) -> int:
        return len(self.names)

    def unnormalised_note(self) -> str | None:
        """Why the scores do not fit the CAMs, when their values reach well above 1 (:data:`NORMALISED_PEAK`);
        else None."""
        if self.cam_peak is None or self.cam_peak <= NORMALISED_PEAK:
            return None
        return (f"the CAMs reach {self.cam_peak:.4g}, well above 1: they are not normalised as psa's and IRN's are (each "
                "map divided by its maximum), so background thresholds in [0, 1] do not fit them; normalise them first")

    def not_found_notes(self) -> list[str]:
        """One line per kind of file not found, naming the first images it left out, so that they can be found."""
        return [not_found_note(what, names) for what, names in self.not_found.items() if names]

    @property
    def per_class(self) -> dict[str, dict[str, float]]:
        """Class name -> {"iou", "precision", "recall"} in percent (NaN where undefined)."""
        scores = zip(self.confusion.iou(), self.confusion.precision(), self.confusion.recall())
        return {name: {"iou": 100 * i, "precision": 100 * p, "recall": 100 * r}
                for name, (i, p, r) in zip(CLASS_NAMES, scores)}

    def per_image_iou(self) -> dict[str, float]:
        """Image -> its IoU (%) at the best threshold: the mean over the classes in its truth or prediction."""
        out = {}
        for name, inter, union in zip(self.names, self.per_image_intersection, self.per_image_union):
            present = union > 0
            out[name] = float(100 * np.mean(inter[present] / union[present])) if present.any() else math.nan
        return out

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
            "notes": list(self.notes),
            "not_found": {what: list(names) for what, names in self.not_found.items()},
        }


# How a problem of the ground truth (not of the prediction) starts, in errors and in ``EvalResult.notes``;
# "ground truth not found: ..." reads the same way.
TRUTH_PROBLEM = "ground truth: "


def nothing_scored(images: int) -> str:
    """The error when every ground truth pixel of the images is 255 (ignore): no score is defined."""
    return (f"{TRUTH_PROBLEM}every pixel of the {counted(images, 'image')} is 255 (ignore): nothing to score; are "
            "the masks VOC class labels (0 background, c + 1 class c)?")


def add_named(name: str, add: Callable[[np.ndarray, Pred], None], gt: np.ndarray, pred: Pred) -> None:
    """Call ``add(gt, pred)``, prefixing input errors with the image name."""
    try:
        add(gt, pred)
    except DataError as exc:
        raise DataError(f"{name}: {exc}") from None


def evaluate_label_maps(items: Iterable[tuple[str, np.ndarray, np.ndarray]]) -> EvalResult:
    """Score in-memory label maps: ``items`` yields (name, ground truth, prediction), both H x W."""
    total = ConfusionMatrix(SEG_CLASSES)
    names, inters, unions = [], [], []
    for name, gt, pred in items:
        image = ConfusionMatrix(SEG_CLASSES)
        add_named(name, image.update, gt, pred)
        total.counts += image.counts
        inter, union = intersection_union(image.counts)
        names.append(name)
        inters.append(inter)
        unions.append(union)
    if not names:
        raise DataError("no images to evaluate")
    if not total.counts.any():
        raise DataError(nothing_scored(len(names)))
    return EvalResult(
        miou=100 * total.miou(), best_threshold=None, per_threshold={}, confusion=total, names=names,
        per_image_intersection=np.stack(inters), per_image_union=np.stack(unions),
    )
