"""Grad-CAM / Grad-CAM++ as forward_cam: exact against the CAM of a GAP + linear head, any classifier through
InferCam and the CLI, clear errors for a bad target layer or method."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision

from infercam import InferCam
from infercam.cli import main
from infercam.errors import InferCamError, LabelError
from infercam.io import load_cams
from infercam.method.gradcam import GradCam, with_cam_method
from infercam.models import create
from tiny import TinyCamNet


@pytest.fixture(scope="module")
def resnet18():
    torch.manual_seed(0)
    return create("torchvision:resnet18", num_classes=6).eval()


def test_gradcam_of_a_gap_linear_head_is_the_cam_over_hw(resnet18):
    x = torch.randn(2, 3, 48, 64)
    with torch.inference_mode():  # as the engine calls it
        cam = resnet18.forward_cam(x)
        grad = GradCam(resnet18).forward_cam(x)
    h, w = cam.shape[-2:]
    assert grad.shape == cam.shape == (2, 6, 2, 2)
    torch.testing.assert_close(grad * (h * w), cam, rtol=1e-5, atol=1e-6)


def test_gradcam_plus_plus_by_hand_for_a_gap_linear_head(resnet18):
    """With G = W_ck / hw at every location: a = 1 / (2 + S_k G), w_k = hw ReLU(G) a."""
    x = torch.randn(1, 3, 48, 64)
    with torch.no_grad():
        feats = resnet18.cam_features(x)[0]
        hw = feats.shape[1] * feats.shape[2]
        g = resnet18.fc.weight / hw
        weights = hw * F.relu(g) / (2 + feats.sum(dim=(1, 2)) * g)
        expected = F.relu(torch.einsum("ck,khw->chw", weights, feats))
    with torch.inference_mode():
        plus = GradCam(resnet18, plus=True).forward_cam(x)[0]
    torch.testing.assert_close(plus, expected, rtol=1e-4, atol=1e-6)


def test_batch_images_are_independent_and_frozen_weights_work():
    torch.manual_seed(0)
    net = create("torchvision:mobilenet_v3_small", num_classes=4).eval().requires_grad_(False)
    x = torch.randn(2, 3, 64, 64)
    wrapper = GradCam(net, plus=True)
    with torch.inference_mode():
        both = wrapper.forward_cam(x)
        single = wrapper.forward_cam(x[1:])
    assert both.shape == (2, 4, 2, 2) and float(both.min()) >= 0 and float(both.max()) > 0
    torch.testing.assert_close(both[1:], single, rtol=1e-4, atol=1e-6)


def test_gradcam_of_chosen_classes_only(resnet18):
    x = torch.randn(2, 3, 48, 64)
    wrapper = GradCam(resnet18)
    with torch.inference_mode():
        every, chosen = wrapper.forward_cam(x), wrapper.forward_cam(x, [4, 1])
    torch.testing.assert_close(chosen, every[:, [4, 1]], rtol=0, atol=0)
    with pytest.raises(LabelError, match="class index 6 out of range: the network has 6 classes"):
        wrapper.forward_cam(x, [6])


def test_the_class_count_is_read_without_a_backward_per_class(resnet18, monkeypatch):
    from infercam.models import cam_classes
    from infercam.models.class_map import ClassMapCam

    wrapper = GradCam(resnet18)
    monkeypatch.setattr(torch.autograd, "grad", lambda *a, **k: pytest.fail("a backward pass"))
    assert cam_classes(wrapper) == 6 and cam_classes(resnet18) == 6 and cam_classes(TinyCamNet(num_classes=4)) == 4
    assert cam_classes(ClassMapCam(wrapper, [(3,), (1, 2)])) == 2
    assert resnet18.training is False and cam_classes(torch.nn.Linear(3, 3)) is None  # no forward_cam: unknown


def test_infercam_asks_gradcam_for_the_labelled_classes_only(resnet18, monkeypatch):
    """One backward per labelled class and pass (not one per class of the network), with the same maps."""
    img = (np.random.default_rng(0).random((40, 52, 3)) * 255).astype(np.uint8)
    backwards = []
    grad = torch.autograd.grad
    monkeypatch.setattr(torch.autograd, "grad", lambda *a, **k: backwards.append(1) or grad(*a, **k))

    class EveryClass(GradCam):
        cam_takes_classes = False

    results = {}
    for name, wrapper in (("chosen", GradCam(resnet18)), ("every", EveryClass(resnet18))):
        backwards.clear()
        engine = InferCam(wrapper, scales=(1.0, 0.5), batch_size=1)
        results[name] = engine(img, [2, 5])
        results[name + " backwards"] = len(backwards) / engine.cams.forward_passes
    assert results["chosen backwards"] == 2 and results["every backwards"] == 6
    for c in (2, 5):
        np.testing.assert_allclose(results["chosen"].cams[c], results["every"].cams[c], rtol=1e-5, atol=1e-6)


def test_infercam_with_gradcam_equals_cam_for_a_gap_linear_head(resnet18):
    image = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    expected = InferCam(resnet18, scales=(1.0,), max_rounds=2)(image, [1, 4]).cams
    got = InferCam(with_cam_method(resnet18, "gradcam"), scales=(1.0,), max_rounds=2)(image, [1, 4]).cams
    for c in (1, 4):
        np.testing.assert_allclose(got[c], expected[c], atol=1e-4)


def test_target_layer_of_any_network():
    """Plug-in networks name their layer; small-resnet's pooled classifier makes Grad-CAM at its stages the CAM."""
    torch.manual_seed(0)
    net = create("small-resnet", num_classes=3, widths=(8, 8, 16, 16), depths=(1, 1, 1, 1)).eval()
    x = torch.randn(1, 3, 32, 40)
    with torch.inference_mode():
        cam = net.forward_cam(x)
        grad = with_cam_method(net, "gradcam", target_layer="stages").forward_cam(x)
    torch.testing.assert_close(grad * cam.shape[-2] * cam.shape[-1], cam, rtol=1e-5, atol=1e-6)


