"""ResNet-38 classifiers of SEAM (with its pixel correlation module) and SC-CAM, checkpoint-compatible.

Both reuse psa's backbone keys; SEAM adds ``fc8`` with a background channel and ``f8_3``, ``f8_4``,
``f9``; SC-CAM replaces ``fc8`` by ``fc8_20`` (parent classes) and ``fc8_200`` (sub-categories).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .registry import head_rows, register
from .resnet38 import ResNet38Classifier


def seam_seed(cam: torch.Tensor) -> torch.Tensor:
    """SEAM's PCM input from raw maps (N, 1+C, h, w), channel 0 = background: each channel's ReLU map
    over its spatial max, background = 1 - the top foreground score, and per pixel only the top
    foreground class kept."""
    pos = F.relu(cam)
    peak = pos.flatten(2).max(-1).values[..., None, None] + 1e-5
    norm = F.relu(pos - 1e-5) / peak
    fg = norm[:, 1:]
    top = fg.max(1, keepdim=True).values
    return torch.cat([1 - top, torch.where(fg < top, torch.zeros_like(fg), fg)], 1)


class ResNet38SEAM(ResNet38Classifier):
    """SEAM's ResNet-38: ``fc8`` has 1 + num_classes channels (0 = background) and a pixel correlation
    module refines the maps with an affinity from image colour and mid-level features."""

    def __init__(self, num_classes: int = 20) -> None:
        super().__init__(num_classes + 1)
        self.f8_3 = nn.Conv2d(512, 64, 1, bias=False)
        self.f8_4 = nn.Conv2d(1024, 128, 1, bias=False)
        self.f9 = nn.Conv2d(192 + 3, 192, 1, bias=False)
        nn.init.kaiming_normal_(self.f8_3.weight)
        nn.init.kaiming_normal_(self.f8_4.weight)
        nn.init.xavier_uniform_(self.f9.weight, gain=4)

    def pcm(self, seed: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        """Propagate ``seed`` (N, K, h, w) with the normalised non-negative cosine affinity of f9(guide)."""
        n, _, h, w = guide.shape
        emb = self.f9(guide).flatten(2)
        emb = emb / (emb.norm(dim=1, keepdim=True) + 1e-5)
        aff = F.relu(emb.transpose(1, 2) @ emb)
        aff = aff / (aff.sum(1, keepdim=True) + 1e-5)
        return (seed.flatten(2) @ aff).view(n, -1, h, w)

    def forward_cam(self, x: torch.Tensor) -> torch.Tensor:
        """PCM-refined foreground maps (N, num_classes, H, W), at input size (bilinear, align_corners=True)."""
        feats = self.features(x)
        cam = F.conv2d(feats["conv6"], self.fc8.weight)
        guide = torch.cat([
            F.interpolate(x, cam.shape[2:], mode="bilinear", align_corners=True),
            F.relu(self.f8_3(feats["conv4"])),
            F.relu(self.f8_4(feats["conv5"])),
        ], 1)
        refined = self.pcm(seam_seed(cam), guide)[:, 1:]
        return F.interpolate(refined, x.shape[2:], mode="bilinear", align_corners=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Foreground logits (N, num_classes): fc8 on pooled features without the background channel."""
        return super().forward(x)[:, 1:]


class ResNet38SubCategory(ResNet38Classifier):
    """SC-CAM's ResNet-38 (round >= 1): ``fc8_20`` gives CAMs and logits; ``fc8_200`` scores the
    ``subcategories`` clusters of every class and is not used for CAMs."""

    def __init__(self, num_classes: int = 20, subcategories: int = 10) -> None:
        super().__init__(num_classes, head_name="fc8_20")
        self.fc8_200 = nn.Conv2d(4096, num_classes * subcategories, 1, bias=False)
        nn.init.xavier_uniform_(self.fc8_200.weight)


@register("resnet38-seam", classes_in=head_rows("fc8.weight", extra=1))  # fc8 row 0: background
def seam_resnet38(num_classes: int = 20) -> ResNet38SEAM:
    """SEAM's ResNet-38 with PCM (SEAM's released weights); forward_cam is at input resolution."""
    return ResNet38SEAM(num_classes)


@register("resnet38-sccam", classes_in=head_rows("fc8_20.weight"))
def sccam_resnet38(num_classes: int = 20, subcategories: int = 10) -> ResNet38SubCategory:
    """SC-CAM's ResNet-38 with parent and sub-category classifiers."""
    return ResNet38SubCategory(num_classes, subcategories)
