"""The modes' rules on small inputs with tiny deterministic models, and the scores bench/real_photos.py reports."""
from __future__ import annotations

import math

import numpy as np
import torch

from infercam import InferCam
from infercam.evaluation.metrics import best_iou, common_threshold, iou_curve, mass_share, seam_ratio
from infercam.method.modes import MODES, RECIPES, AcceptNear, PeakEvidence, accept_all, chained_masks, near_weight, \
    per_scale_masks, whole_image
from infercam.method.split import Box, merge_max, patch_boxes
from tiny import ColourCamNet


def test_each_mode_is_one_recipe_of_named_rules():
    assert MODES == ("default", "evidence", "fixed", "reference")
    evidence = RECIPES["evidence"]
    assert evidence.counts == PeakEvidence(0.5) and all(r.counts is None for r in RECIPES.values() if r is not evidence)
    assert (evidence.boxes, evidence.keep_masks, evidence.accept, evidence.stop_fraction) == \
        (RECIPES["default"].boxes, RECIPES["default"].keep_masks, RECIPES["default"].accept, 0.0)
    ref, default, near = RECIPES["reference"], RECIPES["fixed"], RECIPES["default"]
    assert ref.keep_masks is chained_masks and default.keep_masks is per_scale_masks is near.keep_masks
    assert ref.accept is accept_all and default.accept is accept_all and isinstance(near.accept, AcceptNear)
    assert near.boxes is whole_image and ref.merge is merge_max
    # where a patch starts: reference wraps a negative start as numpy does, default clamps it, near does not cut
    assert ref.boxes([(3, 60)], 120, 150, (10, 20))[2].top == 113
    assert default.boxes([(3, 60)], 120, 150, (10, 20))[2].top == 0
    assert patch_boxes([(3, 60), (90, 10)], 120, 150) == [Box(0, 0, 120, 150)] * 4
    assert near.stop_fraction == 0.0 and default.stop_fraction == 0.02 == ref.stop_fraction


def test_near_weight_falls_linearly_from_the_covered_region():
    covered = torch.zeros(1, 21, dtype=torch.bool)
    covered[0, 0] = True
    w = near_weight(covered, radius=10)[0]
    assert float(w[0]) == 1 and abs(float(w[5]) - 0.5) < 1e-6 and float(w[10]) == 0 and float(w[20]) == 0
    assert bool((near_weight(torch.zeros(3, 4, dtype=torch.bool), 2) == 1).all())


def two_blob_image() -> np.ndarray:
    """A bright red disc top left and a dimmer one far away bottom right (the far one about 0.6 of the near)."""
    img = np.zeros((64, 64, 3), np.uint8) + 10
    yy, xx = np.mgrid[:64, :64]
    img[..., 0][(yy - 10) ** 2 + (xx - 10) ** 2 <= 25] = 250
    img[..., 0][(yy - 54) ** 2 + (xx - 54) ** 2 <= 25] = 150
    return img


def test_published_rounds_jump_to_a_far_response_and_near_rounds_do_not():
    img = two_blob_image()
    far = np.zeros((64, 64), bool)
    far[50:59, 50:59] = True
    kwargs = {"scales": (1.0,), "stop_fraction": 0.0, "max_rounds": 2}
    base = InferCam(ColourCamNet(), **kwargs).baseline(img, [0])[0]
    published = InferCam(ColourCamNet(), mode="fixed", **kwargs)(img, [0]).cams[0]
    near = InferCam(ColourCamNet(), mode="default", **kwargs)(img, [0]).cams[0]
    assert base[far].max() < 0.3  # the far disc is much weaker than the near one
    assert published[far].max() > 0.95  # erasing the near disc stretches the far one to the peak
    assert np.allclose(near, base)  # beyond 0.5 x 64 px of the covered disc the round does not count


