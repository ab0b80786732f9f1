"""A compact stride-8 CNN backbone (about 1.3 M parameters) for the CPU-sized demo networks.

Three stride-2 stages and two dilated ones, each a 3x3 convolution, GroupNorm and ReLU (GroupNorm so
that small batches train and infer alike). Output size is ceil(H/8) x ceil(W/8).
"""
from __future__ import annotations

import torch
from torch import nn

# Layers: name, in, out channels, stride, dilation.
_LAYERS = (
    ("conv1", 3, 32, 2, 1), ("conv1_1", 32, 32, 1, 1),
    ("conv2", 32, 64, 2, 1), ("conv2_1", 64, 64, 1, 1),
    ("conv3", 64, 128, 2, 1), ("conv3_1", 128, 128, 1, 1),
    ("conv4", 128, 192, 1, 2), ("conv4_1", 192, 192, 1, 2),
    ("conv5", 192, 256, 1, 4),
)
# Outputs of features(): the layer whose activation is returned under each name.
TAPS = {"conv3_1": "stage3", "conv4_1": "stage4", "conv5": "stage5"}
CHANNELS = {"stage3": 128, "stage4": 192, "stage5": 256}


def conv_block(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    """3x3 convolution (no bias), GroupNorm with 8 groups, ReLU."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False),
                         nn.GroupNorm(8, cout), nn.ReLU(inplace=True))


class CompactBackbone(nn.Module):
    """(N, 3, H, W) -> stride-8 features ``stage3`` (128 ch), ``stage4`` (192), ``stage5`` (256)."""

    def __init__(self) -> None:
        super().__init__()
        for name, cin, cout, stride, dilation in _LAYERS:
            self.add_module(name, conv_block(cin, cout, stride, dilation))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {}
        for name, *_ in _LAYERS:
            x = getattr(self, name)(x)
            if name in TAPS:
                out[TAPS[name]] = x
        return out
