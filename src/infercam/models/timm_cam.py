"""timm classifiers by name, ``timm:<name>``, with the CAM of their own head (``pip install 'infercam[timm]'``).

``create("timm:resnet50", num_classes=20)`` is ``timm.create_model("resnet50", pretrained=False,
num_classes=20)``. Where its head is global average pooling + ``get_classifier()`` (a LayerNorm of the
pooled vector allowed, as in ConvNeXt), which is checked on random features when it is built, it gets
``forward_cam``: the classifier's weights on ``forward_features`` (see :mod:`.linear_cam`). Other heads
(ViT's class token, MobileNetV3's conv head, max pooling, ...) get none: use Grad-CAM. ``mean`` and
``std`` are the model's pretrained config's; the state_dict is timm's own.
"""
from __future__ import annotations

from types import ModuleType
from typing import Any

import torch
from torch import nn

from ..errors import InferCamError
from .linear_cam import LinearHeadCam, add_cam, linear_maps
from .registry import register_prefix


def _timm() -> ModuleType:
    try:
        import timm
    except ImportError:
        raise InferCamError("timm networks need the timm package: pip install 'infercam[timm]'") from None
    return timm


class TimmCam(LinearHeadCam):
    """forward_cam for a timm classifier: its classifier's weights on ``forward_features``."""

    cam_channels_last: bool = False

    def cam_features(self, x: torch.Tensor) -> torch.Tensor:
        """``forward_features`` as (N, K, h, w)."""
        feats = self.forward_features(x)
        return feats.permute(0, 3, 1, 2) if self.cam_channels_last else feats


def _cam_head(net: nn.Module, channels_last: bool) -> tuple[str, str | None] | None:
    """Names of the classifier and of the pooled-vector LayerNorm if ``forward_head`` equals the mean of
    :func:`linear_maps` plus a constant on random features, else None."""
    linear = net.get_classifier()
    if not isinstance(linear, nn.Linear):
        return None
    norm = getattr(getattr(net, "head", None), "norm", None)
    norm = norm if isinstance(norm, nn.LayerNorm) else None
    feats = torch.randn(2, linear.in_features, 3, 3, generator=torch.Generator().manual_seed(0))
    training = net.training
    net.eval()
    try:
        with torch.no_grad():
            logits = net.forward_head(feats.permute(0, 2, 3, 1) if channels_last else feats)
            offset = logits - linear_maps(feats, linear, norm).mean(dim=(2, 3))
    except Exception:  # any failure: the head does not take a feature map (e.g. ViT pools tokens)
        return None
    finally:
        net.train(training)
    if not torch.allclose(offset[0], offset[1], rtol=0, atol=1e-4 * (1 + float(logits.abs().max()))):
        return None
    names = {id(m): key for key, m in net.named_modules()}
    return names[id(linear)], None if norm is None else names[id(norm)]


def timm_network(name: str, num_classes: int = 20, **kwargs: Any) -> nn.Module:
    """timm's ``name`` with random weights and ``num_classes`` outputs, with ``forward_cam`` where its head is
    GAP + linear, and ``cam_target_layer`` (Grad-CAM's default layer: timm's last feature stage)."""
    timm = _timm()
    if not timm.is_model(name):
        raise InferCamError(f"unknown timm model {name!r}; the names are timm.list_models()")
    net = timm.create_model(name, pretrained=False, num_classes=num_classes, **kwargs)
    net.mean, net.std = tuple(net.pretrained_cfg["mean"]), tuple(net.pretrained_cfg["std"])
    channels_last = getattr(net, "output_fmt", "NCHW") == "NHWC"
    if not channels_last and getattr(net, "feature_info", None):  # Grad-CAM needs (N, C, h, w) activations
        net.cam_target_layer = net.feature_info[-1]["module"]
    head = _cam_head(net, channels_last)
    if head is None:
        return net
    return add_cam(net, TimmCam, cam_head=head[0], cam_norm=head[1], cam_channels_last=channels_last)


def timm_classes(name: str, state: dict[str, torch.Tensor]) -> int | None:
    """The class count of a checkpoint of ``name``: the outputs of the classifier its pretrained config
    names, or None if the checkpoint lacks that key."""
    cfg = _timm().models.get_pretrained_cfg(name)
    key = None if cfg is None else cfg.classifier
    key = key[0] if isinstance(key, (tuple, list)) else key
    weight = state.get(f"{key}.weight")
    return None if weight is None else int(weight.shape[0])


register_prefix("timm", timm_network, classes_in=timm_classes)
