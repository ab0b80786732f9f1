"""The modes' rules on small inputs with tiny deterministic models, and the scores bench/real_photos.py reports."""
from __future__ import annotations

import math

import numpy as np
import torch

from infercam import InferCam
from infercam.evaluation.metrics import best_iou, mass_share, seam_ratio
from infercam.method.refine import PatchState
from infercam.method.modes import MODES, RECIPES, AcceptNear, accept_all, chained_masks, near_weight, per_scale_masks, \
    whole_image
from infercam.method.split import Box, merge_max, patch_boxes
from tiny import ColourCamNet


def test_each_mode_is_one_recipe_of_named_rules():
    assert MODES == ("default", "fixed", "reference")
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


def test_near_reaches_what_lies_close_to_the_covered_region():
    img = np.zeros((64, 64, 3), np.uint8) + 10
    yy, xx = np.mgrid[:64, :64]
    img[..., 0][(yy - 20) ** 2 + (xx - 20) ** 2 <= 25] = 250
    img[..., 0][(yy - 20) ** 2 + (xx - 29) ** 2 <= 9] = 150  # a dimmer part beside it
    kwargs = {"scales": (1.0,), "stop_fraction": 0.0, "max_rounds": 2}
    base = InferCam(ColourCamNet(), **kwargs).baseline(img, [0])[0]
    near = InferCam(ColourCamNet(), mode="default", **kwargs)(img, [0]).cams[0]
    assert near[20, 29] > base[20, 29] + 0.2


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


def test_the_default_gates_each_class_by_what_that_class_covers():
    """A class's round counts near its own covered region: class 0 covers the left, class 1 the right, so class 0's
    new response on the right is dropped, though it lies on what the image's other class covers."""
    maxima = torch.zeros(2, 10, 40)
    maxima[0, :, :5] = 1.0  # class 0 covers columns 0-4
    maxima[1, :, 35:] = 1.0  # class 1 covers columns 35-39
    new = torch.ones(2, 10, 40)
    kept = AcceptNear(0.5)(new, new, PatchState([], (10, 40), maxima=maxima), threshold=0.7)  # reach 0.5 x 10 = 5 px
    assert torch.equal(kept[0, :, :5], torch.ones(10, 5)) and float(kept[0, :, 35:].max()) == 0.0
    assert torch.equal(kept[1, :, 35:], torch.ones(10, 5)) and float(kept[1, :, :5].max()) == 0.0
    assert 0.0 < float(kept[0, 0, 7]) < 1.0  # 3 px from class 0's region: a partial weight
    empty = AcceptNear(0.5)(new, new, PatchState([], (10, 40), maxima=torch.zeros(2, 10, 40)), threshold=0.7)
    assert torch.equal(empty, new)  # nothing covered yet: everything counts