def disc_with_a_part(part: int) -> np.ndarray:
    """A bright red disc and, beside it, a smaller part of red level ``part``."""
    img = np.zeros((64, 64, 3), np.uint8) + 10
    yy, xx = np.mgrid[:64, :64]
    img[..., 0][(yy - 20) ** 2 + (xx - 20) ** 2 <= 25] = 250
    img[..., 0][(yy - 20) ** 2 + (xx - 29) ** 2 <= 9] = part
    return img


def test_near_reaches_what_lies_close_to_the_covered_region():
    img = disc_with_a_part(150)  # a dimmer part beside the disc
    kwargs = {"scales": (1.0,), "stop_fraction": 0.0, "max_rounds": 2}
    base = InferCam(ColourCamNet(), **kwargs).baseline(img, [0])[0]
    near = InferCam(ColourCamNet(), mode="default", **kwargs)(img, [0]).cams[0]
    assert near[20, 29] > base[20, 29] + 0.2


def test_evidence_stops_a_class_whose_erased_input_no_longer_shows_it():
    """Once the bright disc is erased, a part of level 150 peaks at about 0.2 of round 0 (below the evidence
    ratio 0.5): the evidence mode drops that round and stops; the default counts it. A part of level 200 (about 0.61)
    counts in both modes."""
    kwargs = {"scales": (1.0,), "stop_fraction": 0.0, "max_rounds": 5}
    for part, counts in ((150, False), (200, True)):
        img = disc_with_a_part(part)
        base = InferCam(ColourCamNet(), **kwargs).baseline(img, [0])[0]
        default = InferCam(ColourCamNet(), mode="default", **kwargs)(img, [0]).cams[0]
        engine = InferCam(ColourCamNet(), mode="evidence", **kwargs)
        result = engine(img, [0])
        assert default[20, 29] > base[20, 29] + 0.2
        if counts:
            assert result.cams[0][20, 29] > base[20, 29] + 0.2
        else:
            assert np.array_equal(result.cams[0], base)
            assert result.rounds == [2] and engine.cams.forward_passes == 4  # round 0 and the one that failed


def test_evidence_is_per_class_and_for_good():
    """A class that failed once stays out even if a later round shows it strongly again; the patch ends when no
    class counts any more."""
    from infercam.method.refine import PatchState, RefineConfig
    state = PatchState([], (4, 4))
    config = RefineConfig(stop_fraction=0.0, max_rounds=10)
    recipe = RECIPES["evidence"]
    peaks = [(10.0, 10.0), (6.0, 3.0), (2.0, 9.0)]
    for k, (a, b) in enumerate(peaks):
        raw = torch.zeros(2, 4, 4)
        raw[0, k, 0], raw[1, k, 3] = a, b
        state.update(raw, recipe, config)
        if k == 1:
            assert state.active.tolist() == [True, False] and not state.done
            assert float(state.maxima[1, 1, 3]) == 0.0  # class 1's round did not count
    assert state.active.tolist() == [False, False] and state.done and state.rounds == 3
    assert float(state.maxima[1, 2, 3]) == 0.0  # class 1 stays out though its peak is back at 0.9 of round 0


def test_default_costs_fewer_passes_than_the_published_rounds():
    img = two_blob_image()
    counts = {}
    for mode in ("default", "fixed"):
        engine = InferCam(ColourCamNet(), mode=mode)
        engine(img, [0])
        counts[mode] = engine.cams.forward_passes
    assert counts["default"] < counts["fixed"]


def test_seam_ratio_is_about_one_for_a_smooth_map_and_large_for_a_step_at_a_border():
    yy, xx = np.mgrid[:40, :40] / 40.0
    smooth = (0.5 * xx + 0.3 * yy).astype(np.float32)
    boxes = [Box(0, 0, 25, 25), Box(0, 15, 25, 40), Box(15, 0, 40, 25), Box(15, 15, 40, 40)]
    assert abs(seam_ratio(smooth, boxes) - 1.0) < 0.05
    patches = [(b, np.full((1, b.height, b.width), 0.2 + 0.2 * i, np.float32)) for i, b in enumerate(boxes)]
    stepped = merge_max(patches, (1, 40, 40))[0] + smooth * 0.1
    assert seam_ratio(stepped, boxes) > 10
    assert math.isnan(seam_ratio(smooth, [Box(0, 0, 40, 40)] * 4))  # no border inside the image


