"""The modes of InferCam: each a recipe of six small rules, so that a reader sees each mode in one place.

| rule | ``reference`` (authors' code) | ``fixed`` (their quirks fixed) | ``default`` | ``evidence`` |
|---|---|---|---|---|
| how the image is cut (``boxes``) | four corner patches, a negative start wrapping as numpy does | four corner patches, starts clamped at 0 | no cut: the whole image | as ``default`` |
| erasing mask per pass (``keep_masks``) | chained resizes, not flipped | resized per scale, flipped with its input | resized per scale, flipped with its input | as ``default`` |
| what of a round counts (``accept``) | all of it | all of it | per class, only what lies near the region that class already covers | as ``default`` |
| how patches merge (``merge``) | maximum | maximum | maximum (one patch) | maximum (one patch) |
| when a patch stops (``stop_fraction``) | a round covers < 2 % anew | a round covers < 2 % anew | after ``max_rounds`` rounds | after ``max_rounds`` rounds, or when no class counts any more |
| when a class stops counting, for good (``counts``) | never | never | never | once its raw map's peak on the erased input is < 0.5 x round 0's |

Every mode normalises each round by its own peak. Why the default differs (BENCHMARKS.md, "Making InferCam help on
a real classifier", chosen on development photos and a synthetic development split only): with a real ImageNet
classifier, the CAM of a corner patch is worse than the image's own CAM cut to that patch (the crop loses the
context the network uses), and the rounds, once the object's core is erased, respond as strongly to the scene
around it (water, grass) as to the object's other parts. The default keeps the erasing rounds but runs them on the
whole image, and a class's round counts only near what that class already covers (its weight falls linearly from 1
on the class's covered region to 0 at ``NEAR`` = 0.5 times the image's shorter side), so each map grows along its
object round by round instead of jumping into the scene or along another class's object; every round runs, since
a gated round covers little anew and the published 2 % stop would end the growth after one or two rounds.
Without patches there are no patch borders, hence no seams, and it costs about a third of the forward passes. On
the held-out synthetic benchmark it keeps the published method's gain (within its interval); on held-out real
photos its mean best IoU (each object at its own threshold) is at parity with the baseline CAM's on three splits,
above it on a fourth and below it on a fifth, where small objects and objects held against a person grow into
what surrounds them.

``evidence`` is the default plus one rule, for real classifiers on natural photos: once a class's most telling
parts are erased, a round whose peak response to that class is below half of round 0's shows the scene the class
is seen in (the table under a lighter, the leg at a football), not more of the object, so from then on that class's
rounds no longer count, and the image stops when no class counts. On the synthetic benchmark the network's weaker
later rounds do find the objects' bodies, so this rule gives up the method's gain there (BENCHMARKS.md, third round);
on the held-out real photos it is never more than 0.003 below the baseline CAM's best IoU, and above it on two of
the five splits with an interval above zero (sixteenth round).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable, Sequence

import numpy as np
import torch
from scipy import ndimage

from .cam import pass_keep_masks
from .split import DEFAULT_MARGINS, Box, clamp_start, corner_patches, merge_max, wrap_start

Boxes = Callable[[Sequence[tuple[int, int]], int, int, tuple[int, int]], list[Box]]
Masks = Callable[[torch.Tensor, Sequence[tuple[int, int]]], list[torch.Tensor]]
Merge = Callable[[Sequence[tuple[Box, np.ndarray]], tuple[int, ...]], np.ndarray]


def whole_image(centers: Sequence[tuple[int, int]], height: int, width: int,
                margins: tuple[int, int] = DEFAULT_MARGINS) -> list[Box]:
    """No cut: every one of the four patches is the whole image (computed once, its round 0 the baseline)."""
    return [Box(0, 0, height, width)] * 4


def per_scale_masks(keep: torch.Tensor, sizes: Sequence[tuple[int, int]]) -> list[torch.Tensor]:
    """Each scale's keep-mask resized from the patch's, flipped with its flipped input."""
    return pass_keep_masks(keep, sizes, reference=False)


def chained_masks(keep: torch.Tensor, sizes: Sequence[tuple[int, int]]) -> list[torch.Tensor]:
    """The authors' masks: each resized from the previous pass's, the flipped pass's not flipped."""
    return pass_keep_masks(keep, sizes, reference=True)


