"""Segmentation networks trained on pseudo labels: torchvision's DeepLabV3 family (built without any
download: no pretrained weights) and a compact CPU network. Each returns logits (N, C, H, W) at input size.

The torchvision models keep torchvision's state_dict keys (``backbone.*``, ``classifier.*``; no
auxiliary head), so their checkpoints load with ``--init-weights``.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import segmentation as tv_seg

from .compact import CHANNELS, CompactBackbone, conv_block
from .registry import register
from .small import SmallResNet

SEG_CLASSES = 21  # background + the 20 VOC classes


def _upsample(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(logits, x.shape[-2:], mode="bilinear", align_corners=False)


class TorchvisionSegmentation(nn.Module):
    """A torchvision segmentation model's backbone and classifier, returning the ``out`` logits."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.backbone = model.backbone
        self.classifier = model.classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _upsample(self.classifier(self.backbone(x)["out"]), x)


class DemoSegmentation(nn.Module):
    """The compact stride-8 backbone with a 3x3 + 1x1 head, logits upsampled bilinearly."""

    def __init__(self, num_classes: int = SEG_CLASSES) -> None:
        super().__init__()
        self.backbone = CompactBackbone()
        self.head = conv_block(CHANNELS["stage5"], 128)
        self.classifier = nn.Conv2d(128, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _upsample(self.classifier(self.head(self.backbone(x)["stage5"])), x)


def _register_torchvision(name: str, builder: Callable[..., nn.Module]) -> None:
    def factory(num_classes: int = SEG_CLASSES) -> TorchvisionSegmentation:
        return TorchvisionSegmentation(builder(weights=None, weights_backbone=None, num_classes=num_classes,
                                               aux_loss=False))

    factory.__doc__ = f"torchvision's {builder.__name__} from scratch (no pretrained download)."
    register(name)(factory)


for _name, _builder in (("deeplabv3-resnet50", tv_seg.deeplabv3_resnet50),
                        ("deeplabv3-resnet101", tv_seg.deeplabv3_resnet101),
                        ("deeplabv3-mobilenet", tv_seg.deeplabv3_mobilenet_v3_large)):
    _register_torchvision(_name, _builder)


@register("demo-seg")
def demo_seg(num_classes: int = SEG_CLASSES) -> DemoSegmentation:
    """The compact CPU segmentation network."""
    return DemoSegmentation(num_classes)


class SmallResNetSegmentation(nn.Module):
    """``small-resnet``'s stride-8 stem and stages (same keys, so the demo classifier's backbone loads with
    ``--init-weights``) with a 3x3 + 1x1 segmentation head."""

    def __init__(self, num_classes: int = SEG_CLASSES, **kwargs) -> None:
        super().__init__()
        backbone = SmallResNet(**kwargs)
        self.stem, self.stages = backbone.stem, backbone.stages
        self.head = conv_block(backbone.classifier.in_channels, 128)
        self.seg_classifier = nn.Conv2d(128, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _upsample(self.seg_classifier(self.head(self.stages(self.stem(x)))), x)


# A segmentation network built on a classifier's backbone: the classifier's registered name, whose checkpoint's
# ``arch_kwargs`` (train-cls --arch-kwargs) shape the backbone when ``--init-weights`` names one.
BACKBONE_CLASSIFIERS = {"small-resnet-seg": "small-resnet"}


@register("small-resnet-seg")
def small_resnet_seg(num_classes: int = SEG_CLASSES, **kwargs) -> SmallResNetSegmentation:
    """Segmentation on the small ResNet; start it from a classifier with ``--init-weights`` (e.g. the demo's)."""
    return SmallResNetSegmentation(num_classes, **kwargs)