def test_box_scores_on_known_maps():
    region = np.zeros((10, 10), bool)
    region[2:6, 2:6] = True
    cam = np.zeros((10, 10), np.float32)
    cam[2:6, 2:6] = 1.0
    cam[8, 8] = 0.3
    assert abs(mass_share(cam, region) - 16 / 16.3) < 1e-6
    score, t = best_iou(cam, region)
    assert score == 1.0 and t > 0.3
    assert mass_share(np.zeros((10, 10)), region) == 0.0


def test_one_threshold_for_all_objects_is_the_best_mean_iou():
    """Object a is best at t 0.2 (IoU 1), object b at t 0.8; together 0.2 wins (mean IoU 0.75 against 0.5 and 0.5)."""
    region = np.zeros((1, 4), bool)
    region[0, :2] = True
    a = np.array([[0.3, 0.6, 0.1, 0.1]])  # >= 0.2: exact; >= 0.5: half of it; >= 0.8: nothing
    b = np.array([[0.9, 0.9, 0.6, 0.6]])  # >= 0.2 or 0.5: twice the region; >= 0.8: exact
    thresholds = (0.2, 0.5, 0.8)
    curves = [iou_curve(a, region, thresholds), iou_curve(b, region, thresholds)]
    np.testing.assert_allclose(curves, [[1.0, 0.5, 0.0], [0.5, 0.5, 1.0]])
    assert best_iou(a, region, thresholds) == (1.0, 0.2) and best_iou(b, region, thresholds) == (1.0, 0.8)
    assert common_threshold(curves, thresholds) == 0.2  # one threshold cannot fit both
    assert common_threshold(curves[1:], thresholds) == 0.8


def test_the_default_gates_each_class_by_what_that_class_covers():
    """A class's round counts near its own covered region: class 0 covers the left, class 1 the right, so class 0's
    new response on the right is dropped, though it lies on what the image's other class covers."""
    maxima = torch.zeros(2, 10, 40)
    maxima[0, :, :5] = 1.0  # class 0 covers columns 0-4
    maxima[1, :, 35:] = 1.0  # class 1 covers columns 35-39
    new = torch.ones(2, 10, 40)
    kept = AcceptNear(0.5)(new, maxima, threshold=0.7)  # reach 0.5 x 10 = 5 px
    assert torch.equal(kept[0, :, :5], torch.ones(10, 5)) and float(kept[0, :, 35:].max()) == 0.0
    assert torch.equal(kept[1, :, 35:], torch.ones(10, 5)) and float(kept[1, :, :5].max()) == 0.0
    assert 0.0 < float(kept[0, 0, 7]) < 1.0  # 3 px from class 0's region: a partial weight
    empty = AcceptNear(0.5)(new, torch.zeros(2, 10, 40), threshold=0.7)
    assert torch.equal(empty, new)  # nothing covered yet: everything counts


def test_seam_ratio_measures_a_box_inside_the_image_along_its_own_edges():
    """A map pasted into a box in the middle steps at the box's edges; the rows and columns beyond the box, where
    the edges' lines run on, do not count as border."""
    yy, xx = np.mgrid[:60, :60] / 60.0
    smooth = (0.5 * xx + 0.3 * yy).astype(np.float32)
    box = Box(20, 20, 40, 40)
    pasted = smooth.copy()
    pasted[20:40, 20:40] += 0.3
    # a step of 0.3 along the edges against a mean step of about 0.0067 elsewhere: about 45 (counting the edges'
    # whole rows and columns would dilute it to about 16)
    assert seam_ratio(pasted, [box]) > 40
    assert abs(seam_ratio(smooth, [box]) - 1.0) < 0.05
