"""The modes of InferCam: each a recipe of five small rules, so that a reader sees each mode in one place.

| rule | ``reference`` (authors' code) | ``fixed`` (their quirks fixed) | ``default`` |
|---|---|---|---|
| where a patch starts (``start``) | numpy's wrap-around of a negative start | clamped at 0 | clamped at 0 |
| erasing mask per pass (``keep_masks``) | chained resizes, not flipped | resized per scale, flipped | resized per scale, flipped |
| how a round is normalised (``normalise``) | its own peak | its own peak | the image's baseline peak |
| which rounds count (``accept``) | every round | every round | a class's round only while its evidence holds |
| how patches merge (``merge``) | maximum | maximum | blended across the overlaps |

Why the default differs (BENCHMARKS.md, "Making InferCam help on a real classifier"): dividing every round by its
own peak stretches whatever weak response is left after erasing (sky, water, grass) to 1.0, and normalising each
patch on its own leaves a step at every patch border. The default divides every patch and round by the same
number, the image's baseline peak of that class (so a weak response stays weak, and the patches agree where they
meet), accepts a class's new round only while the erased input still shows the class (its pooled map is at least
``evidence`` of the patch's round 0, else that class stops), and blends the patches linearly across the bands
where they overlap.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from scipy import ndimage

from .cam import NORM_EPS, mean_fill, pass_keep_masks
from .split import Box, clamp_start, merge_blend, merge_max, wrap_start

# (raw L x H x W round map, the patch's round-0 raw peaks L x 1 x 1, the image's baseline raw peaks L x 1 x 1)
Normalise = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def own_peak(raw: torch.Tensor, patch_peak: torch.Tensor, image_peak: torch.Tensor) -> torch.Tensor:
    """Each class map divided by its own maximum + 1e-5 (the published method)."""
    return raw / (raw.amax(dim=(-2, -1), keepdim=True) + NORM_EPS)


def image_peak(raw: torch.Tensor, patch_peak: torch.Tensor, image_peak: torch.Tensor) -> torch.Tensor:
    """Each class map divided by the image's baseline peak of that class, at most 1: one scale for every patch
    and round, so a weak response stays weak and overlapping patches agree."""
    return torch.clamp(raw / (image_peak + NORM_EPS), max=1.0)


@dataclass(frozen=True)
class PeakFloor:
    """Each class map divided by its own peak, but never by less than ``floor`` times the image's baseline peak
    (at most 1): a round may stretch its response by at most 1 / ``floor`` against the image's strongest one."""

    floor: float

    def __call__(self, raw: torch.Tensor, patch_peak: torch.Tensor, image_peak: torch.Tensor) -> torch.Tensor:
        peak = torch.maximum(raw.amax(dim=(-2, -1), keepdim=True), self.floor * image_peak)
        return torch.clamp(raw / (peak + NORM_EPS), max=1.0)


@dataclass(frozen=True)
class Accept:
    """What of a round's map counts (``cam`` L x h x w, normalised): all of it by default; with ``evidence``,
    only the classes whose pooled raw map over the patch is at least ``evidence`` times the patch's round 0 (the
    erased input still shows the class; a class that fails stops); with ``near``, only what lies near the region
    already covered: the weight falls linearly from 1 on it to 0 at ``near`` times the patch's shorter side."""

    evidence: float | None = None
    near: float | None = None

    def __call__(self, cam: torch.Tensor, raw: torch.Tensor, state) -> torch.Tensor:
        if self.evidence is not None:
            state.active &= raw.mean(dim=(-2, -1)) >= self.evidence * state.pooled0
            cam = cam * state.active[:, None, None]
        if self.near is not None:
            cam = cam * near_weight(state.covered, self.near * min(state.size))
        return cam


def near_weight(covered: torch.Tensor, radius: float) -> torch.Tensor:
    """h x w weights: 1 on ``covered``, falling linearly with the distance from it to 0 at ``radius`` pixels."""
    if not bool(covered.any()):
        return torch.ones_like(covered, dtype=torch.float32)
    distance = ndimage.distance_transform_edt(~covered.cpu().numpy())
    weight = np.clip(1.0 - distance / max(radius, 1.0), 0.0, 1.0)
    return torch.from_numpy(weight.astype(np.float32)).to(covered.device)


def unanchored(refined: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    """The merged map as it is (the published method)."""
    return refined


@dataclass(frozen=True)
class Anchored:
    """The merged map kept within ``gain`` times the baseline CAM (and never below it): InferCam may raise what the
    baseline sees weakly (an object's less discriminative parts) but cannot create a response where the baseline
    sees none (the scene around the object)."""

    gain: float

    def __call__(self, refined: np.ndarray, baseline: np.ndarray) -> np.ndarray:
        return np.maximum(np.minimum(refined, self.gain * baseline), baseline).astype(np.float32)


Masks = Callable[[torch.Tensor, Sequence[tuple[int, int]]], list[torch.Tensor]]
Merge = Callable[[Sequence[tuple[Box, np.ndarray]], tuple[int, ...]], np.ndarray]


def per_scale_masks(keep: torch.Tensor, sizes: Sequence[tuple[int, int]]) -> list[torch.Tensor]:
    """Each scale's keep-mask resized from the patch's, flipped with its flipped input."""
    return pass_keep_masks(keep, sizes, reference=False)


def chained_masks(keep: torch.Tensor, sizes: Sequence[tuple[int, int]]) -> list[torch.Tensor]:
    """The authors' masks: each resized from the previous pass's, the flipped pass's not flipped."""
    return pass_keep_masks(keep, sizes, reference=True)


@dataclass(frozen=True)
class Recipe:
    """The rules that make a mode (see the table in this module's docstring)."""

    name: str
    start: Callable[[int, int], int]
    keep_masks: Masks
    normalise: Normalise
    accept: Accept
    merge: Merge
    anchor: Callable[[np.ndarray, np.ndarray], np.ndarray] = unanchored
    crop_baseline: bool = False  # a patch's round 0 is the image's baseline cut to the patch, not the patch's CAM
    fill: Callable[[torch.Tensor], torch.Tensor] = mean_fill


RECIPES: dict[str, Recipe] = {
    "default": Recipe("default", clamp_start, per_scale_masks, image_peak, Accept(evidence=0.5), merge_blend),
    "fixed": Recipe("fixed", clamp_start, per_scale_masks, own_peak, Accept(), merge_max),
    "reference": Recipe("reference", wrap_start, chained_masks, own_peak, Accept(), merge_max),
}
MODES = tuple(RECIPES)


def recipe(mode: str | Recipe) -> Recipe:
    """The recipe of a mode name (or the recipe itself)."""
    if isinstance(mode, Recipe):
        return mode
    if mode not in RECIPES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return RECIPES[mode]
