"""psa's random walk (``infer_aff.py``): propagate CAM scores with AffinityNet's pixel affinities.

Per image: pad to a multiple of the stride (8), take the network's stride-8 features, the affinity
``exp(-mean |f_i - f_j|)`` of every pair within its radius (5), the dense symmetric matrix A with ones
on the diagonal, ``T = A ** beta`` (8) with columns normalised to sum 1, squared ``logt`` (8) times
(``T ** 256``); the scores ``[(1 - max CAM) ** alpha (16), CAMs]``, zero-padded and average-pooled by
8, are multiplied by T, upsampled bilinearly (align_corners=False), cropped, and argmax'd.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F

from ..data.images import check_image
from ..errors import InferCamError
from ..models.pixel_pairs import dense_affinity, pair_affinity
from ..models.registry import normalization
from .threshold import Background, CamDict, class_scores

STRIDE = 8
MAX_CELLS = 128 * 128  # feature cells of one image: the dense matrices take 4 * cells**2 bytes each
# Each squaring of T doubles its float32 rounding: beyond 2**16 steps its columns drift from summing to 1 (1.9 at
# logt 24, NaN at 40) and every pixel ends as background.
MAX_LOGT = 16


@dataclass(frozen=True)
class RandomWalkParams:
    """psa's ``infer_aff.py`` defaults: affinity power beta, log2 of the walk length, background alpha."""

    beta: float = 8
    logt: int = 8
    alpha: float = 16

    def __post_init__(self) -> None:
        if not 0 <= self.logt <= MAX_LOGT:
            raise InferCamError(f"logt must be 0..{MAX_LOGT} (a walk of at most 2**{MAX_LOGT} steps), got {self.logt}")


PSA_RW = RandomWalkParams()


class AffinityModel(Protocol):
    """What the walk needs of an AffinityNet: stride-8 features and the pair radius."""

    radius: int

    def forward_features(self, x: torch.Tensor) -> torch.Tensor: ...


def transition_matrix(affinity: torch.Tensor, beta: float, logt: int) -> torch.Tensor:
    """``(A ** beta)`` with columns normalised to sum 1, raised to the power ``2 ** logt`` by squaring."""
    trans = affinity.pow(beta)
    trans = trans / trans.sum(0, keepdim=True)
    for _ in range(logt):
        trans = trans @ trans
    return trans


def random_walk(scores: torch.Tensor, affinity: torch.Tensor, beta: float = PSA_RW.beta,
                logt: int = PSA_RW.logt) -> torch.Tensor:
    """Walk (K, h, w) scores on an (hw, hw) affinity: each cell's new score is a T-weighted mean of all."""
    k, h, w = scores.shape
    return (scores.reshape(k, h * w) @ transition_matrix(affinity, beta, logt)).view(k, h, w)


def _network_input(image: np.ndarray, model: AffinityModel, size: tuple[int, int]) -> torch.Tensor:
    """The normalised image (1, 3, H', W'), zero-padded at the bottom and right to ``size`` (as psa)."""
    mean, std = (torch.tensor(v, dtype=torch.float32).view(3, 1, 1) for v in normalization(model))
    x = (torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255 - mean) / std
    return F.pad(x, (0, size[1] - image.shape[1], 0, size[0] - image.shape[0]))[None]


def rw_labels(image: np.ndarray, cams: CamDict, model: AffinityModel, params: RandomWalkParams = PSA_RW,
              device: str | torch.device = "cpu") -> np.ndarray:
    """Label map (uint8, 0 background, c + 1 class c) of an RGB image (H x W x 3 uint8, as the engine takes it) and
    its CAMs; ``model`` in eval mode."""
    image = check_image(image)
    h, w = image.shape[:2]
    padded = (math.ceil(h / STRIDE) * STRIDE, math.ceil(w / STRIDE) * STRIDE)
    cells = (padded[0] // STRIDE) * (padded[1] // STRIDE)
    if cells > MAX_CELLS:
        raise InferCamError(f"image {w}x{h} is too large for the dense random walk ({cells} feature cells, "
                            f"at most {MAX_CELLS}): downscale it")
    scores, values = class_scores(cams, (h, w), Background(alpha=params.alpha))
    with torch.no_grad():
        feats = model.forward_features(_network_input(image, model, padded).to(device))
        fh, fw = feats.shape[2:]
        if (fh, fw) != (padded[0] // STRIDE, padded[1] // STRIDE):
            raise InferCamError(f"affinity network gave {fh}x{fw} features for a {padded[1]}x{padded[0]} "
                                f"input: it must have output stride {STRIDE}")
        affinity = dense_affinity(pair_affinity(feats, model.radius)[0], fh, fw, model.radius)
        seeds = F.pad(torch.from_numpy(scores), (0, padded[1] - w, 0, padded[0] - h))
        seeds = F.avg_pool2d(seeds[None], STRIDE)[0].to(device=device, dtype=affinity.dtype)
        walked = random_walk(seeds, affinity, params.beta, params.logt)
        up = F.interpolate(walked[None], padded, mode="bilinear", align_corners=False)[0, :, :h, :w]
    return values[up.argmax(0).cpu().numpy()]
