"""IRN's ResNet-50 CAM network (output stride 16, bias-free 1x1 classifier), checkpoint-compatible
with IRN's ``res50_cam.pth``.

IRN's module tree registers the same layers under several names (``resnet50.*``, ``stage1..4.*``,
``backbone.*``, ``classifier`` / ``newly_added.0``) and its checkpoints hold every alias, so this
network mirrors that tree; the aliases share their tensors. Every BatchNorm stays in eval mode.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .frozen_bn import FrozenBatchNorm2d
from .registry import register

_LAYERS = ((64, 3), (128, 4), (256, 6), (512, 3))  # bottleneck width and block count of layer1..4


class Bottleneck(nn.Module):
    """torchvision-style bottleneck (stride on the 3x3), post-activation, projection where the shape changes."""

    def __init__(self, cin: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = FrozenBatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, padding=1, bias=False)
        self.bn2 = FrozenBatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = FrozenBatchNorm2d(planes * 4)
        if stride != 1 or cin != planes * 4:
            self.downsample = nn.Sequential(nn.Conv2d(cin, planes * 4, 1, stride, bias=False),
                                            FrozenBatchNorm2d(planes * 4))
        else:
            self.downsample = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet50(nn.Module):
    """ResNet-50 trunk without the ImageNet head; ``strides`` of conv1 and layer2..4 (IRN: 2, 2, 2, 1)."""

    def __init__(self, strides: tuple[int, int, int, int] = (2, 2, 2, 1)) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, strides[0], padding=3, bias=False)
        self.bn1 = FrozenBatchNorm2d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, padding=1)
        cin = 64
        for index, (planes, blocks) in enumerate(_LAYERS, start=1):
            stride = strides[index - 1] if index > 1 else 1
            layer = [Bottleneck(cin, planes, stride)] + [Bottleneck(planes * 4, planes) for _ in range(blocks - 1)]
            self.add_module(f"layer{index}", nn.Sequential(*layer))
            cin = planes * 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """layer4 features, (N, 2048, h, w)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class ResNet50CAM(nn.Module):
    """IRN's CAM network: ResNet-50 at stride 16 and a bias-free 1x1 ``classifier``."""

    def __init__(self, num_classes: int = 20) -> None:
        super().__init__()
        self.resnet50 = ResNet50(strides=(2, 2, 2, 1))
        trunk = self.resnet50
        self.stage1 = nn.Sequential(trunk.conv1, trunk.bn1, trunk.relu, trunk.maxpool, trunk.layer1)
        self.stage2 = nn.Sequential(trunk.layer2)
        self.stage3 = nn.Sequential(trunk.layer3)
        self.stage4 = nn.Sequential(trunk.layer4)
        self.classifier = nn.Conv2d(2048, num_classes, 1, bias=False)
        self.backbone = nn.ModuleList([self.stage1, self.stage2, self.stage3, self.stage4])
        self.newly_added = nn.ModuleList([self.classifier])

    def forward_cam(self, x: torch.Tensor) -> torch.Tensor:
        """Class activation maps ReLU(classifier(features)), (N, C, ceil(H/16), ceil(W/16))."""
        return F.relu(F.conv2d(self.resnet50(x), self.classifier.weight))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Classification logits (N, C): the classifier on globally average-pooled features."""
        return self.classifier(self.resnet50(x).mean((2, 3), keepdim=True)).flatten(1)


@register("resnet50-irn")
def irn_resnet50(num_classes: int = 20) -> ResNet50CAM:
    """IRN's ResNet-50 CAM network (``res50_cam.pth``)."""
    return ResNet50CAM(num_classes)