def test_clear_errors():
    net = TinyCamNet()
    with pytest.raises(InferCamError, match="with `target_layer` .*conv, fc"):
        with_cam_method(net, "gradcam")
    with pytest.raises(InferCamError, match="no module 'nope'"):
        with_cam_method(net, "gradcam", target_layer="nope")
    with pytest.raises(InferCamError, match="gradcam or gradcam\\+\\+ only"):
        with_cam_method(net, "cam", target_layer="conv")
    with pytest.raises(InferCamError, match="unknown CAM method"):
        with_cam_method(net, "scorecam")
    resnet = create("torchvision:resnet18", num_classes=2).eval()
    with pytest.raises(InferCamError, match=r"'fc' must run once per forward with an \(N, C, h, w\) output"):
        GradCam(resnet, "fc").forward_cam(torch.zeros(1, 3, 32, 32))
    assert with_cam_method(resnet, "cam") is resnet


def test_cli_infer_with_gradcam_plus_plus_on_an_mlp_head(tiny_voc, tmp_path):
    torch.manual_seed(0)
    weights = tmp_path / "mnv3.pth"
    torch.save(torchvision.models.mobilenet_v3_small(num_classes=20).state_dict(), weights)
    (tiny_voc / "one.txt").write_text("img_b\n")
    out = tmp_path / "cams"
    assert main(["infer", "--voc-root", str(tiny_voc), "--list", str(tiny_voc / "one.txt"), "--network",
                 "torchvision:mobilenet_v3_small", "--weights", str(weights), "--cam-method", "gradcam++",
                 "--target-layer", "features.11", "--scales", "1.0", "--max-rounds", "2", "--out-cam", str(out),
                 "--no-progress"]) == 0
    cams = load_cams(out / "img_b.npy")
    assert sorted(cams) == [3, 7]
    assert all(cam.shape == (48, 52) and cam.min() >= 0 for cam in cams.values())
