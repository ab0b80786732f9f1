"""Paired bootstrap intervals over images for differences in mIoU between two methods."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def miou_from_counts(intersection: np.ndarray, union: np.ndarray) -> float:
    """mIoU (%) from per-class intersection and union totals; classes with empty union are left out."""
    valid = union > 0
    return float(np.mean(intersection[valid] / union[valid]) * 100) if valid.any() else float("nan")


@dataclass(frozen=True)
class Interval:
    """A difference (b - a, in mIoU points) with its bootstrap percentile interval."""

    difference: float
    low: float
    high: float
    level: float = 0.95

    def __str__(self) -> str:
        return f"{self.difference:+.2f} [{self.low:+.2f}, {self.high:+.2f}]"


def paired_bootstrap(inter_a: np.ndarray, union_a: np.ndarray, inter_b: np.ndarray, union_b: np.ndarray,
                     samples: int = 2000, level: float = 0.95, seed: int = 0) -> Interval:
    """Resample images with replacement (the same images for both methods) and take the mIoU difference.

    Inputs are per-image (N, classes) intersection and union pixel counts.
    """
    n = inter_a.shape[0]
    if n == 0:
        raise ValueError("no images to resample")
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, n, size=(samples, n))
    counts = np.stack([np.bincount(row, minlength=n) for row in picks]).astype(np.float64)  # samples x N
    diffs = np.array([
        miou_from_counts(w @ inter_b, w @ union_b) - miou_from_counts(w @ inter_a, w @ union_a) for w in counts
    ])
    full = miou_from_counts(inter_b.sum(0), union_b.sum(0)) - miou_from_counts(inter_a.sum(0), union_a.sum(0))
    tail = (1 - level) / 2 * 100
    return Interval(full, float(np.percentile(diffs, tail)), float(np.percentile(diffs, 100 - tail)), level)


def paired_mean_bootstrap(a: np.ndarray, b: np.ndarray, groups: np.ndarray | None = None, samples: int = 2000,
                          level: float = 0.95, seed: int = 0) -> Interval:
    """Mean of ``b - a`` over paired items (e.g. two methods' IoU per object), with a percentile interval from
    resampling ``groups`` with replacement (e.g. photos: the objects of one photo are not independent, so they
    are drawn together); without groups each item is its own group."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"expected two equal 1-d arrays, got shapes {a.shape} and {b.shape}")
    if a.size == 0:
        raise ValueError("no items to resample")
    labels = np.arange(a.size) if groups is None else np.unique(np.asarray(groups), return_inverse=True)[1]
    n = int(labels.max()) + 1
    diff_sum = np.bincount(labels, weights=b - a, minlength=n)  # per group: sum of differences, item count
    size = np.bincount(labels, minlength=n).astype(np.float64)
    picks = np.random.default_rng(seed).integers(0, n, size=(samples, n))
    diffs = diff_sum[picks].sum(axis=1) / size[picks].sum(axis=1)
    tail = (1 - level) / 2 * 100
    return Interval(float(np.mean(b - a)), float(np.percentile(diffs, tail)), float(np.percentile(diffs, 100 - tail)),
                    level)
