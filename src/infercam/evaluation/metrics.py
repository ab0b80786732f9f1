"""Scores of one class map against an object region, and of the seams a patch merge can leave.

Used by ``bench/real_photos.py`` and the demo for photos with hand-drawn boxes (no pixel ground truth):

* :func:`mass_share`: the share of the map's mass inside the region (1 = nothing outside);
* :func:`best_iou`: the best IoU of the thresholded map (map >= t) with the region over thresholds, each object at
  its own best threshold (an upper bound: a pseudo label uses one threshold for every image);
* :func:`iou_curve` and :func:`common_threshold`: the IoU at every threshold, and the one threshold best for a set
  of objects together (chosen on some objects, it can be applied to others);
* :func:`seam_ratio`: the mean absolute step of the map across the borders of the patch boxes, against the mean
  step between neighbouring rows/columns elsewhere. A merge without seams gives about 1 (a border is like any
  other row); a map that jumps at the borders gives more.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

BOX_THRESHOLDS = np.round(np.arange(0.05, 0.951, 0.05), 2)


def mass_share(cam: np.ndarray, region: np.ndarray) -> float:
    """Fraction of ``cam``'s mass (non-negative H x W) inside the bool ``region``; 0 for an all-zero map."""
    total = float(cam.sum())
    return float(cam[region].sum()) / total if total > 0 else 0.0


def iou(mask: np.ndarray, region: np.ndarray) -> float:
    union = np.logical_or(mask, region).sum()
    return float(np.logical_and(mask, region).sum() / union) if union else 0.0


def iou_curve(cam: np.ndarray, region: np.ndarray, thresholds: Sequence[float] = BOX_THRESHOLDS) -> np.ndarray:
    """The IoU of ``cam >= t`` with ``region`` at each of ``thresholds`` (maps in [0, 1])."""
    return np.array([iou(cam >= t, region) for t in thresholds])


def best_on_curve(curve: Sequence[float], thresholds: Sequence[float] = BOX_THRESHOLDS) -> tuple[float, float]:
    """(best IoU, its threshold) of an :func:`iou_curve` taken at ``thresholds``."""
    best = int(np.argmax(curve))
    return float(curve[best]), float(thresholds[best])


def best_iou(cam: np.ndarray, region: np.ndarray, thresholds: Sequence[float] = BOX_THRESHOLDS) -> tuple[float, float]:
    """(best IoU, its threshold) of ``cam >= t`` with ``region`` over ``thresholds`` (maps in [0, 1])."""
    return best_on_curve(iou_curve(cam, region, thresholds), thresholds)


def common_threshold(curves: Sequence[Sequence[float]], thresholds: Sequence[float] = BOX_THRESHOLDS) -> float:
    """The one threshold with the best mean IoU over objects, from their :func:`iou_curve` s."""
    return float(thresholds[int(np.argmax(np.mean(np.asarray(curves, dtype=np.float64), axis=0)))])


def _border_masks(boxes: Iterable[Sequence[int]], height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Where a box edge lies inside the image: (H-1) x W marks of the steps between rows r-1 and r along a
    horizontal edge, H x (W-1) marks of the steps between columns c-1 and c along a vertical one."""
    at_dy, at_dx = np.zeros((height - 1, width), bool), np.zeros((height, width - 1), bool)
    for top, left, bottom, right in boxes:
        for r in (top, bottom):
            if 0 < r < height:
                at_dy[r - 1, left:right] = True
        for c in (left, right):
            if 0 < c < width:
                at_dx[top:bottom, c - 1] = True
    return at_dy, at_dx


def seam_ratio(cam: np.ndarray, boxes: Iterable[Sequence[int]]) -> float:
    """Mean |step| across the box edges (top, left, bottom, right boxes; each edge where it runs) over the mean
    |step| elsewhere.

    Steps are between neighbouring rows (for a horizontal edge) and columns (vertical); NaN where the boxes
    have no edge inside the image (e.g. every patch is the whole image) or the map is flat elsewhere.
    """
    height, width = cam.shape
    at_dy, at_dx = _border_masks(boxes, height, width)
    if not at_dy.any() and not at_dx.any():
        return float("nan")
    dy = np.abs(np.diff(cam, axis=0))  # dy[r-1] is the step between rows r-1 and r
    dx = np.abs(np.diff(cam, axis=1))
    border = np.concatenate([dy[at_dy], dx[at_dx]])
    other = np.concatenate([dy[~at_dy], dx[~at_dx]])
    base = float(other.mean()) if other.size else 0.0
    return float(border.mean()) / base if base > 0 else float("nan")
