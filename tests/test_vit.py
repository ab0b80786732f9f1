"""Vision transformers as CAM sources: torchvision's ViT at any input size with Grad-CAM over its tokens, timm's
ViT / DeiT / EVA-02 (token maps when the head averages the patch tokens, Grad-CAM over tokens otherwise) and Swin."""
import numpy as np
import pytest
import torch

from infercam import InferCam
from infercam.errors import CheckpointError, ImageError
from infercam.method.gradcam import GradCam, with_cam_method
from infercam.models import create
from infercam.models.registry import load_state_dict

pytest.importorskip("timm")

FAMILIES = ["torchvision:vit_b_16", "torchvision:swin_t", "timm:vit_tiny_patch16_224",
            "timm:deit_tiny_distilled_patch16_224", "timm:eva02_tiny_patch14_224", "timm:swin_tiny_patch4_window7_224"]


def randomised(name: str, **kwargs) -> torch.nn.Module:
    """The network with random weights everywhere (torchvision starts a ViT's head at zero)."""
    torch.manual_seed(0)
    net = create(name, num_classes=20, **kwargs).eval()
    with torch.no_grad():
        for p in net.parameters():
            if p.dim() >= 2 and float(p.abs().max()) == 0:
                p.normal_(0, 0.02)
    return net


@pytest.mark.parametrize("name", FAMILIES)
def test_each_family_loads_its_own_state_dict_and_refuses_another(name):
    state = create(name, num_classes=20).state_dict()
    report = load_state_dict(create(name, num_classes=20), state)
    assert report.ok
    other = "timm:vit_tiny_patch16_224" if name != "timm:vit_tiny_patch16_224" else "torchvision:swin_t"
    with pytest.raises(CheckpointError, match="does not fit the network"):
        load_state_dict(create(other, num_classes=20), state)


@pytest.mark.parametrize("name, kwargs", [("timm:vit_tiny_patch16_224", {"global_pool": "avg", "class_token": False}),
                                          ("timm:eva02_tiny_patch14_224", {}),
                                          ("timm:swin_tiny_patch4_window7_224", {}), ("torchvision:swin_t", {})])
def test_a_token_averaging_head_gives_exact_token_maps(name, kwargs):
    net = randomised(name, **kwargs)
    x = torch.randn(2, 3, 90, 131)  # no multiple of the patch size
    with torch.no_grad():
        logits, maps = net(x), net.cam_maps(x)
    bias = net.get_classifier().bias if hasattr(net, "get_classifier") else net.head.bias
    assert torch.allclose(maps.mean(dim=(2, 3)) + bias, logits, atol=1e-4)


@pytest.mark.parametrize("name, prefix", [("torchvision:vit_b_16", 1), ("timm:deit_tiny_distilled_patch16_224", 2),
                                          ("timm:vit_tiny_patch16_224", 1)])
def test_class_token_vits_get_grad_cam_over_tokens_at_every_scale(name, prefix):
    net = randomised(name)
    assert not hasattr(net, "forward_cam") and net.token_layout((96, 80))[0] == prefix
    engine = InferCam(with_cam_method(net, "gradcam"), scales=(1.0, 0.5, 1.5, 2.0), mean=(0.5,) * 3, std=(0.5,) * 3)
    image = np.random.default_rng(0).integers(0, 256, (96, 80, 3), dtype=np.uint8)
    maps = engine.baseline(image, [0, 3])
    assert all(m.shape == (96, 80) and np.isfinite(m).all() and m.max() > 0 for m in maps.values())
    assert engine.cams.forward_passes == 8  # every scale and its flip gave a map


def test_at_the_last_blocks_output_the_patch_tokens_get_no_gradient():
    """Why the default token layer is the last block's attention input: the head reads the class token only."""
    net = randomised("torchvision:vit_b_16")
    x = torch.randn(1, 3, 64, 48)
    with torch.inference_mode():
        at_output = GradCam(net, "encoder.layers.encoder_layer_11").forward_cam(x)
        default = GradCam(net).forward_cam(x)
    assert at_output.shape == default.shape == (1, 20, 4, 3)
    assert float(at_output.abs().max()) == 0 and float(default.max()) > 0


@pytest.mark.parametrize("name", ["torchvision:vit_b_16", "timm:vit_tiny_patch16_224"])
def test_an_input_smaller_than_one_patch_is_a_clear_error(name):
    engine = InferCam(with_cam_method(randomised(name), "gradcam"), scales=(0.25,), mean=(0.5,) * 3, std=(0.5,) * 3)
    with pytest.raises(ImageError, match="smaller than one 16"):
        engine.baseline(np.zeros((40, 48, 3), np.uint8), [1])
