"""Research harness for issue 13: InferCam variants on the development data only.

Each variant is a recipe of rules (``infercam.method.modes``) plus engine numbers. It is scored on
* the development photos (scikit-image's, ``split: dev`` in photo_boxes.json) with EfficientNet-Lite0: mean share
  of the map inside the boxes, mean best IoU, mean seam ratio, forward passes per image;
* a synthetic development split (seed 777, never the demo's held-out seed 20221) with the bundled demo network:
  mIoU at the best background threshold, passes per image.
The test photos and the demo split are not looked at here; bench/real_photos.py and `make demo` report them.

    .venv/bin/python bench/method_study.py                  # every variant
    .venv/bin/python bench/method_study.py --variants "near 0.3;published" --synthetic 40
"""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from infercam import InferCam, models
from infercam.data import photos
from infercam.data.images import fit, load_image
from infercam.data.synthetic import make_synthetic
from infercam.data.voc import VOCDataset
from infercam.evaluation import CamSweep
from infercam.evaluation.metrics import BOX_THRESHOLDS, common_threshold, iou_curve, mass_share, seam_ratio
from infercam.method.cam import CamJob, summed_passes
from infercam.method.modes import NEAR, RECIPES, AcceptNear, PeakEvidence, near_weight, per_scale_masks, whole_image
from infercam.method.split import Box

DEV_SEED = 777


# Research-only rule (not used by any mode): blend overlapping patches linearly instead of taking the maximum.
def _ramp(start: int, end: int, rise_to: int | None, fall_from: int | None) -> np.ndarray:
    """Weights of the positions start..end-1 of a box side: rising linearly from its start up to ``rise_to``
    and falling linearly from ``fall_from`` to its end (the bands it shares with its neighbours), 1 elsewhere."""
    pos = np.arange(start, end, dtype=np.float64) + 0.5
    weight = np.ones(end - start)
    if rise_to is not None and rise_to > start:
        weight = np.minimum(weight, (pos - start) / (rise_to - start))
    if fall_from is not None and fall_from < end:
        weight = np.minimum(weight, (end - pos) / (end - fall_from))
    return np.clip(weight, 1e-6, 1.0)


def _band_edges(box: Box, boxes: Sequence[Box], axis: int) -> tuple[int | None, int | None]:
    """Where the band a box shares with the boxes before it ends, and where the one with those after it starts."""
    lo, hi = (box.top, box.bottom) if axis == 0 else (box.left, box.right)
    spans = [(b.top, b.bottom) if axis == 0 else (b.left, b.right) for b in boxes]
    before = [e for s, e in spans if s < lo < e]
    after = [s for s, e in spans if s < hi < e]
    return (max(before) if before else None), (min(after) if after else None)


def merge_blend(patch_maps: Sequence[tuple[Box, np.ndarray]], shape: tuple[int, ...]) -> np.ndarray:
    """Place each patch's maps at its box and blend where boxes overlap: each patch's weight falls linearly to 0
    across the band it shares with a neighbour, so the merged map has no step at a box border. Pixels no box
    covers are 0."""
    boxes = [box for box, _ in patch_maps]
    total = np.zeros(shape, dtype=np.float64)
    weights = np.zeros(shape[-2:], dtype=np.float64)
    for box, maps in patch_maps:
        rows = _ramp(box.top, box.bottom, *_band_edges(box, boxes, 0))
        cols = _ramp(box.left, box.right, *_band_edges(box, boxes, 1))
        w = rows[:, None] * cols[None, :]
        r, c = box.slices()
        total[:, r, c] += w * maps
        weights[r, c] += w
    return np.divide(total, weights, out=np.zeros_like(total), where=weights > 0).astype(np.float32)


# Research-only accept rules (issue 13): the near gate over the union of the classes (the default until the
# per-class rule), and a reach relative to the extent already covered instead of the patch's side.
@dataclass(frozen=True)
class AcceptNearUnion:
    """The first near rule: every class's round counts near the region any class covers."""

    near: float

    def __call__(self, cam: torch.Tensor, maxima: torch.Tensor, threshold: float) -> torch.Tensor:
        return cam * near_weight(maxima.amax(dim=0) >= threshold, self.near * min(maxima.shape[-2:]))


@dataclass(frozen=True)
class AcceptNearExtent:
    """The reach is ``k`` times the square root of the covered area (per class if ``per_class``), capped at the
    patch's shorter side: small objects grow by small steps, large ones by large steps."""

    k: float
    per_class: bool = True

    def __call__(self, cam: torch.Tensor, maxima: torch.Tensor, threshold: float) -> torch.Tensor:
        side = min(maxima.shape[-2:])
        masks = [maxima[i] >= threshold for i in range(len(cam))] if self.per_class \
            else [maxima.amax(dim=0) >= threshold] * len(cam)
        return torch.stack([cam[i] * near_weight(m, min(side, self.k * float(m.sum()) ** 0.5))
                            for i, m in enumerate(masks)])


