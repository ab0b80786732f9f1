"""torchvision:<name> and timm:<name> networks: exact CAMs, torchvision's own state_dicts, class count from the
head, the registry's prefixes, and the CLI (infer, train-cls) with such a network."""
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision

from infercam import InferCam
from infercam.cli import main
from infercam.data.images import load_image
from infercam.errors import CheckpointError, InferCamError
from infercam.io import load_cams
from infercam.method.gradcam import with_cam_method
from infercam.models import build_network, create, list_models


def saved(tmp_path, name, num_classes, file="net.pth"):
    """A plain state_dict of torchvision's own ``name`` (random weights), as a user's fine-tuned file."""
    torch.manual_seed(0)
    net = torchvision.models.get_model(name, weights=None, num_classes=num_classes)
    torch.save(net.state_dict(), tmp_path / file)
    return net, tmp_path / file


def test_resnet18_cam_is_fc_weights_on_layer4_features():
    torch.manual_seed(0)
    net = create("torchvision:resnet18", num_classes=5).eval()
    x = torch.randn(2, 3, 48, 64)
    with torch.no_grad():
        feats = net.layer4(net.layer3(net.layer2(net.layer1(net.maxpool(net.relu(net.bn1(net.conv1(x))))))))
        expected = F.relu((net.fc.weight[None, :, :, None, None] * feats[:, None]).sum(2))
        cam = net.forward_cam(x)
        assert cam.shape == (2, 5, 2, 2)
        torch.testing.assert_close(cam, expected, rtol=1e-5, atol=1e-5)
        # forward is torchvision's own; the maps' mean is the logits minus the bias
        torch.testing.assert_close(net(x), torchvision.models.ResNet.forward(net, x))
        torch.testing.assert_close(net.cam_maps(x).mean(dim=(2, 3)) + net.fc.bias, net(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name, size", [("convnext_tiny", 64), ("swin_t", 64), ("densenet121", 32),
                                        ("efficientnet_b0", 32)])
def test_cam_mean_is_the_logits_up_to_a_constant(name, size):
    """Exact for the family layouts: LayerNorm of the pooled vector (ConvNeXt), NHWC stages then a permute
    (Swin), a ReLU outside any module (DenseNet), a classifier after dropout (EfficientNet)."""
    torch.manual_seed(0)
    net = create(f"torchvision:{name}", num_classes=4).eval()
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        offset = net(x) - net.cam_maps(x).mean(dim=(2, 3))
    torch.testing.assert_close(offset[0], offset[1], rtol=0, atol=1e-4)


@pytest.mark.parametrize("name", ["resnet18", "regnet_x_400mf", "mobilenet_v3_small"])
def test_plain_torchvision_state_dict_loads_strictly_with_classes_from_its_head(tmp_path, name):
    ref, path = saved(tmp_path, name, num_classes=7)
    model, report = build_network(f"torchvision:{name}", path)
    assert report.ok and not model.training
    assert list(model.state_dict()) == list(ref.state_dict())
    for key, value in ref.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


def test_mismatched_state_dict_is_refused_with_the_keys(tmp_path):
    _, other = saved(tmp_path, "resnet34", num_classes=20, file="r34.pth")
    with pytest.raises(CheckpointError) as err:
        build_network("torchvision:resnet18", other)
    assert "unexpected keys" in str(err.value) and "layer1.2.conv1.weight" in str(err.value)
    _, seven = saved(tmp_path, "resnet18", num_classes=7)
    with pytest.raises(CheckpointError, match=r"fc\.weight: \[7, 512\] vs \[5, 512\]"):
        build_network("torchvision:resnet18", seven, num_classes=5)


def test_infercam_maps_of_a_torchvision_network():
    torch.manual_seed(0)
    image = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    result = InferCam(create("torchvision:resnet18"), scales=(1.0,))(image, [3, 11])
    assert sorted(result.cams) == [3, 11]
    for cam in result.cams.values():
        assert cam.shape == (48, 64) and cam.dtype == np.float32 and cam.min() >= 0


def test_registry_names_and_errors():
    assert {"torchvision:<name>", "timm:<name>", "resnet38"} <= set(list_models())
    with pytest.raises(InferCamError, match=r"torchvision:<name>"):
        create("resnet1000")
    with pytest.raises(InferCamError, match="did you mean resnet50"):
        create("torchvision:resnet5")


