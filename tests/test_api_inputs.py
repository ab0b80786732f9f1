"""The Python API with the inputs a new user passes (as one coming from pytorch-grad-cam would): images as PIL
Images, tensors, grayscale or float arrays; labels of many types; options out of range; models in train mode or
without a usable forward_cam. Each is either taken (with the maps of its documented conversion) or refused with
one clear InferCamError, never a deep torch traceback or a silently wrong map."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from infercam import InferCam
from infercam.errors import ConfigError, ImageError, InferCamError, LabelError
from infercam.models import create
from tiny import TinyCamNet

S = {"scales": (1.0, 0.5)}  # two scales keep the tests quick


def picture(h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def same(a, b) -> bool:
    return sorted(a.cams) == sorted(b.cams) and all(np.array_equal(a.cams[c], b.cams[c]) for c in a.cams) \
        and all(np.array_equal(a.baseline[c], b.baseline[c]) for c in a.baseline)


class BatchNormCamNet(nn.Module):
    """conv -> BatchNorm -> ReLU -> 1x1 classifier: its maps depend on whether BatchNorm runs in train mode."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 8, 3, stride=4, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.head = nn.Conv2d(8, 20, 1, bias=False)
        with torch.no_grad():
            self.bn.running_mean.uniform_(-0.5, 0.5)
            self.bn.running_var.uniform_(0.5, 2.0)

    def forward_cam(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.head(F.relu(self.bn(self.conv(x)))))


# --- the model's mode ---------------------------------------------------------------------------------------------

def test_a_model_put_back_in_train_mode_gives_the_eval_maps_and_keeps_its_statistics():
    """A training loop that shows CAMs now and then calls the engine with its model in train mode: the maps are the
    eval-mode maps, BatchNorm's running statistics are not updated by the engine, and the loop's modes are left
    as they were (a frozen BatchNorm stays frozen)."""
    net = BatchNormCamNet()
    engine = InferCam(net, **S)
    assert not net.training
    want = engine(picture(), [1, 3])
    state = {k: v.clone() for k, v in net.state_dict().items()}
    net.train()
    assert same(engine(picture(), [1, 3]), want)
    baseline = engine.baseline(picture(), [1, 3])
    assert all(np.array_equal(baseline[c], want.baseline[c]) for c in (1, 3))
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())
    assert net.training and net.bn.training
    net.bn.eval()  # the user's choice, e.g. frozen BatchNorm while fine-tuning
    engine.split(picture(), [1, 3])
    assert net.training and net.conv.training and not net.bn.training


def test_calling_twice_gives_the_same_maps():
    engine = InferCam(create("torchvision:resnet18", num_classes=20), **S)
    assert same(engine(picture(), [1, 3]), engine(picture(), [1, 3]))


# --- images -------------------------------------------------------------------------------------------------------

def test_a_pil_image_of_any_mode_is_converted_to_rgb_as_image_files_are():
    engine = InferCam(TinyCamNet(), **S)
    rgb = picture()
    assert same(engine(Image.fromarray(rgb), [1]), engine(rgb, [1]))
    gray = rgb[..., 0]
    assert same(engine(Image.fromarray(gray), [1]), engine(np.repeat(gray[..., None], 3, axis=2), [1]))
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 7, np.uint8)])
    assert same(engine(Image.fromarray(rgba), [1]), engine(rgb, [1]))  # alpha dropped, as the CLI's decode does
    palette = Image.fromarray(rgb).convert("P")
    assert same(engine(palette, [1]), engine(np.asarray(palette.convert("RGB")), [1]))
    assert engine.prepare(Image.fromarray(rgb)).image.shape == rgb.shape


def test_an_hwc_uint8_tensor_and_a_non_contiguous_array_are_taken():
    engine = InferCam(TinyCamNet(), **S)
    rgb = picture()
    want = engine(rgb, [1])
    assert same(engine(torch.from_numpy(rgb), [1]), want)
    view = np.ascontiguousarray(rgb[:, ::-1])[:, ::-1]
    assert not view.flags.c_contiguous and same(engine(view, [1]), want)


