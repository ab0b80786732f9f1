"""Class-conditional inference on patches: erasing rounds that reveal the rest of each object.

Round 0 is the patch's own normalised CAM. Each further round blanks out (with each pass input's
mean) the pixels already covered, i.e. where the running per-class maximum A of any class is
>= ``erase_threshold``, recomputes the normalised CAM and takes A = max(A, new). A patch stops when a
round covers less than ``stop_fraction`` of its pixels anew (round 0 included, as in the authors'
code), or after ``max_rounds`` rounds in all. Patches are advanced in lockstep so that passes of
equal size across patches share a forward batch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch

from .cam import CamJob, MultiScaleCam, pass_keep_masks


@dataclass(frozen=True)
class RefineConfig:
    """The numbers of the erasing rounds (defaults from the paper and the authors' code)."""

    erase_threshold: float = 0.7
    stop_fraction: float = 0.02
    max_rounds: int = 5
    reference: bool = False  # the authors' mask resizing (chained, not flipped); see cam.pass_keep_masks


@dataclass
class PatchState:
    """One patch's progress: its pyramid, running maximum A, covered mask and rounds run."""

    pyramid: Sequence[torch.Tensor]
    size: tuple[int, int]
    maxima: torch.Tensor | None = None
    covered: torch.Tensor | None = None
    rounds: int = 0
    covered_fraction: list[float] = field(default_factory=list)
    done: bool = False

    def update(self, cam: torch.Tensor, config: RefineConfig) -> None:
        """Fold one round's normalised CAM into A and decide whether the patch is finished."""
        self.maxima = cam if self.maxima is None else torch.maximum(self.maxima, cam)
        covered = self.maxima.amax(dim=0) >= config.erase_threshold
        before = 0 if self.covered is None else int(self.covered.sum())
        gained = (int(covered.sum()) - before) / covered.numel()
        self.covered = covered
        self.rounds += 1
        self.covered_fraction.append(float(covered.float().mean()))
        self.done = gained < config.stop_fraction or self.rounds >= config.max_rounds

    def next_job(self, config: RefineConfig) -> CamJob:
        """The CAM job of the next round: every pass erased where the patch is already covered."""
        sizes = [tuple(level.shape[-2:]) for level in self.pyramid]
        keep = pass_keep_masks(~self.covered, sizes, config.reference)
        return CamJob(self.pyramid, self.size, keep)


def refine(cams: MultiScaleCam, states: Sequence[PatchState], classes: Sequence[int],
           config: RefineConfig) -> None:
    """Run the rounds on every patch until each is done; a state already holding round 0 skips it."""
    fresh = [s for s in states if s.maxima is None]
    for state, cam in zip(fresh, cams.compute([CamJob(s.pyramid, s.size) for s in fresh], classes)):
        state.update(cam, config)
    active = [s for s in states if not s.done]
    while active:
        results = cams.compute([s.next_job(config) for s in active], classes)
        for state, cam in zip(active, results):
            state.update(cam, config)
        active = [s for s in active if not s.done]