def accept_all(cam: torch.Tensor, maxima: torch.Tensor, threshold: float) -> torch.Tensor:
    """A round's normalised map (L x h x w) counts as it is (the published method)."""
    return cam


@dataclass(frozen=True)
class AcceptNear:
    """Each class's round counts with a weight that falls linearly from 1 on the region that class already
    covers (its running maximum >= ``threshold``) to 0 at ``near`` times the patch's shorter side."""

    near: float

    def __call__(self, cam: torch.Tensor, maxima: torch.Tensor, threshold: float) -> torch.Tensor:
        radius = self.near * min(maxima.shape[-2:])
        return torch.stack([cam[i] * near_weight(maxima[i] >= threshold, radius) for i in range(len(cam))])


def near_weight(covered: torch.Tensor, radius: float) -> torch.Tensor:
    """h x w weights: 1 on ``covered``, falling linearly with the distance from it to 0 at ``radius`` pixels
    (all 1 where nothing is covered yet)."""
    if not bool(covered.any()):
        return torch.ones(covered.shape, dtype=torch.float32, device=covered.device)
    distance = ndimage.distance_transform_edt(~covered.cpu().numpy())
    weight = np.clip(1.0 - distance / max(radius, 1.0), 0.0, 1.0)
    return torch.from_numpy(weight.astype(np.float32)).to(covered.device)


Counts = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (peaks, round 0's peaks) -> L bools


@dataclass(frozen=True)
class PeakEvidence:
    """A class counts while its raw map's peak on the erased input is >= ``ratio`` x its peak in round 0."""

    ratio: float

    def __call__(self, peaks: torch.Tensor, first_peaks: torch.Tensor) -> torch.Tensor:
        return peaks >= self.ratio * first_peaks


@dataclass(frozen=True)
class Recipe:
    """The rules that make a mode (see the table in this module's docstring)."""

    name: str
    boxes: Boxes
    keep_masks: Masks
    accept: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]  # (round's map, maxima, erase threshold)
    merge: Merge
    stop_fraction: float = 0.02  # stop a patch when a round covers less than this anew (the engine may override)
    # whether each class's erasing rounds still count (once not, never again); None: always
    counts: Counts | None = None
    # whether a patch that every scale makes smaller than the networks' stride (a constant map) fails the image
    # (:func:`infercam.method.cam.check_patch_scales`); reference runs it, as the authors' code does
    checks_patches: bool = True


NEAR = 0.5  # the default's reach, as a fraction of the image's shorter side (chosen on the development data)
EVIDENCE = 0.5  # the evidence mode's peak ratio (the middle of the plateau 0.4-0.6 on the development photos)

RECIPES: dict[str, Recipe] = {
    "default": Recipe("default", whole_image, per_scale_masks, AcceptNear(NEAR), merge_max, stop_fraction=0.0),
    "evidence": Recipe("evidence", whole_image, per_scale_masks, AcceptNear(NEAR), merge_max, stop_fraction=0.0,
                       counts=PeakEvidence(EVIDENCE)),
    "fixed": Recipe("fixed", partial(corner_patches, start=clamp_start), per_scale_masks, accept_all, merge_max),
    "reference": Recipe("reference", partial(corner_patches, start=wrap_start), chained_masks, accept_all,
                        merge_max, checks_patches=False),
}
MODES = tuple(RECIPES)


def recipe(mode: str | Recipe) -> Recipe:
    """The recipe of a mode name (or the recipe itself)."""
    if isinstance(mode, Recipe):
        return mode
    if mode not in RECIPES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return RECIPES[mode]