@pytest.mark.parametrize("image, message", [
    (picture().astype(np.float32) / 255, r"float32.*0\.\.1.*\(image \* 255\)"),
    (picture().astype(np.float64), r"float64.*astype\(np.uint8\)"),
    (picture()[..., 0], r"grayscale.*np.repeat"),
    (picture()[..., :1], r"grayscale.*np.repeat"),
    (picture().astype(np.int64), r"got int64.*astype\(np.uint8\)"),
    (np.dstack([picture(), picture()[..., :1]]), r"RGBA.*image\[\.\.\., :3\]"),
    (torch.from_numpy(picture()).permute(2, 0, 1), r"C x H x W.*permute\(1, 2, 0\)"),
    (torch.from_numpy(picture()).permute(2, 0, 1).float() / 255, r"C x H x W.*permute\(1, 2, 0\)"),
    (picture()[None], r"batch of 1.*one image at a time"),
    (torch.from_numpy(picture()).permute(2, 0, 1)[None].float(), r"batch of 1.*one image at a time"),
    (picture() > 128, r"uint8.*got bool"),
    ("photo.jpg", r"a path.*load_image"),
])
def test_an_image_in_another_layout_or_type_is_refused_saying_how_to_convert_it(image, message):
    engine = InferCam(TinyCamNet(), **S)
    with pytest.raises(ImageError, match=message):
        engine(image, [1])


# --- labels -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("labels", [np.array([3, 1]), {1, 3}, torch.tensor([3, 1]), [3, 1, 3], (1.0, 3.0),
                                    np.array([3, 1], np.int32), torch.tensor([1.0, 3.0]),
                                    torch.tensor([1.0, 3.0], requires_grad=True)])  # like a CUDA tensor: no numpy()
def test_labels_of_common_types_are_class_indices(labels):
    engine = InferCam(TinyCamNet(), **S)
    assert same(engine(picture(), labels), engine(picture(), [1, 3]))


@pytest.mark.parametrize("labels, message", [
    (None, "labels must be class indices"),
    ([], "no labelled class"),
    ([25], "out of range: the network has 20 classes"),
    ([-1], "negative"),
    ([1.5], "got 1.5"),
    (["cat"], "class names are not taken: give the class index"),
    ("cat", "class names are not taken: give the class index"),
])
def test_bad_labels_are_one_clear_error(labels, message):
    engine = InferCam(TinyCamNet(), **S)
    with pytest.raises(LabelError, match=message):
        engine(picture(), labels)


def test_a_one_class_network_is_named_in_the_singular():
    with pytest.raises(LabelError, match="class index 1 out of range: the network has 1 class$"):
        InferCam(TinyCamNet(num_classes=1), **S)(picture(), [1])


# --- options ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("options, message", [
    ({"erase_threshold": 1.5}, "`erase_threshold` must be a number above 0 and at most 1, got 1.5"),
    ({"erase_threshold": -0.1}, "`erase_threshold` must be a number above 0 and at most 1"),
    ({"erase_threshold": float("nan")}, "`erase_threshold` must be a number above 0 and at most 1, got nan"),
    ({"erase_threshold": "0.7"}, "`erase_threshold` must be a number above 0 and at most 1, got '0.7'"),
    # 0 covers every pixel (a map is >= 0): each round after round 0 would erase the whole image
    ({"erase_threshold": 0}, "`erase_threshold` must be a number above 0 and at most 1, got 0"),
    ({"stop_fraction": -0.1}, "`stop_fraction` must be a number from 0 to 1"),
    ({"stop_fraction": 2}, "`stop_fraction` must be a number from 0 to 1"),
    ({"max_rounds": 0}, "`max_rounds` must be a whole number >= 1, got 0"),
    ({"max_rounds": 2.5}, "`max_rounds` must be a whole number >= 1, got 2.5"),
    ({"max_rounds": "3"}, "`max_rounds` must be a whole number >= 1, got '3'"),
    ({"max_rounds": None}, "`max_rounds` must be a whole number >= 1, got None"),
    ({"batch_size": 0}, "`batch_size` must be a whole number >= 1, got 0"),
    ({"batch_size": -3}, "`batch_size` must be a whole number >= 1"),
    ({"batch_size": 2.5}, "`batch_size` must be a whole number >= 1"),
    ({"margins": 10}, r"`margins` must be two whole numbers >= 0"),
    ({"margins": (-5, -5)}, r"`margins` must be two whole numbers >= 0.*got \(-5, -5\)"),
    ({"scales": "1.0,0.5"}, r"`scales` must be a sequence of numbers, e.g. \(1.0, 0.5, 1.5, 2.0\), got '1.0,0.5'"),
    ({"scales": 1.0}, r"`scales` must be a sequence of numbers"),
    ({"scales": None}, r"`scales` must be a sequence of numbers"),
    ({"scales": ["a"]}, r"`scales` must be a sequence of numbers"),
    ({"scales": ()}, "no scales given"),
    ({"scales": (-1.0,)}, "invalid scales"),
    ({"scales": (0,)}, "invalid scales"),
])
def test_an_option_out_of_range_is_a_config_error_naming_it(options, message):
    with pytest.raises(ConfigError, match=message):
        InferCam(TinyCamNet(), **options)


