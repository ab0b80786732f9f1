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
