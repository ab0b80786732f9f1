"""A compact stride-8 ResNet with the standard CAM head, trainable from scratch on a CPU in minutes.

Stem (3x3, stride 2), two strided stages (stride 8 in all), then dilated stages at stride 8; global
average pooling and a bias-free 1x1 classifier, so ``forward_cam`` is the classic CAM.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .registry import register


class Block(nn.Module):
    """Post-activation basic block (two 3x3 convs, BatchNorm) with a 1x1 projection where needed."""

    def __init__(self, cin: int, cout: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.project = None
        if stride != 1 or cin != cout:
            self.project = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.project is None else self.project(x)))


class SmallResNet(nn.Module):
    """Compact CAM classifier: ``widths`` per stage, ``depths`` blocks per stage, ``dilations`` per stage.

    Stages 1 and 2 stride by 2 (with the stem: output stride 8); later stages keep stride 8.
    """

    def __init__(self, num_classes: int = 20, widths: Sequence[int] = (16, 32, 64, 128),
                 depths: Sequence[int] = (1, 1, 1, 1), dilations: Sequence[int] = (1, 1, 1, 2)) -> None:
        super().__init__()
        for option, values in (("widths", widths), ("depths", depths), ("dilations", dilations)):
            if not (isinstance(values, Sequence) and all(type(v) is int and v >= 1 for v in values)):
                raise ValueError(f"{option} must be a list of whole numbers >= 1 (one per stage), got {values!r}")
        if not (len(widths) == len(depths) == len(dilations) >= 2):
            raise ValueError("widths, depths and dilations need one entry per stage (at least 2)")
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, 2, padding=1, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True))
        stages = []
        cin = widths[0]
        for i, (width, depth, dilation) in enumerate(zip(widths, depths, dilations)):
            stride = 2 if i in (1, 2) else 1
            blocks = [Block(cin, width, stride, dilation)]
            blocks += [Block(width, width, 1, dilation) for _ in range(depth - 1)]
            stages.append(nn.Sequential(*blocks))
            cin = width
        self.stages = nn.Sequential(*stages)
        self.classifier = nn.Conv2d(cin, num_classes, 1, bias=False)
        self.dropout = nn.Dropout2d(0.1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The final feature map (N, widths[-1], ceil(H/8), ceil(W/8))."""
        return self.stages(self.stem(x))

    def forward_cam(self, x: torch.Tensor) -> torch.Tensor:
        """Class activation maps ReLU(classifier(features)) at stride 8."""
        return F.relu(self.classifier(self.features(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, C): the classifier applied to globally average-pooled features."""
        feats = self.dropout(self.features(x))
        return self.classifier(feats.mean(dim=(2, 3), keepdim=True)).flatten(1)


@register("small-resnet")
def small_resnet(num_classes: int = 20, **kwargs) -> SmallResNet:
    """Compact stride-8 CAM classifier for CPU training (see :class:`SmallResNet` for options)."""
    return SmallResNet(num_classes, **kwargs)
