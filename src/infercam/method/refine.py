"""Class-conditional inference on patches: erasing rounds that reveal the rest of each object.

Round 0 is the patch's own CAM. Each further round blanks out (with each pass input's mean) the pixels already
covered, i.e. where the running per-class maximum A of any class is >= ``erase_threshold``, recomputes the
normalised CAM and takes A = max(A, new), new weighted by the mode's ``accept`` rule. A patch stops when a round
covers less than ``stop_fraction`` of its pixels anew (round 0 included, as in the authors' code), when the
mode's ``counts`` rule leaves no class counting, or after ``max_rounds`` rounds in all. How the masks are
resized, what of a round counts and the stop fraction are the mode's rules (:mod:`infercam.method.modes`).
Patches are advanced in lockstep so that passes of equal size across patches share a forward batch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch

from .cam import CamJob, MultiScaleCam, normalize_cam
from .modes import Recipe


@dataclass(frozen=True)
class RefineConfig:
    """The numbers of the erasing rounds (defaults from the paper and the authors' code)."""

    erase_threshold: float = 0.7
    stop_fraction: float = 0.02
    max_rounds: int = 5


@dataclass
class PatchState:
    """One patch's progress: its pyramid, running maximum A, covered mask and rounds run."""

    pyramid: Sequence[torch.Tensor]
    size: tuple[int, int]
    maxima: torch.Tensor | None = None
    first_peak: torch.Tensor | None = None  # per class: the peak of round 0's raw map
    active: torch.Tensor | None = None  # per class: whether its rounds still count (the mode's counts rule)
    covered: torch.Tensor | None = None
    rounds: int = 0
    covered_fraction: list[float] = field(default_factory=list)
    done: bool = False

    def update(self, raw: torch.Tensor, recipe: Recipe, config: RefineConfig) -> None:
        """Fold one round's raw CAM (L x h x w) into A, normalised by its own peak and kept where the mode's
        ``accept`` rule says, and decide whether the patch is finished."""
        cam = normalize_cam(raw)
        if self.maxima is None:
            self.maxima, self.first_peak = cam, raw.amax(dim=(-2, -1))
            self.active = torch.ones(len(raw), dtype=torch.bool, device=raw.device)
        else:
            accepted = recipe.accept(cam, self.maxima, config.erase_threshold)
            if recipe.counts is not None:  # a class the erased input no longer shows stops counting, for good
                self.active &= recipe.counts(raw.amax(dim=(-2, -1)), self.first_peak)
                accepted = accepted * self.active[:, None, None]
            self.maxima = torch.maximum(self.maxima, accepted)
        covered = self.maxima.amax(dim=0) >= config.erase_threshold
        before = 0 if self.covered is None else int(self.covered.sum())
        gained = (int(covered.sum()) - before) / covered.numel()
        self.covered = covered
        self.rounds += 1
        self.covered_fraction.append(float(covered.float().mean()))
        self.done = gained < config.stop_fraction or self.rounds >= config.max_rounds or not bool(self.active.any())

    def next_job(self, recipe: Recipe) -> CamJob:
        """The CAM job of the next round: every pass erased where the patch is already covered."""
        sizes = [tuple(level.shape[-2:]) for level in self.pyramid]
        return CamJob(self.pyramid, self.size, recipe.keep_masks(~self.covered, sizes))


def refine(cams: MultiScaleCam, states: Sequence[PatchState], classes: Sequence[int], recipe: Recipe,
           config: RefineConfig) -> None:
    """Run the rounds on every patch until each is done; a state already holding round 0 skips it."""
    fresh = [s for s in states if s.maxima is None]
    for state, raw in zip(fresh, cams.compute_raw([CamJob(s.pyramid, s.size) for s in fresh], classes)):
        state.update(raw, recipe, config)
    active = [s for s in states if not s.done]
    while active:
        results = cams.compute_raw([s.next_job(recipe) for s in active], classes)
        for state, raw in zip(active, results):
            state.update(raw, recipe, config)
        active = [s for s in active if not s.done]