def test_a_plug_in_network_of_the_wrong_signature_or_result_is_a_clear_error(tmp_path, monkeypatch):
    (tmp_path / "my_nets.py").write_text(
        "from torch import nn\n"
        "def no_classes(classes=20):\n    return nn.Conv2d(3, classes, 1)\n"
        "def a_dict(num_classes=20):\n    return {'a': 1}\n"
        "def fine(num_classes=20):\n    return nn.Conv2d(3, num_classes, 1)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(InferCamError, match=r"'my_nets:no_classes' must accept num_classes="):
        create("my_nets:no_classes")
    with pytest.raises(InferCamError, match=r"'my_nets:a_dict' returned a dict, not a torch nn.Module"):
        create("my_nets:a_dict")
    assert create("my_nets:fine", num_classes=3).out_channels == 3
    # a plug-in spec of a registered factory still fits a checkpoint saved under the registered name
    small = {"widths": [8, 8, 16, 16], "depths": [1, 1, 1, 1]}
    torch.save({"state_dict": create("small-resnet", **small).state_dict(),
                "config": {"arch": "small-resnet", "arch_kwargs": small}}, tmp_path / "small.pth")
    assert build_network("infercam.models.small:small_resnet", tmp_path / "small.pth")[1].ok


def test_mlp_head_has_no_cam_and_the_error_suggests_gradcam(tiny_voc, tmp_path, capsys):
    net = create("torchvision:mobilenet_v3_small")
    assert not hasattr(net, "forward_cam") and net.cam_target_layer == "features"
    with pytest.raises(InferCamError, match="use `cam_method` gradcam"):  # the Python parameter, not the flag
        with_cam_method(net, "cam")
    with pytest.raises(InferCamError, match="`target_layer` applies to `cam_method` gradcam"):
        with_cam_method(net, "cam", target_layer="features")
    _, path = saved(tmp_path, "mobilenet_v3_small", num_classes=20)
    args = ["infer", "--voc-root", str(tiny_voc), "--network", "torchvision:mobilenet_v3_small", "--weights",
            str(path), "--out-cam", str(tmp_path / "out"), "--no-progress"]
    assert main(args) == 2
    assert "use --cam-method gradcam" in capsys.readouterr().err
    assert main([*args, "--target-layer", "features"]) == 2
    assert "--target-layer applies to --cam-method gradcam" in capsys.readouterr().err


def one_image_list(voc, name):
    path = voc / f"{name}.txt"
    path.write_text(name + "\n")
    return str(path)


def test_cli_infer_with_a_torchvision_state_dict(tiny_voc, tmp_path):
    _, path = saved(tmp_path, "resnet18", num_classes=20)
    out = tmp_path / "cams"
    args = ["infer", "--voc-root", str(tiny_voc), "--list", one_image_list(tiny_voc, "img_b"), "--network",
            "torchvision:resnet18", "--weights", str(path), "--scales", "1.0", "--out-cam", str(out), "--no-progress"]
    assert main(args) == 0
    model, _ = build_network("torchvision:resnet18", path)
    expected = InferCam(model, scales=(1.0,))(load_image(tiny_voc / "JPEGImages/img_b.jpg"), [3, 7]).cams
    cams = load_cams(out / "img_b.npy")
    assert sorted(cams) == [3, 7]
    for c in (3, 7):
        np.testing.assert_allclose(cams[c], expected[c], atol=1e-5)


def test_train_cls_then_infer_with_torchvision_resnet18(tiny_voc, tmp_path):
    lst = str(tiny_voc / "ImageSets/Segmentation/train.txt")
    ckpt = tmp_path / "cls.pt"
    assert main(["train-cls", "--voc-root", str(tiny_voc), "--train-list", lst, "--out", str(ckpt),
                 "--arch", "torchvision:resnet18", "--epochs", "1", "--batch-size", "2", "--crop-size", "48",
                 "--workers", "0", "--no-progress"]) == 0
    state = torch.load(ckpt, weights_only=True)
    assert state["config"]["arch"] == "torchvision:resnet18"
    assert list(state["state_dict"]) == list(torchvision.models.resnet18(num_classes=20).state_dict())
    assert main(["infer", "--voc-root", str(tiny_voc), "--list", one_image_list(tiny_voc, "img_c"), "--network",
                 "torchvision:resnet18", "--weights", str(ckpt), "--scales", "1.0", "--max-rounds", "2",
                 "--out-cam", str(tmp_path / "cams"), "--no-progress"]) == 0
    assert sorted(load_cams(tmp_path / "cams/img_c.npy")) == [1, 2, 5]


def test_timm_networks(tmp_path):
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    ref = timm.create_model("resnet18", pretrained=False, num_classes=6)
    torch.save(ref.state_dict(), tmp_path / "timm.pth")
    net, report = build_network("timm:resnet18", tmp_path / "timm.pth")
    assert report.ok and list(net.state_dict()) == list(ref.state_dict())
    assert net.mean == tuple(ref.pretrained_cfg["mean"])
    x = torch.randn(1, 3, 48, 64)
    with torch.no_grad():
        expected = F.relu(torch.einsum("nkhw,ck->nchw", ref.eval().forward_features(x), ref.fc.weight))
        torch.testing.assert_close(net.forward_cam(x), expected, rtol=1e-5, atol=1e-5)
    assert not hasattr(create("timm:vit_tiny_patch16_224"), "forward_cam")  # class-token head: Grad-CAM only


def test_timm_convnext_cam_mean_is_the_logits_up_to_a_constant():
    pytest.importorskip("timm")
    torch.manual_seed(0)
    net = create("timm:convnext_atto", num_classes=3).eval()
    assert net.cam_norm == "head.norm"  # LayerNorm of the pooled vector
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        offset = net(x) - net.cam_maps(x).mean(dim=(2, 3))
    torch.testing.assert_close(offset[0], offset[1], rtol=0, atol=1e-4)


def test_missing_timm_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm raises ImportError
    with pytest.raises(InferCamError, match=r"pip install 'infercam\[timm\]'"):
        create("timm:resnet18")
