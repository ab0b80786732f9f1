"""The closer look at small objects (infercam.method.zoom) on small inputs with a tiny coarse network."""
from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from infercam import InferCam
from infercam.evaluation.metrics import best_iou, seam_ratio
from infercam.method.modes import RECIPES
from infercam.method.split import Box
from infercam.method.zoom import ZoomSmall, blend, enlarge


class CoarseColourNet(nn.Module):
    """Maps on an 8 px grid: class c responds to colour channel c % 3 above its mean (a classifier's coarse CAM)."""

    def forward_cam(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.avg_pool2d(x, 8, stride=8, ceil_mode=True)
        channel = torch.arange(6) % 3
        chosen = pooled[:, channel]
        return F.relu(chosen - chosen.mean(dim=(2, 3), keepdim=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_cam(x).mean(dim=(2, 3))


def small_square_image() -> tuple[np.ndarray, np.ndarray]:
    """A 12 px red square, off the 8 px grid, on a 96 x 96 grey image, and its mask."""
    img = np.full((96, 96, 3), 60, np.uint8)
    img[43:55, 29:41, 0] = 250
    mask = np.zeros((96, 96), bool)
    mask[43:55, 29:41] = True
    return img, mask


def test_a_small_region_gets_a_box_with_a_margin_and_a_large_one_none():
    zoom = ZoomSmall(threshold=0.3, margin=0.5, min_zoom=2.0, max_zoom=4.0)
    base = np.zeros((100, 200), np.float32)
    base[40:50, 60:80] = 1.0  # 10 x 20 px
    box, factor = zoom.box(base)
    assert box == Box(35, 50, 55, 90) and factor == 4.0  # 5 / 10 px margins; the zoom capped at 4
    base[:, 20:180] = 0.5  # 100 x 160 px: a closer look would enlarge it by at most 1.25
    assert zoom.box(base) is None
    assert zoom.box(np.zeros((10, 10), np.float32)) is None  # nothing above the threshold


def test_the_zoom_costs_no_more_input_pixels_than_the_image():
    zoom = ZoomSmall(min_zoom=1.0, max_zoom=10.0)
    base = np.zeros((50, 200), np.float32)
    base[20:30, 95:105] = 1.0
    box, factor = zoom.box(base)
    assert (box.height * factor) * (box.width * factor) <= 50 * 200 + 1e-6


def test_the_window_ramps_only_at_sides_inside_the_image():
    zoom = ZoomSmall(band=0.25)
    w = zoom.window(Box(0, 10, 20, 30), 40, 40)  # top on the image border, the other sides inside
    assert float(w[0, 10]) == 1.0  # no ramp at the top
    assert float(w[-1, 10]) < 0.2 and float(w[10, 0]) < 0.2 and float(w[10, -1]) < 0.2
    assert float(w[10, 10]) == 1.0


def test_blend_leaves_the_map_outside_the_box_and_has_no_step_at_its_border():
    yy, xx = np.mgrid[:60, :60] / 60.0
    canvas = torch.from_numpy((0.4 * xx + 0.2 * yy).astype(np.float32))
    box = Box(15, 20, 45, 50)
    zoomed = torch.rand(120, 120, generator=torch.Generator().manual_seed(0))
    out = blend(canvas, box, zoomed, ZoomSmall(band=0.3).window(box, 60, 60))
    inside = np.zeros((60, 60), bool)
    inside[15:45, 20:50] = True
    assert torch.equal(out[torch.from_numpy(~inside)], canvas[torch.from_numpy(~inside)])
    assert seam_ratio(out.numpy(), [box]) < 2.0  # a pasted patch (no window) gives a large step
    pasted = canvas.clone()
    pasted[15:45, 20:50] = F.interpolate(zoomed[None, None], size=(30, 30), mode="bilinear")[0, 0]
    assert seam_ratio(pasted.numpy(), [box]) > 2 * seam_ratio(out.numpy(), [box])


def test_enlarge_resizes_the_crop_by_the_factor():
    img = np.zeros((40, 60, 3), np.uint8)
    assert enlarge(img, Box(10, 20, 20, 35), 2.0).shape == (20, 30, 3)


def test_a_closer_look_sharpens_a_small_object_at_the_cost_of_one_multiscale_cam():
    img, mask = small_square_image()
    zoomed = dataclasses.replace(RECIPES["default"], zoom=ZoomSmall())
    plain = InferCam(CoarseColourNet(), mode="default")
    closer = InferCam(CoarseColourNet(), mode=zoomed)
    base = plain.baseline(img, [0])[0]
    result = closer(img, [0])
    assert set(result.zooms) == {0}
    box = result.zooms[0]
    assert box.top <= 43 and box.bottom >= 55 and box.left <= 29 and box.right >= 41
    outside = np.ones(mask.shape, bool)
    outside[box.slices()] = False
    assert np.array_equal(result.cams[0][outside], base[outside])  # only the box changes
    assert best_iou(result.cams[0], mask)[0] > best_iou(base, mask)[0] + 0.1
    assert closer.cams.forward_passes == 2 * 2 * len(closer.scales)  # the baseline and one closer look
    assert result.rounds == [1]


def test_a_large_object_is_refined_by_the_rounds_as_without_the_zoom():
    img = np.full((64, 64, 3), 60, np.uint8)
    img[8:56, 8:56, 0] = 250
    zoomed = dataclasses.replace(RECIPES["default"], zoom=ZoomSmall())
    with_zoom = InferCam(CoarseColourNet(), mode=zoomed)(img, [0, 1])
    without = InferCam(CoarseColourNet(), mode="default")(img, [0, 1])
    assert 0 not in with_zoom.zooms
    assert np.array_equal(with_zoom.cams[0], without.cams[0])


def test_in_one_image_a_small_object_is_zoomed_and_a_large_one_erased():
    img = np.full((96, 96, 3), 60, np.uint8)
    img[8:88, 8:48, 0] = 250  # a large red object: class 0
    img[70:80, 70:80, 1] = 250  # a small green one: class 1
    zoomed = dataclasses.replace(RECIPES["default"], zoom=ZoomSmall())
    engine = InferCam(CoarseColourNet(), mode=zoomed)
    result = engine(img, [0, 1])
    assert set(result.zooms) == {1}
    assert len(result.rounds) == 2 and result.rounds[-1] == 1  # the whole image's rounds, then the closer look
    passes = 2 * len(engine.scales)  # one multi-scale CAM
    assert engine.cams.forward_passes == (result.rounds[0] + 1) * passes  # round 0 is the closer look's baseline too
    base = engine.baseline(img, [0, 1])
    assert not np.array_equal(result.cams[1], base[1])
