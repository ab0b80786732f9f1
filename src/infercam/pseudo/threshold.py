"""Background scores and the argmax from class scores to a label map (0 background, c + 1 class c).

The background score is a fixed threshold ``t`` (psa's ``infer_cls.py`` uses 0.2 for its CAM
predictions) or psa's ``(1 - max_c CAM_c) ** alpha``; the top CAM value is clipped to [0, 1] first,
which changes nothing for psa's max-normalised maps.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from ..classes import IGNORE_INDEX
from ..errors import DataError, InferCamError

PSA_THRESHOLD = 0.2  # psa infer_cls.py: bg_score for --out_cam_pred

CamDict = Mapping[int, np.ndarray]


@dataclass(frozen=True)
class Background:
    """How the background score is made: exactly one of a fixed ``threshold`` or a power ``alpha``."""

    threshold: float | None = None
    alpha: float | None = None

    def __post_init__(self) -> None:
        if (self.threshold is None) == (self.alpha is None):
            raise InferCamError("give exactly one of a background threshold or a background alpha")
        if self.threshold is not None and not math.isfinite(self.threshold):  # NaN: every pixel background
            raise InferCamError(f"background threshold must be a finite number, got {self.threshold}")
        if self.alpha is not None and not (self.alpha > 0 and math.isfinite(self.alpha)):
            raise InferCamError(f"background alpha must be a positive finite number, got {self.alpha}")

    def score(self, maps: np.ndarray) -> np.ndarray:
        """The H x W background score of stacked class maps (K, H, W), at the maps' precision."""
        if self.threshold is not None:
            return np.full(maps.shape[1:], self.threshold, dtype=maps.dtype)
        top = np.clip(maps.max(0), 0, 1) if len(maps) else np.zeros(maps.shape[1:], maps.dtype)
        return np.power(1 - top, maps.dtype.type(self.alpha))


def stack_cams(cams: CamDict, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(maps (K, H, W) float32, classes (K,)) of a CAM dict in class order; maps must be H x W."""
    classes = np.array(sorted(int(c) for c in cams), dtype=np.int64)
    maps = np.zeros((len(classes),) + tuple(shape), np.float32)
    for i, c in enumerate(classes):
        m = np.asarray(cams[c])
        if m.shape != tuple(shape):
            raise DataError(f"CAM of class {c} is {'x'.join(map(str, m.shape))} but the image is "
                            f"{'x'.join(map(str, shape))}")
        if not np.isfinite(m).all():  # NaN would win every argmax: the class everywhere
            raise DataError(f"the CAM map of class {c} holds NaN or infinite values")
        maps[i] = m
    return maps, classes


def class_scores(cams: CamDict, shape: tuple[int, int], background: Background) -> tuple[np.ndarray, np.ndarray]:
    """(scores (1 + K, H, W), label values (1 + K,)): background first, then the CAM classes as c + 1."""
    maps, classes = stack_cams(cams, shape)
    if len(classes) and int(classes.max()) + 1 >= IGNORE_INDEX:  # a uint8 label PNG holds 0..254 (255: ignore)
        raise DataError(f"CAM class {int(classes.max())} cannot be a label value: a label map holds classes "
                        f"0..{IGNORE_INDEX - 2} as 1..{IGNORE_INDEX - 1} (255 is ignore); use a class map")
    scores = np.concatenate([background.score(maps)[None], maps])
    return scores, np.concatenate([[0], classes + 1]).astype(np.uint8)


def threshold_labels(cams: CamDict, shape: tuple[int, int], background: Background) -> np.ndarray:
    """Label map (uint8) by argmax over [background, class maps]; ties go to the background."""
    scores, values = class_scores(cams, shape, background)
    return values[scores.argmax(0)]
