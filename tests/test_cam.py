"""Multi-scale CAM passes: sizes, normalisation, flips, erasing masks, batching."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from infercam.errors import InferCamError, LabelError
from infercam.method.cam import (CamJob, MultiScaleCam, check_scales, erase, image_pyramid, normalize_image,
                                 pass_keep_masks, scaled_size)
from tiny import TinyCamNet

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def test_scaled_size_uses_python_round_half_to_even():
    assert scaled_size(375, 500, 0.5) == (188, 250)  # 187.5 -> 188
    assert scaled_size(125, 125, 0.5) == (62, 62)    # 62.5 -> 62
    assert scaled_size(375, 500, 1.5) == (562, 750)  # 562.5 -> 562
    assert scaled_size(1, 3, 0.5) == (1, 2)          # never below 1 px (0.5 -> 0 -> 1)


def test_check_scales_rejects_bad_values():
    assert check_scales([1, 0.5]) == (1.0, 0.5)
    for bad in ([], [0.0], [-1.0], [float("nan")]):
        with pytest.raises(InferCamError):
            check_scales(bad)


def test_a_scale_that_shrinks_the_image_under_the_network_stride_is_refused_for_that_image():
    """--scales 0.01 gave all-zero maps: each level must keep the image's shorter side at 8 px (the stride) or more."""
    from infercam import InferCam
    from infercam.errors import ImageError

    engine = InferCam(TinyCamNet(), scales=[1.0, 0.1])
    with pytest.raises(ImageError, match="scale 0.1 makes this 100x70 image 10x7 px, under the networks' minimum"):
        engine(np.zeros((70, 100, 3), np.uint8), [0])
    assert engine(np.zeros((80, 100, 3), np.uint8), [0]).cams[0].shape == (80, 100)  # 10x8 at 0.1: enough


def test_normalize_matches_psa_formula():
    img = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    x = normalize_image(img, MEAN, STD)
    assert x.dtype == torch.float32 and x.shape == (3, 5, 7)
    expected = ((img[..., 1] / 255.0 - MEAN[1]) / STD[1]).astype(np.float32)
    assert np.array_equal(x[1].numpy(), expected)


def test_pyramid_resizes_with_pil_bicubic():
    img = np.random.default_rng(1).integers(0, 256, (31, 45, 3), dtype=np.uint8)
    levels = image_pyramid(img, (1.0, 0.5, 2.0), MEAN, STD)
    assert [tuple(t.shape[1:]) for t in levels] == [(31, 45), (16, 22), (62, 90)]  # 15.5 -> 16, 22.5 -> 22
    assert torch.equal(levels[0], normalize_image(img, MEAN, STD))
    half = np.asarray(Image.fromarray(img).resize((22, 16), resample=Image.BICUBIC))
    assert torch.equal(levels[1], normalize_image(half, MEAN, STD))


def test_erase_fills_with_the_inputs_own_mean():
    x = torch.randn(3, 6, 8)
    keep = torch.ones(6, 8, dtype=torch.bool)
    keep[2:4, 3:7] = False
    out = erase(x, keep)
    assert torch.equal(out[:, keep], x[:, keep])
    mean = x.mean(dim=(1, 2))
    assert torch.allclose(out[:, ~keep], mean[:, None].expand(3, 8))


def test_keep_masks_default_flips_and_resizes_from_full_resolution():
    keep = torch.ones(8, 8, dtype=torch.bool)
    keep[:, :2] = False  # left stripe erased
    masks = pass_keep_masks(keep, [(8, 8), (2, 2), (8, 8)], reference=False)
    assert len(masks) == 6
    assert torch.equal(masks[0], keep) and torch.equal(masks[1], keep.flip(-1))
    assert torch.equal(masks[4], keep)  # resized from the full mask, not from the 2x2 one


def test_keep_masks_reference_chains_and_never_flips():
    keep = torch.ones(8, 8, dtype=torch.bool)
    keep[:, :2] = False
    masks = pass_keep_masks(keep, [(8, 8), (2, 2), (8, 8)], reference=True)
    assert torch.equal(masks[1], keep)  # flipped pass, mask not flipped
    coarse = F.interpolate(keep[None, None].float(), size=(2, 2), mode="nearest")[0, 0] > 0.5
    assert torch.equal(masks[2], coarse) and torch.equal(masks[3], coarse)
    chained = F.interpolate(coarse[None, None].float(), size=(8, 8), mode="nearest")[0, 0] > 0.5
    assert torch.equal(masks[4], chained)
    assert not torch.equal(masks[4], keep)  # the chain lost the stripe's resolution


def literal_cam(model, img, classes, scales):
    """Per pass: forward, upsample, un-flip, sum, normalise (the method's text, pass by pass)."""
    h, w = img.shape[:2]
    total = 0
    for level in image_pyramid(img, scales, MEAN, STD):
        for flip in (False, True):
            x = level.flip(-1) if flip else level
            cam = F.interpolate(model.forward_cam(x[None]), (h, w), mode="bilinear", align_corners=False)[0]
            total = total + (cam.flip(-1) if flip else cam)[classes]
    return total / (total.amax(dim=(1, 2), keepdim=True) + 1e-5)


@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_multiscale_cam_equals_the_literal_computation(batch_size):
    model = TinyCamNet().eval()
    img = np.random.default_rng(2).integers(0, 256, (37, 52, 3), dtype=np.uint8)
    scales = (1.0, 0.5, 1.5, 2.0)
    runner = MultiScaleCam(model.forward_cam, scales, MEAN, STD, torch.device("cpu"), batch_size=batch_size)
    with torch.no_grad():
        got = runner.compute([CamJob(runner.pyramid(img), (37, 52))], [4, 11])[0]
        want = literal_cam(model, img, [4, 11], scales)
    assert got.shape == (2, 37, 52)
    assert torch.allclose(got, want, atol=1e-6)
    assert runner.forward_passes == 8
    assert float(got.amax()) == pytest.approx(1.0, abs=1e-4)


def test_class_index_beyond_the_network_is_a_label_error():
    runner = MultiScaleCam(TinyCamNet(num_classes=5).forward_cam, (1.0,), MEAN, STD, torch.device("cpu"))
    img = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(LabelError, match="out of range"):
        runner.compute([CamJob(runner.pyramid(img), (16, 16))], [7])
