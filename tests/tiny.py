"""A tiny deterministic CAM network for fast tests (stride 8, 20 classes)."""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn


class TinyCamNet(nn.Module):
    """avg-pool by 8, a 3x3 conv with fixed seeded weights, ReLU: class maps that depend on colour and context."""

    def __init__(self, num_classes: int = 20, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.conv = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.fc = nn.Conv2d(16, num_classes, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=g) * 0.5)
            self.fc.weight.copy_(torch.randn(self.fc.weight.shape, generator=g) * 0.5)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.avg_pool2d(x, 8, stride=8, ceil_mode=True)
        return F.relu(self.conv(x))

    def forward_cam(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.fc(self.features(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x)).mean(dim=(2, 3))


class SlowCamNet(TinyCamNet):
    """TinyCamNet (same keys, same maps) that sleeps in every forward_cam, so a signal lands mid-run."""

    delay = 0.003  # seconds per call; infer makes about 75 calls per image

    def forward_cam(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(self.delay)
        return super().forward_cam(x)


class ColourCamNet(nn.Module):
    """Stride-1 maps: class c responds to colour channel c % 3 above its mean level (exact geometry tests)."""

    def __init__(self, num_classes: int = 20) -> None:
        super().__init__()
        self.register_buffer("channel", torch.arange(num_classes) % 3)  # a checkpoint holds it (for --network)

    def forward_cam(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x[:, self.channel])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_cam(x).mean(dim=(2, 3))


def blob_image(height: int, width: int, center: tuple[int, int], radius: int, channel: int = 0,
               seed: int = 0) -> "np.ndarray":
    """A noisy dark image with one bright disc in one colour channel."""
    import numpy as np

    rng = np.random.default_rng(seed)
    img = (rng.random((height, width, 3)) * 40).astype(np.uint8)
    yy, xx = np.mgrid[:height, :width]
    disc = (yy - center[0]) ** 2 + (xx - center[1]) ** 2 <= radius ** 2
    img[..., channel][disc] = 250
    return img


class HungryCamNet(TinyCamNet):
    """TinyCamNet (same keys) whose forward_cam fails as PyTorch's CPU allocator does on inputs wider than
    ``limit`` px: an out-of-memory image without allocating gigabytes."""

    limit = 54

    def forward_cam(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] > self.limit:
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: not enough memory: "
                               "you tried to allocate 34359738368 bytes.")
        return super().forward_cam(x)