def test_a_refused_option_leaves_the_model_as_it_was():
    net = BatchNormCamNet().train()
    with pytest.raises(InferCamError, match="precision"):
        InferCam(net, precision="fp8")
    with pytest.raises(InferCamError, match="erase_threshold"):
        InferCam(net, erase_threshold=1.5)
    assert net.training


@pytest.mark.parametrize("options, message", [
    ({"device": "cuda:99"}, "CUDA is not available|does not exist"),
    ({"device": "gpu"}, "unknown device 'gpu'"),
    ({"precision": "fp8"}, "unknown precision 'fp8'"),
    ({"mode": "fast"}, "unknown mode 'fast'"),
])
def test_a_device_precision_or_mode_that_does_not_exist_is_refused(options, message):
    with pytest.raises(InferCamError, match=message):
        InferCam(TinyCamNet(), **options)


def test_options_in_range_run():
    engine = InferCam(TinyCamNet(), scales=[1.0, 0.5], erase_threshold=1.0, stop_fraction=0.0, max_rounds=np.int64(2),
                      batch_size=1, margins=[0, 0], mode="fixed")
    assert engine(picture(), [1]).rounds == [2, 2, 2, 2]


# --- models -------------------------------------------------------------------------------------------------------

def test_a_torchvision_classifier_without_forward_cam_is_told_how_to_get_one():
    import torchvision

    with pytest.raises(InferCamError, match=r"models.create\('torchvision:resnet18', num_classes=1000\)"):
        InferCam(torchvision.models.resnet18(weights=None))
    with pytest.raises(InferCamError, match=r"squeezenet1_0 has no CAM of its own head: wrap it with Grad-CAM, "
                                            r"infercam.method.gradcam.GradCam\(model, target_layer='features'\)"):
        InferCam(torchvision.models.squeezenet1_0(weights=None))
    with pytest.raises(InferCamError, match="no forward_cam.*docs/networks.md"):
        InferCam(nn.Conv2d(3, 3, 1))


def test_an_object_that_is_not_a_module_is_refused():
    class NotAModule:
        def forward_cam(self, x):
            return x

    with pytest.raises(InferCamError, match="NotAModule is not a torch.nn.Module"):
        InferCam(NotAModule())


class Returns(nn.Module):
    def __init__(self, make) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 20, 3, stride=4, padding=1)
        self.make = make

    def forward_cam(self, x):
        return self.make(F.relu(self.conv(x)))


@pytest.mark.parametrize("make, message", [
    (lambda m: m.mean((2, 3)), r"forward_cam must return an \(N, C, h, w\) tensor of class maps; it returned .*"
                               r"shape \(2, 20\)"),
    (lambda m: (m, None), r"forward_cam must return an \(N, C, h, w\) tensor of class maps; it returned a tuple"),
    (lambda m: m[:1], r"forward_cam returned maps of 1 input\(s\) for a batch of 2"),
    (lambda m: m * float("nan"), r"forward_cam returned NaN or infinite values"),
    (lambda m: m - 1.0, r"forward_cam returned negative values \(the lowest -1\): class maps must be non-negative.*"
                        r"apply F.relu as forward_cam's last step \(after any resizing"),
])
def test_a_forward_cam_that_breaks_the_protocol_is_one_clear_error(make, message):
    with pytest.raises(InferCamError, match=message):
        InferCam(Returns(make), **S)(picture(), [1])


def test_a_model_in_another_float_type_runs():
    net = TinyCamNet()
    want = InferCam(net, **S)(picture(), [1])
    got = InferCam(TinyCamNet().double(), **S)(picture(), [1])
    assert max(float(np.abs(got.cams[c] - want.cams[c]).max()) for c in want.cams) < 1e-5


def test_a_network_without_bundled_weights_names_the_parameter_from_python_and_the_option_on_the_command_line(
        tiny_voc, tmp_path, capsys):
    from infercam.cli import main
    from infercam.models import build_network

    with pytest.raises(InferCamError, match=r"'torchvision:resnet18' has no bundled weights: give a checkpoint with "
                                            r"`weights`"):
        build_network("torchvision:resnet18", num_classes=20)
    assert main(["cam", "--voc-root", str(tiny_voc), "--network", "torchvision:resnet18",
                 "--out-cam", str(tmp_path / "cams"), "--no-progress"]) == 2
    assert "has no bundled weights: give a checkpoint with --weights" in capsys.readouterr().err
