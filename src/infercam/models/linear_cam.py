"""CAM of a network defined elsewhere whose head is global average pooling + one linear layer.

The class maps are the linear layer's weights applied at every location of the last feature map
(Zhou et al., 2016), then a ReLU. The bias adds the same constant to every location, so it is left
out as in the classic CAM: the spatial mean of the maps is exactly the logits minus the bias. A head
that layer-normalises the pooled vector (ConvNeXt) stays exact: every location is normalised with the
pooled vector's mean and deviation, so the maps' mean is again the logits minus a constant.

:func:`add_cam` extends a network in place: it stays an instance of (a subclass of) its own class,
so its ``state_dict``, module names and ``forward`` are untouched.
"""
from __future__ import annotations

import functools
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def linear_maps(feats: torch.Tensor, linear: nn.Linear, norm: nn.LayerNorm | None = None) -> torch.Tensor:
    """Raw class maps (N, C, h, w) of features (N, K, h, w): ``linear``'s weights at every location,
    after ``norm`` (applied to the pooled vector by the network) with the pooled statistics."""
    if norm is not None:
        pooled = feats.mean(dim=(2, 3), keepdim=True)
        mean = pooled.mean(dim=1, keepdim=True)
        var = pooled.var(dim=1, unbiased=False, keepdim=True)
        feats = (feats - mean) * torch.rsqrt(var + norm.eps)
        if norm.weight is not None:
            feats = feats * norm.weight[:, None, None]
    return torch.einsum("nkhw,ck->nchw", feats, linear.weight)


class LinearHeadCam:
    """Mixin that gives a network ``forward_cam``; the instance names its head modules in ``cam_head``
    (and ``cam_norm``) and the subclass defines ``cam_features``."""

    cam_head: str
    cam_norm: str | None = None

    def cam_features(self, x: torch.Tensor) -> torch.Tensor:
        """The feature map (N, K, h, w) the head pools."""
        raise NotImplementedError

    def cam_maps(self, x: torch.Tensor) -> torch.Tensor:
        """Raw class maps (N, C, h, w) before the ReLU; their spatial mean is the logits minus a constant."""
        norm = None if self.cam_norm is None else self.get_submodule(self.cam_norm)
        return linear_maps(self.cam_features(x), self.get_submodule(self.cam_head), norm)

    def forward_cam(self, x: torch.Tensor) -> torch.Tensor:
        """Class activation maps (N, C, h, w): ReLU of :meth:`cam_maps`."""
        return F.relu(self.cam_maps(x))


@functools.cache
def _extended(mixin: type, base: type) -> type:
    return type(f"{base.__name__}WithCam", (mixin, base), {"__module__": mixin.__module__})


def add_cam(model: nn.Module, mixin: type, **attrs: Any) -> nn.Module:
    """Give ``model`` the methods of ``mixin`` (a subclass of its class, made once per class) and set ``attrs``.

    Module names (not modules) are stored, so the state_dict gains no aliases.
    """
    model.__class__ = _extended(mixin, type(model))
    for key, value in attrs.items():
        setattr(model, key, value)
    return model
