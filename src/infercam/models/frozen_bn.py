"""BatchNorm held in eval mode, as psa, SEAM, SC-CAM and IRN train their networks."""
from __future__ import annotations

from torch import nn


class FrozenBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` (eps 1e-5, same state_dict) that stays in eval mode even under ``train()``.

    It always normalises with its running statistics and never updates them; its affine parameters
    remain trainable.
    """

    def __init__(self, num_features: int) -> None:
        super().__init__(num_features)
        self.training = False

    def train(self, mode: bool = True) -> "FrozenBatchNorm2d":
        return super().train(False)