@dataclass(frozen=True)
class DilatedErase:
    """Research-only (fifth round): erase the covered region widened by ``margin`` x the shorter side (a square
    max-pool), so the erased hole no longer shows the object's outline; then the default's per-scale masks."""

    margin: float

    def __call__(self, keep: torch.Tensor, sizes) -> list[torch.Tensor]:
        radius = max(1, round(self.margin * min(keep.shape)))
        covered = torch.nn.functional.max_pool2d((~keep).float()[None, None], 2 * radius + 1, stride=1,
                                                 padding=radius)[0, 0] > 0.5
        return per_scale_masks(~covered, sizes)


class AcceptNearRival:
    """Research-only (sixth round): the default's near gate times how much of what the network sees at a pixel is
    the class, in round 0 (the whole image, nothing erased): the class's summed multi-scale response over the
    strongest response of any of the network's classes there, ramped to full weight at ``full``. A round's gain
    counts where the un-erased image already says "this class" (a horse's flank), not where another class owns the
    pixel (the table under a lighter). :meth:`prepare` sets the prior per image before the engine runs."""

    def __init__(self, near: float, full: float) -> None:
        self.near, self.full = near, full
        self.prior: torch.Tensor | None = None

    def prepare(self, engine: InferCam, image: np.ndarray, classes: list[int]) -> None:
        """This image's share of each labelled class in round 0's all-class response (on a quarter-size grid; its
        8 passes are left out of the pass count, since the engine's own round 0 could return every class's map)."""
        h, w = image.shape[:2]
        cams, passes, pixels = engine.cams, engine.cams.forward_passes, engine.cams.input_pixels
        with torch.inference_mode():
            pyramid = cams.pyramid(image)
            probe = cams.forward(pyramid[0][None])
            every = list(range(probe.shape[1]))
            total = cams.compute_raw([CamJob(pyramid, (max(1, h // 4), max(1, w // 4)))], every)[0]
        cams.forward_passes, cams.input_pixels = passes, pixels
        self.prior = total[classes] / (total.amax(dim=0, keepdim=True) + 1e-5)

    def __call__(self, cam: torch.Tensor, maxima: torch.Tensor, threshold: float) -> torch.Tensor:
        near = AcceptNear(self.near)(cam, maxima, threshold)
        prior = torch.nn.functional.interpolate(self.prior[None], size=cam.shape[-2:], mode="bilinear",
                                                align_corners=False)[0]
        return near * (prior / self.full).clamp(0, 1)


class AcceptNearColour:
    """Research-only (seventh round): the default's near gate times how much a pixel's colour looks like the
    class's round-0 region (its map >= the erase threshold) rather than the rest of the image: p_in / (p_in +
    p_out) from two colour histograms (``levels`` per channel, each bin's frequency plus 1e-4), full weight from
    ``full`` up. A round's gain counts on the object's colours (the ball's white, the lighter's red), not on the
    leg or the table beside it. The colour model is built at the first erasing round of each image (when the
    running maximum is round 0's map); :meth:`prepare` hands over the image. No forward pass."""

    def __init__(self, near: float, full: float, levels: int = 8) -> None:
        self.near, self.full, self.levels = near, full, levels
        self.image: torch.Tensor | None = None
        self.weight: torch.Tensor | None = None

    def prepare(self, engine: InferCam, image: np.ndarray, classes: list[int]) -> None:
        """Keep this image (H x W x 3, uint8) and forget the previous image's colour model."""
        self.image, self.weight = torch.tensor(image).permute(2, 0, 1).float(), None

    def colour_weight(self, covered: torch.Tensor) -> torch.Tensor:
        """L x h x w: p_in / (p_in + p_out) of each pixel's colour bin, per class (1 where nothing is covered)."""
        rgb = torch.nn.functional.interpolate(self.image[None], size=covered.shape[-2:], mode="bilinear",
                                              align_corners=False)[0]
        q = (rgb.clamp(0, 255) * self.levels / 256).long().clamp(0, self.levels - 1)
        bins = (q[0] * self.levels + q[1]) * self.levels + q[2]
        n = self.levels ** 3
        weights = []
        for inside in covered:
            if not bool(inside.any()):
                weights.append(torch.ones(inside.shape))
                continue
            p_in = torch.bincount(bins[inside], minlength=n).float() / int(inside.sum()) + 1e-4
            p_out = torch.bincount(bins[~inside], minlength=n).float() / max(1, int((~inside).sum())) + 1e-4
            weights.append((p_in / (p_in + p_out))[bins])
        return torch.stack(weights).to(covered.device)

    def __call__(self, cam: torch.Tensor, maxima: torch.Tensor, threshold: float) -> torch.Tensor:
        if self.weight is None:
            self.weight = self.colour_weight(maxima.cpu() >= threshold)
        near = AcceptNear(self.near)(cam, maxima, threshold)
        return near * (self.weight / self.full).clamp(0, 1)


class AcceptNearRivalRound:
    """Research-only (fourteenth round): the default's near gate times how much of what the network sees at a
    pixel is the class *in the erased round itself*: the class's summed multi-scale response over the strongest
    response of any of the network's classes there (on a quarter-size grid), full weight from ``full`` up. Once a
    lighter is erased, the table round the hole may still light up the lighter's map, but there the network sees
    a desk more than a lighter; a horse's flank, its head erased, should still be more horse (or a look-alike at a
    similar level) than anything else. Unlike the sixth round's rival gate (round 0's responses, where the core's
    blur covers what surrounds it) it reads each round's own passes: :meth:`prepare` wraps the engine's forward so
    that every pass returns all the network's classes (the 1x1 head computes them anyway: no extra pass)."""

    def __init__(self, near: float, full: float) -> None:
        self.near, self.full = near, full
        self.outputs: list[torch.Tensor] = []
        self.classes: list[int] = []

    def prepare(self, engine: InferCam, image: np.ndarray, classes: list[int]) -> None:
        cams = engine.cams
        self.classes = list(classes)
        if getattr(cams, "_rival_rule", None) is not self:  # wrap once per engine
            plain = type(cams)._forward.__get__(cams)

            def every_class(inputs, wanted):
                if not inputs:
                    return plain(inputs, wanted)
                everything = plain(inputs, list(range(self.network_classes(engine, inputs[0]))))
                self.outputs = everything
                return [o[list(wanted)] for o in everything]
            cams._forward, cams._rival_rule = every_class, self

    @staticmethod
    def network_classes(engine: InferCam, x: torch.Tensor) -> int:
        if not hasattr(engine, "_rival_count"):
            with torch.inference_mode():
                engine._rival_count = int(engine.cams.forward(x[None]).shape[1])
        return engine._rival_count

    def share(self, shape: tuple[int, int]) -> torch.Tensor:
        """L x h x w: each labelled class's share of the strongest response at each pixel, in the last round."""
        small = (max(1, shape[0] // 4), max(1, shape[1] // 4))
        assert len(self.outputs) % 2 == 0 and len({tuple(o.shape) for o in self.outputs[0::2]}) == \
            len(self.outputs) // 2, "one patch per round expected (a whole-image recipe)"
        total = summed_passes(self.outputs, small).clamp(min=0)
        share = total[self.classes] / (total.amax(dim=0, keepdim=True) + 1e-5)
        return torch.nn.functional.interpolate(share[None], size=shape, mode="bilinear", align_corners=False)[0]

    def __call__(self, cam: torch.Tensor, maxima: torch.Tensor, threshold: float) -> torch.Tensor:
        near = AcceptNear(self.near)(cam, maxima, threshold)
        return near * (self.share(tuple(cam.shape[-2:])) / self.full).clamp(0, 1)


class RivalStop(AcceptNearRivalRound):
    """Research-only (fourteenth round): the rival reading as a per-class stop, like ``evidence``'s. In each erased
    round, where a class's map is strongest (its normalised map >= ``top``), is it still what the network sees
    most there? A class whose mean share of the strongest response over that region is below ``ratio`` stops
    counting, for good (an erased lighter's map peaks on the table round the hole, where the network sees a desk
    more; a horse's body, its head erased, should still be mostly horse or a look-alike near its level). The
    rounds that still count are the default's (near gate)."""

    def __init__(self, near: float, ratio: float, top: float = 0.8) -> None:
        super().__init__(near, 1.0)
        self.ratio, self.top = ratio, top
        self.active: torch.Tensor | None = None

    def prepare(self, engine: InferCam, image: np.ndarray, classes: list[int]) -> None:
        super().prepare(engine, image, classes)
        self.active = None

    def __call__(self, cam: torch.Tensor, maxima: torch.Tensor, threshold: float) -> torch.Tensor:
        share = self.share(tuple(cam.shape[-2:]))
        strongest = cam >= self.top
        level = (share * strongest).sum(dim=(-2, -1)) / strongest.sum(dim=(-2, -1)).clamp(min=1)
        still = level >= self.ratio
        self.active = still if self.active is None else self.active & still
        return AcceptNear(self.near)(cam, maxima, threshold) * self.active[:, None, None]


class RelativeEvidence:
    """Research-only (fifteenth round): ``evidence``'s stop with a bar set by the data set instead of a fixed 0.5.
    A class stops counting, for good, once its raw peak ratio (round r's peak on the erased input over round 0's)
    is below ``k`` x the median ratio of round r over every class of the data set's images. The medians come from
    a pre-pass over the same images that uses their class labels only, no masks (:meth:`calibrate`): what this
    network typically keeps of a class once its core is erased, so that a class stops only where it keeps unusually
    little."""

    def __init__(self, k: float) -> None:
        self.k = k
        self.medians: list[float] = []
        self.round = 0
        self.log: RatioLog | None = None  # while calibrating: every class counts, its ratios recorded

    def calibrate(self, engine: InferCam, items: Sequence[tuple[np.ndarray, list[int]]]) -> None:
        """The medians, from the default's rounds run by ``engine`` itself (its scales, rounds and thresholds)."""
        ratios: list[list[float]] = []
        self.log = RatioLog()
        try:
            for image, classes in items:
                self.log.rounds = []
                engine(image, classes)
                ratios.extend(np.array(self.log.rounds).T.tolist())  # one row of per-round ratios per class
        finally:
            self.log = None
        self.medians = np.median(np.array(ratios), axis=0).tolist()

    def prepare(self, engine: InferCam, image: np.ndarray, classes: list[int]) -> None:
        self.round = 0

    def __call__(self, peaks: torch.Tensor, first_peaks: torch.Tensor) -> torch.Tensor:
        if self.log is not None:
            return self.log(peaks, first_peaks)
        if not self.medians:
            raise RuntimeError("relative evidence needs calibrate() over the image set first (method_study's "
                               "photo_scores and synthetic_scores call it; bench/real_photos.py and "
                               "bench/held_out_synthetic.py do not)")
        bar = self.k * self.medians[min(self.round, len(self.medians) - 1)]
        self.round += 1
        return peaks >= bar * first_peaks


@dataclass(frozen=True)
class BandEvidence:
    """Research-only (sixteenth round): a class stops counting, for good, once its raw peak ratio (round r's peak
    on the erased input over round 0's) falls in [``low``, ``high``). Above the band the erased image still shows
    much of the class; inside it, a fair part of the class is seen in what surrounds the erased core (the desk
    round an erased lighter: the scene the class is seen in), so the rounds would grow into the scene; below it the
    class's evidence was all in the erased core and nothing round it supports the class, so what the weak rounds
    find is the rest of the object (the fifteenth round's synthetic classes whose response collapses)."""

    low: float
    high: float

    def __call__(self, peaks: torch.Tensor, first_peaks: torch.Tensor) -> torch.Tensor:
        ratio = peak_ratio(peaks, first_peaks)
        return (ratio < self.low) | (ratio >= self.high)


class RatioLog:
    """A counts rule that keeps every class counting and records each round's raw peak ratios (one list per round)."""

    def __init__(self) -> None:
        self.rounds: list[list[float]] = []

    def __call__(self, peaks: torch.Tensor, first_peaks: torch.Tensor) -> torch.Tensor:
        self.rounds.append(peak_ratio(peaks, first_peaks).tolist())
        return torch.ones(peaks.shape, dtype=torch.bool, device=peaks.device)


def peak_ratio(peaks: torch.Tensor, first_peaks: torch.Tensor) -> torch.Tensor:
    """Each class's raw peak on the erased input over its round-0 peak (a class round 0 never showed: 0 / 0 -> 0)."""
    return peaks / first_peaks.clamp(min=1e-12)


def scale_inputs(engine: InferCam, image: np.ndarray, scales: Sequence[float]) -> list[torch.Tensor]:
    """The engine's (unflipped, normalised) input of ``image`` at each of ``scales``, which must be its own."""
    levels = engine.cams.pyramid(image)
    return [levels[list(engine.cams.scales).index(s)] for s in scales]


class AcceptNearFeature:
    """Research-only (tenth round): the default's near gate times how much a pixel's *network features* look like
    the class's covered region rather than its background: the classifier's own feature map (``layer``: the one its
    CAM head reads, or a named module's output) at scale ``scale`` of the un-erased image, each location's vector
    L2-normalised; s_in / s_out its cosine with the covered region's mean vector (or, with ``nearest``, its nearest
    covered location) and with the background's (the class's map < ``background``), g = s_in / (s_in + s_out),
    full weight from ``full`` up. The colour gate's idea in a space where a horse's flank and its head can be
    alike and unlike the grass. The prototypes follow the covered region round by round. The feature pass is the
    engine's own round-0 pass at that scale (a hook could return it), so it is left out of the pass count."""

    def __init__(self, near: float, full: float, scale: float = 1.0, layer: str | None = None,
                 background: float = 0.2, nearest: bool = False) -> None:
        self.near, self.full, self.scale, self.layer = near, full, scale, layer
        self.background, self.nearest = background, nearest
        self.features: torch.Tensor | None = None

    def prepare(self, engine: InferCam, image: np.ndarray, classes: list[int]) -> None:
        level, = scale_inputs(engine, image, [self.scale])
        model = engine.model
        with torch.inference_mode():
            if self.layer is None:
                inner = getattr(model, "model", model)  # a class map's network reads its ImageNet network's features
                source = getattr(inner, "cam_features", None) or inner.features
                feats = source(level[None])[0]
            elif self.layer == "cam":  # every class's map: what any network's forward_cam gives
                feats = model.forward_cam(level[None])[0]
            else:
                grabbed = []
                handle = model.get_submodule(self.layer).register_forward_hook(lambda m, i, o: grabbed.append(o))
                model(level[None])
                handle.remove()
                feats = grabbed[0][0]
        self.features = torch.nn.functional.normalize(feats.float(), dim=0)

    def feature_weight(self, maxima: torch.Tensor, threshold: float) -> torch.Tensor:
        k, h, w = self.features.shape
        flat = self.features.reshape(k, -1)
        small = torch.nn.functional.interpolate(maxima[None].float(), size=(h, w), mode="area")[0]
        weights = []
        for m in small:
            inside, outside = (m >= threshold).flatten(), (m < self.background).flatten()
            if not bool(inside.any()):
                inside = m.flatten() == m.max()
            if not bool(outside.any()):
                weights.append(torch.ones(h, w, device=flat.device))
                continue
            if self.nearest:
                s_in = (flat[:, inside].T @ flat).amax(dim=0)
                s_out = (flat[:, outside].T @ flat).amax(dim=0)
            else:
                s_in = torch.nn.functional.normalize(flat[:, inside].mean(dim=1), dim=0) @ flat
                s_out = torch.nn.functional.normalize(flat[:, outside].mean(dim=1), dim=0) @ flat
            g = s_in.clamp(min=0) / (s_in.clamp(min=0) + s_out.clamp(min=0) + 1e-6)
            weights.append((g / self.full).clamp(0, 1).reshape(h, w))
        grid = torch.stack(weights)[None]
        return torch.nn.functional.interpolate(grid, size=maxima.shape[-2:], mode="bilinear",
                                               align_corners=False)[0]

    def __call__(self, cam: torch.Tensor, maxima: torch.Tensor, threshold: float) -> torch.Tensor:
        return AcceptNear(self.near)(cam, maxima, threshold) * self.feature_weight(maxima, threshold)


@dataclass(frozen=True)
class AcceptCapped:
    """Research-only (ninth round): the default's near gate, each round's gain capped at ``cap`` (None: the erase
    threshold), so what a round reveals once the core is erased can reach "covered" (and be erased next) but never
    outranks the core round 0 found: above the cap the map is the baseline's."""

    near: float
    cap: float | None = None

    def __call__(self, cam: torch.Tensor, maxima: torch.Tensor, threshold: float) -> torch.Tensor:
        return AcceptNear(self.near)(cam, maxima, threshold).clamp(max=threshold if self.cap is None else self.cap)


class ScaleGate:
    """Research-only (eleventh round): a class whose round-0 response grows with the input's scale (its raw map's
    peak at scale ``large`` >= ``ratio`` x its peak at scale ``small``, unflipped passes) is a small object at the
    network's resolution: erasing its core erases all of it, so its rounds would only find what touches it; it keeps
    its baseline map (no erasing round counts; the image stops when no class counts). ``then``: a further counts
    rule for the other classes. The two passes are the engine's own round-0 passes at those scales (its per-pass
    peaks could be kept), so they are left out of the pass count."""

    def __init__(self, ratio: float, small: float = 0.5, large: float = 2.0, then: PeakEvidence | None = None) -> None:
        self.ratio, self.small, self.large, self.then = ratio, small, large, then
        self.counting: torch.Tensor | None = None

    def prepare(self, engine: InferCam, image: np.ndarray, classes: list[int]) -> None:
        classes = sorted(set(int(c) for c in classes))
        with torch.inference_mode():
            peaks = [torch.relu(engine.model.forward_cam(level[None])[0][classes]).amax(dim=(-2, -1))
                     for level in scale_inputs(engine, image, [self.small, self.large])]
        self.counting = peaks[1] < self.ratio * peaks[0]

    def __call__(self, peaks: torch.Tensor, first_peaks: torch.Tensor) -> torch.Tensor:
        counting = self.counting.to(peaks.device)
        return counting if self.then is None else counting & self.then(peaks, first_peaks)


class EngineWrapper:
    """A research wrapper round an InferCam of recipe ``rec``: the same baseline, pass counters and recipe, so the
    scoring functions below use it as they use an engine; subclasses define ``__call__``."""

    def __init__(self, model, rec, **kwargs) -> None:
        self.engine = InferCam(model, mode=rec, **kwargs)
        self.cams, self.recipe, self.model = self.engine.cams, self.engine.recipe, self.engine.model

    def baseline(self, image: np.ndarray, classes) -> dict[int, np.ndarray]:
        return self.engine.baseline(image, classes)


class PerClassErasing(EngineWrapper):
    """Research-only (ninth round): each class erases only its own covered region (A_c >= the erase threshold),
    not the union of every class's, so one class's object is never blanked out from another class's input. That
    is the engine run once per class on that class alone; round 0 (the baseline, one pass for every class) is
    counted once. ``budget``: each class gets (max_rounds - 1) // L erasing rounds (at least 1), so an image costs
    no more passes than the default's until L > 4; otherwise every class gets all the rounds."""

    def __init__(self, model, rec, budget: bool, **kwargs) -> None:
        super().__init__(model, rec, **kwargs)
        self.rec, self.kwargs, self.budget = rec, kwargs, budget

    def __call__(self, image: np.ndarray, classes):
        classes = sorted(set(int(c) for c in classes))
        rounds = self.engine.config.max_rounds
        if self.budget:
            rounds = 1 + max(1, (rounds - 1) // len(classes))
        engine = self.engine
        if rounds != engine.config.max_rounds:
            engine = InferCam(self.model, mode=self.rec, **{**self.kwargs, "max_rounds": rounds})
            engine.cams = self.cams  # share the pass counters
        cams, result = {}, None
        for i, c in enumerate(classes):
            result = engine(image, [c])
            cams[c] = result.cams[c]
            if i:  # round 0 is one baseline for every class: count its passes once
                self.cams.forward_passes -= 2 * len(self.cams.scales)
        return dataclasses.replace(result, cams=cams)


class BlendWithBaseline(EngineWrapper):
    """Research-only (ninth round): the final map is (1 - ``weight``) x the baseline + ``weight`` x the mode's
    map, renormalised to a peak of 1 (no extra pass), so the core round 0 found stays above what the rounds added."""

    def __init__(self, model, rec, weight: float, **kwargs) -> None:
        super().__init__(model, rec, **kwargs)
        self.weight = weight

    def __call__(self, image: np.ndarray, classes):
        result = self.engine(image, classes)
        cams = {}
        for c, refined in result.cams.items():
            mixed = (1 - self.weight) * result.baseline[c] + self.weight * refined
            cams[c] = mixed / max(float(mixed.max()), 1e-5)
        return dataclasses.replace(result, cams=cams)


class ScaleKeep(EngineWrapper):
    """Research-only (twelfth round): the scale gate's cue, applied to the output only. The rounds run as the
    recipe's (every class still erases and is erased, so a small object's neighbour grows as it does without the
    gate); afterwards a class whose raw round-0 peak at scale 2 is >= ``ratio`` x its peak at scale 0.5 (a small
    object at the network's resolution) gets its baseline map back. The two passes are the engine's own round-0
    passes at those scales, left out of the count as in ``ScaleGate``."""

    def __init__(self, model, rec, ratio: float, **kwargs) -> None:
        super().__init__(model, rec, **kwargs)
        self.gate = ScaleGate(ratio)

    def __call__(self, image: np.ndarray, classes):
        result = self.engine(image, classes)
        self.gate.prepare(self.engine, image, list(result.cams))
        ordered = sorted(result.cams)
        cams = {c: refined if bool(self.gate.counting[ordered.index(c)]) else result.baseline[c]
                for c, refined in result.cams.items()}
        return dataclasses.replace(result, cams=cams)


def make_engine(model, rec, kwargs: dict):
    """The engine of a variant: an InferCam, or one of the research wrappers above."""
    kwargs = dict(kwargs)
    per_class = kwargs.pop("per_class_erasing", None)
    blend = kwargs.pop("blend_with_baseline", None)
    keep = kwargs.pop("scale_keep", None)
    if keep is not None:
        return ScaleKeep(model, rec or "default", keep, **kwargs)
    if per_class is not None:
        return PerClassErasing(model, rec, per_class == "budget", **kwargs)
    if blend is not None:
        return BlendWithBaseline(model, rec or "default", blend, **kwargs)
    return InferCam(model, mode=rec or "default", **kwargs)


def calibrate_rule(engine: InferCam | EngineWrapper, items: Sequence[tuple[np.ndarray, list[int]]]) -> None:
    """Hand the whole image set to a counts rule that sets its bar from the data set (``RelativeEvidence``)."""
    rule = getattr(getattr(engine, "recipe", None), "counts", None)
    if hasattr(rule, "calibrate"):
        rule.calibrate(engine, items)


def prepare_rule(engine: InferCam, image: np.ndarray, classes: list[int]) -> None:
    """Hand this image to the engine's accept and counts rules if they need it (the research rules above)."""
    for rule in (engine.recipe.accept, engine.recipe.counts):
        prepare = getattr(rule, "prepare", None)
        if prepare is not None:
            prepare(engine, image, classes)


def variants() -> dict[str, tuple]:
    """name -> (recipe, engine keyword arguments). Rows measured with rules no mode uses any more (normalising
    by the image's peak, an evidence gate, anchoring to the baseline, a blurred fill, the baseline as a patch's
    round 0) were run at commit 173d8d4 of this file; BENCHMARKS.md lists them."""
    d, f = RECIPES["default"], RECIPES["fixed"]  # "published": mode fixed; "near ... per class": the default's rule
    r = dataclasses.replace
    corners = f.boxes
    return {
        "published": (f, {}),
        "reference": (RECIPES["reference"], {}),
        "published 1 round": (f, {"max_rounds": 1}),
        "published+blend": (r(f, merge=merge_blend), {}),
        "published no split": (r(f, boxes=whole_image), {}),
        **{f"published near {n}": (r(f, accept=AcceptNearUnion(n), merge=merge_blend), {}) for n in (0.1, 0.2, 0.3)},
        "published+blend margins 50/80": (r(f, merge=merge_blend), {"margins": (50, 80)}),
        "published+blend near 0.2 margins 50/80": (r(f, merge=merge_blend, accept=AcceptNearUnion(0.2)), {"margins": (50, 80)}),
        "default (near 0.5 per class, every round)": (d, {}),
        "near 0.5, every round (union of classes: the previous default)": (r(d, accept=AcceptNearUnion(0.5)), {}),
        **{f"near {n}": (r(d, accept=AcceptNearUnion(n)), {}) for n in (0.1, 0.3)},
        "near erase 0.5": (r(d, accept=AcceptNearUnion(0.5)), {"erase_threshold": 0.5}),
        **{f"near {n} stop0": (r(d, accept=AcceptNearUnion(n)), {"stop_fraction": 0.0}) for n in (0.2, 0.3, 0.4, 0.5, 0.7)},
        **{f"near 0.5 stop0 {k} rounds": (r(d, accept=AcceptNearUnion(0.5)), {"stop_fraction": 0.0, "max_rounds": k})
           for k in (3, 4, 7)},
        **{f"near {n}": (r(d, accept=AcceptNearUnion(n)), {}) for n in (0.5,)},
        "near with corner patches": (r(d, boxes=corners, merge=merge_blend, accept=AcceptNearUnion(0.5)), {}),
        **{f"near {n} per class": (r(d, accept=AcceptNear(n)), {}) for n in (0.3, 0.7)},
        **{f"extent {k} per class": (r(d, accept=AcceptNearExtent(k)), {}) for k in (0.25, 0.5, 1.0, 2.0, 3.0)},
        **{f"extent {k} union": (r(d, accept=AcceptNearExtent(k, per_class=False)), {}) for k in (0.5, 1.0)},
        **{f"peak evidence {t}": (r(d, counts=PeakEvidence(t)), {}) for t in (0.4, 0.5, 0.6, 0.7)},
        **{f"dilated erase {m}": (r(d, keep_masks=DilatedErase(m)), {}) for m in (0.02, 0.05, 0.1)},
        **{f"rival {f}": (r(d, accept=AcceptNearRival(NEAR, f)), {}) for f in (0.3, 0.5, 0.7, 1.0)},
        **{f"colour {f}": (r(d, accept=AcceptNearColour(NEAR, f)), {}) for f in (0.3, 0.5, 0.7)},
        **{f"rival round {f}": (r(d, accept=AcceptNearRivalRound(NEAR, f)), {}) for f in (0.3, 0.5, 0.7, 1.0)},
        **{f"rival stop {f}": (r(d, accept=RivalStop(NEAR, f)), {}) for f in (0.5, 0.7, 0.9)},
        **{f"evidence rival round {f}": (r(RECIPES["evidence"], accept=AcceptNearRivalRound(NEAR, f)), {})
           for f in (0.5, 0.7)},
        **{f"evidence colour {f}": (r(RECIPES["evidence"], accept=AcceptNearColour(NEAR, f)), {})
           for f in (0.3, 0.5, 0.7)},
        "capped at the erase threshold": (r(d, accept=AcceptCapped(NEAR)), {}),
        "evidence capped at the erase threshold": (r(RECIPES["evidence"], accept=AcceptCapped(NEAR)), {}),
        **{f"capped at {c}": (r(d, accept=AcceptCapped(NEAR, c)), {}) for c in (0.8, 0.9)},
        "per-class erasing": (d, {"per_class_erasing": "full"}),
        "per-class erasing, default's budget": (d, {"per_class_erasing": "budget"}),
        "evidence per-class erasing": (RECIPES["evidence"], {"per_class_erasing": "full"}),
        "evidence per-class erasing, default's budget": (RECIPES["evidence"], {"per_class_erasing": "budget"}),
        **{f"feature {f}": (r(d, accept=AcceptNearFeature(NEAR, f)), {}) for f in (0.4, 0.5, 0.6, 0.7)},
        **{f"feature nearest {f}": (r(d, accept=AcceptNearFeature(NEAR, f, nearest=True)), {}) for f in (0.5, 0.6, 0.7)},
        **{f"feature scale 2 {f}": (r(d, accept=AcceptNearFeature(NEAR, f, scale=2.0)), {}) for f in (0.5, 0.6, 0.7)},
        **{f"feature mid {f}": (r(d, accept=AcceptNearFeature(NEAR, f, scale=2.0, layer="_blocks.10")), {})
           for f in (0.4, 0.5, 0.6, 0.7)},  # EfficientNet-Lite0's last stride-16 block
        **{f"feature cam {f}": (r(d, accept=AcceptNearFeature(NEAR, f, layer="cam")), {}) for f in (0.5, 0.6)},
        **{f"feature cam scale 2 {f}": (r(d, accept=AcceptNearFeature(NEAR, f, scale=2.0, layer="cam")), {})
           for f in (0.6,)},
        **{f"feature mid demo {f}": (r(d, accept=AcceptNearFeature(NEAR, f, scale=2.0, layer="stages.2")), {})
           for f in (0.6,)},  # the demo network's third stage: its analogue for the synthetic split
        **{f"evidence feature {f}": (r(RECIPES["evidence"], accept=AcceptNearFeature(NEAR, f)), {}) for f in (0.5, 0.6, 0.7)},
        **{f"blend {w}": (d, {"blend_with_baseline": w}) for w in (0.25, 0.5, 0.75)},
        **{f"evidence blend {w}": (RECIPES["evidence"], {"blend_with_baseline": w}) for w in (0.25, 0.5, 0.75)},
        **{f"scale gate {g}": (r(d, counts=ScaleGate(g)), {}) for g in (1.0, 1.5, 2.0)},
        **{f"scale gate {g} blend 0.75": (r(d, counts=ScaleGate(g)), {"blend_with_baseline": 0.75}) for g in (1.0, 1.5, 2.0)},
        **{f"evidence scale gate {g}": (r(d, counts=ScaleGate(g, then=PeakEvidence(0.5))), {}) for g in (1.0, 2.0)},
        **{f"feature {f} blend {w}": (r(d, accept=AcceptNearFeature(NEAR, f)), {"blend_with_baseline": w})
           for f in (0.4, 0.5) for w in (0.5, 0.75)},
        **{f"scale keep {g}": (d, {"scale_keep": g}) for g in (1.5, 2.0, 3.0)},
        **{f"relative evidence {k}": (r(d, counts=RelativeEvidence(k)), {}) for k in (0.3, 0.5, 0.7, 0.8)},
        **{f"band evidence {lo}-{hi}": (r(d, counts=BandEvidence(lo, hi)), {}) for lo in (0.2, 0.3) for hi in (0.5, 0.6)},
        **{f"evidence scale keep {g}": (RECIPES["evidence"], {"scale_keep": g}) for g in (1.5, 2.0)},
        **{f"feature 0.4 scale keep {g}": (r(d, accept=AcceptNearFeature(NEAR, 0.4)), {"scale_keep": g})
           for g in (1.5, 2.0)},
    }


def photo_scores(engine: InferCam, found, baseline: bool = False) -> dict[str, float]:
    """Mean share, best IoU (each object at its own threshold), IoU at the one threshold best for all the objects
    together, seam and passes of one method on the photos."""
    shares, curves, seams, passes, objects = [], [], [], [], []
    calibrate_rule(engine, [(image, photo.imagenet_classes()) for photo, image in found])
    for photo, image in found:
        classes = photo.imagenet_classes()
        engine.cams.forward_passes = 0
        prepare_rule(engine, image, classes)
        result = None if baseline else engine(image, classes)
        maps = engine.baseline(image, classes) if baseline else result.cams
        passes.append(engine.cams.forward_passes)
        for c in classes:
            region = photo.region(c, shape=image.shape[:2])
            shares.append(mass_share(maps[c], region))
            curves.append(iou_curve(maps[c], region))
            objects.append(f"{photo.name}/{c} {shares[-1]:.3f}/{max(curves[-1]):.3f}")
            seam = float("nan") if baseline else seam_ratio(maps[c], [tuple(b) for b in result.boxes])
            if not np.isnan(seam):
                seams.append(seam)
    t = common_threshold(curves)
    one_t = float(np.mean([curve[list(BOX_THRESHOLDS).index(t)] for curve in curves]))
    return {"share": statistics.fmean(shares), "iou": float(np.mean([max(c) for c in curves])), "one_t": one_t,
            "t": t, "seam": statistics.fmean(seams) if seams else float("nan"), "passes": statistics.fmean(passes),
            "objects": objects}


def synthetic_scores(engine: InferCam, dataset: VOCDataset, baseline: bool = False) -> dict[str, float]:
    sweep, passes = CamSweep(), []
    calibrate_rule(engine, [(load_image(dataset.image_path(n)), dataset.labels(n)) for n in dataset.names])
    for name in dataset.names:
        image, labels = load_image(dataset.image_path(name)), dataset.labels(name)
        engine.cams.forward_passes = 0
        prepare_rule(engine, image, labels)
        maps = engine.baseline(image, labels) if baseline else engine(image, labels).cams
        passes.append(engine.cams.forward_passes)
        sweep.add(dataset.ground_truth(name), maps)
    result = sweep.result(dataset.names)
    return {"miou": result.miou, "t": result.best_threshold, "passes": statistics.fmean(passes)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", default=None, help="semicolon-separated variant names (default: all)")
    parser.add_argument("--synthetic", type=int, default=40, help="synthetic development images (0: none)")
    parser.add_argument("--no-photos", action="store_true")
    parser.add_argument("--per-object", action="store_true", help="also print each dev object's share / IoU")
    args = parser.parse_args(argv)
    table = variants()
    names = args.variants.split(";") if args.variants else list(table)
    found = [] if args.no_photos else [(p, fit(im, 500)) for p, im in photos.available("dev")[0]]
    lite0 = models.build_network("efficientnet-lite0")[0]
    demo = models.build_network("demo")[0]
    dataset = None
    if args.synthetic:
        root = Path(tempfile.mkdtemp(prefix="infercam-study-")) / "syn"
        make_synthetic(root, 0, args.synthetic, size=176, seed=DEV_SEED)
        dataset = VOCDataset.open(root, root / "ImageSets/Segmentation/val.txt")
    print("| variant | dev photos: share | IoU | IoU at one t (t) | seam | passes/img | synthetic dev: mIoU | best t "
          "| passes/img |")
    print("|---|---|---|---|---|---|---|---|---|")
    rows = [("baseline", None, {})] + [(n, *table[n]) for n in names]
    for name, rec, kwargs in rows:
        nan = float("nan")
        p = {"share": nan, "iou": nan, "one_t": nan, "t": nan, "seam": nan, "passes": nan}
        if found:
            p = photo_scores(make_engine(lite0, rec, kwargs), found, baseline=rec is None)
        s = {"miou": nan, "t": nan, "passes": nan}
        if dataset is not None:
            s = synthetic_scores(make_engine(demo, rec, kwargs), dataset, baseline=rec is None)
        print(f"| {name} | {p['share']:.3f} | {p['iou']:.3f} | {p['one_t']:.3f} ({p['t']:.2f}) | {p['seam']:.2f} | "
              f"{p['passes']:.0f} | {s['miou']:.2f} | {s['t']:.2f} | {s['passes']:.0f} |", flush=True)
        if args.per_object and found:
            print("    " + "; ".join(p["objects"]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
