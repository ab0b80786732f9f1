"""psa's wide ResNet-38 (output stride 8): a reusable backbone and the CAM classifier of ``res38_cls.pth``.

Module names, registration order and hence state_dict keys are psa's (``conv1a``, ``b2`` ... ``b7``,
``bn7``, ``fc8``), so psa checkpoints load as they are. Every BatchNorm is a
:class:`FrozenBatchNorm2d`: it stays in eval mode under ``train()``, as in psa.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .frozen_bn import FrozenBatchNorm2d
from .registry import head_rows, register

# Basic blocks: name, in, mid, out channels, stride, dilation of the first and second 3x3.
_BASIC_BLOCKS = (
    ("b2", 64, 128, 128, 2, 1, 1),
    ("b2_1", 128, 128, 128, 1, 1, 1),
    ("b2_2", 128, 128, 128, 1, 1, 1),
    ("b3", 128, 256, 256, 2, 1, 1),
    ("b3_1", 256, 256, 256, 1, 1, 1),
    ("b3_2", 256, 256, 256, 1, 1, 1),
    ("b4", 256, 512, 512, 2, 1, 1),
    ("b4_1", 512, 512, 512, 1, 1, 1),
    ("b4_2", 512, 512, 512, 1, 1, 1),
    ("b4_3", 512, 512, 512, 1, 1, 1),
    ("b4_4", 512, 512, 512, 1, 1, 1),
    ("b4_5", 512, 512, 512, 1, 1, 1),
    ("b5", 512, 512, 1024, 1, 1, 2),
    ("b5_1", 1024, 512, 1024, 1, 2, 2),
    ("b5_2", 1024, 512, 1024, 1, 2, 2),
)
# Bottleneck blocks: name, in, out channels, dilation of the 3x3, dropout rate.
_BOTTLENECK_BLOCKS = (("b6", 1024, 2048, 4, 0.3), ("b7", 2048, 4096, 4, 0.5))
_BLOCK_NAMES = tuple(row[0] for row in _BASIC_BLOCKS + _BOTTLENECK_BLOCKS)
# psa's names for the pre-activated inputs of b4, b5 and b6 (see ResNet38.features).
_TAPS = {"b4": "conv3", "b5": "conv4", "b6": "conv5"}


class ResBlock(nn.Module):
    """Pre-activation basic block: two 3x3 convolutions, a 1x1 projection shortcut where the shape changes."""

    def __init__(self, cin: int, mid: int, cout: int, stride: int = 1, dilation1: int = 1,
                 dilation2: int = 1) -> None:
        super().__init__()
        self.bn_branch2a = FrozenBatchNorm2d(cin)
        self.conv_branch2a = nn.Conv2d(cin, mid, 3, stride, padding=dilation1, dilation=dilation1, bias=False)
        self.bn_branch2b1 = FrozenBatchNorm2d(mid)
        self.conv_branch2b1 = nn.Conv2d(mid, cout, 3, padding=dilation2, dilation=dilation2, bias=False)
        if cin != cout or stride != 1:
            self.conv_branch1 = nn.Conv2d(cin, cout, 1, stride, bias=False)
        else:
            self.conv_branch1 = None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(block output, ReLU(bn_branch2a(x))); the second is the block's pre-activated input."""
        act = F.relu(self.bn_branch2a(x))
        shortcut = x if self.conv_branch1 is None else self.conv_branch1(act)
        branch = self.conv_branch2b1(F.relu(self.bn_branch2b1(self.conv_branch2a(act))))
        return shortcut + branch, act


class BottleneckBlock(nn.Module):
    """Pre-activation bottleneck (1x1 -> dilated 3x3 -> 1x1, widths out/4, out/2, out) with dropout."""

    def __init__(self, cin: int, cout: int, dilation: int, dropout: float) -> None:
        super().__init__()
        self.bn_branch2a = FrozenBatchNorm2d(cin)
        self.conv_branch2a = nn.Conv2d(cin, cout // 4, 1, bias=False)
        self.bn_branch2b1 = FrozenBatchNorm2d(cout // 4)
        self.conv_branch2b1 = nn.Conv2d(cout // 4, cout // 2, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn_branch2b2 = FrozenBatchNorm2d(cout // 2)
        self.conv_branch2b2 = nn.Conv2d(cout // 2, cout, 1, bias=False)
        self.conv_branch1 = nn.Conv2d(cin, cout, 1, bias=False)
        self.dropout = nn.Dropout2d(dropout)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(block output, ReLU(bn_branch2a(x))), as :meth:`ResBlock.forward`."""
        act = F.relu(self.bn_branch2a(x))
        branch = self.conv_branch2a(act)
        branch = self.conv_branch2b1(self.dropout(F.relu(self.bn_branch2b1(branch))))
        branch = self.conv_branch2b2(self.dropout(F.relu(self.bn_branch2b2(branch))))
        return self.conv_branch1(act) + branch, act


class ResNet38(nn.Module):
    """psa's ResNet-38 backbone: (N,3,H,W) -> (N,4096,ceil(H/8),ceil(W/8)) features (subclass to add heads)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1a = nn.Conv2d(3, 64, 3, padding=1, bias=False)
        for name, *args in _BASIC_BLOCKS:
            self.add_module(name, ResBlock(*args))
        for name, *args in _BOTTLENECK_BLOCKS:
            self.add_module(name, BottleneckBlock(*args))
        self.bn7 = FrozenBatchNorm2d(4096)

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """psa's feature dict: ``conv3`` (256 ch, stride 4), ``conv4`` (512, stride 8) and ``conv5`` (1024,
        stride 8) are the pre-activated inputs of b4, b5, b6; ``conv6`` (4096, stride 8) the final features."""
        out = {}
        x = self.conv1a(x)
        for name in _BLOCK_NAMES:
            x, act = getattr(self, name)(x)
            if name in _TAPS:
                out[_TAPS[name]] = act
        out["conv6"] = F.relu(self.bn7(x))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The final features ``conv6``."""
        return self.features(x)["conv6"]


class ResNet38Classifier(ResNet38):
    """psa's CAM classifier: the backbone and a bias-free 1x1 classifier (``fc8``, or ``head_name``)."""

    def __init__(self, num_classes: int = 20, head_name: str = "fc8") -> None:
        super().__init__()
        self.dropout7 = nn.Dropout2d(0.5)
        self.head_name = head_name
        self.add_module(head_name, nn.Conv2d(4096, num_classes, 1, bias=False))
        nn.init.xavier_uniform_(self.classifier.weight)

    @property
    def classifier(self) -> nn.Conv2d:
        """The 1x1 convolution that gives class maps and logits."""
        return getattr(self, self.head_name)

    def forward_cam(self, x: torch.Tensor) -> torch.Tensor:
        """Class activation maps ReLU(classifier(features)), (N, C, ceil(H/8), ceil(W/8))."""
        return F.relu(F.conv2d(super().forward(x), self.classifier.weight))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Classification logits (N, C): the classifier on globally average-pooled features."""
        feats = self.dropout7(super().forward(x))
        return self.classifier(F.avg_pool2d(feats, feats.shape[2:])).flatten(1)


@register("resnet38", classes_in=head_rows("fc8.weight"))
def psa_resnet38(num_classes: int = 20) -> ResNet38Classifier:
    """psa's ResNet-38 classifier (``res38_cls.pth``); ``num_classes`` sets fc8's output channels."""
    return ResNet38Classifier(num_classes)
