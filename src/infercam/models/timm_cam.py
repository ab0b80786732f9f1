"""timm classifiers by name, ``timm:<name>``, with the CAM of their own head (``pip install 'infercam[timm]'``).

``create("timm:resnet50", num_classes=20)`` is ``timm.create_model("resnet50", pretrained=False,
num_classes=20)``. Where its head is global average pooling + ``get_classifier()`` (a LayerNorm of the
pooled vector allowed, as in ConvNeXt), which is checked on random features when it is built, it gets
``forward_cam``: the classifier's weights on ``forward_features`` (see :mod:`.linear_cam`). Other heads
(MobileNetV3's conv head, max pooling, ...) get none: use Grad-CAM. ``mean`` and ``std`` are the model's
pretrained config's; the state_dict is timm's own.

Swin (``swin*``) is built with ``strict_img_size=False`` and its input padded to whole patches (:class:`PadToPatch`);
its head is GAP + linear, so it has ``forward_cam``. Vision transformers (timm's ``VisionTransformer`` family:
``vit_*``, ``deit_*``, ``eva02_*``, ...) are built with dynamic input sizes (position embeddings interpolated to
each input's token grid, the input padded to whole patches), since InferCam feeds every scale of every patch. One
whose head averages the patch tokens (``global_pool="avg"``) gets ``forward_cam``: the head's weights on every patch token after the final norm, with the
head's own LayerNorm of the pooled vector (exact: the maps' spatial mean is the logits minus the bias). One that
reads its class token gets Grad-CAM over the tokens of the last block's attention input (``blocks.<last>.norm1``,
see :mod:`.vit_any_size` for why not the block's output); class, register and distillation tokens are dropped.
"""
from __future__ import annotations

from types import ModuleType
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ImageError, InferCamError
from .linear_cam import LinearHeadCam, add_cam, linear_maps
from .registry import register_prefix


def _timm() -> ModuleType:
    try:
        import timm
    except ImportError:
        raise InferCamError("timm networks need the timm package: pip install 'infercam[timm]'") from None
    return timm


class TimmVit:
    """Mixin for timm's vision transformers: where the patch tokens lie among the tokens of an input."""

    def token_layout(self, size: tuple[int, int]) -> tuple[int, int, int]:
        """(prefix tokens, token rows, token columns) of an input of ``size`` (h, w), padded to whole patches."""
        patch = self.patch_embed.patch_size
        if size[0] < patch[0] or size[1] < patch[1]:
            raise ImageError(f"an input of {size[0]}x{size[1]} px is smaller than one {patch[0]}x{patch[1]} px patch "
                             "of the vision transformer: use larger images or patches, or drop the smallest scales")
        h, w = self.patch_embed.dynamic_feat_size(tuple(size))
        return self.num_prefix_tokens, h, w


class TimmVitCam(TimmVit, LinearHeadCam):
    """forward_cam of a timm vision transformer that averages its patch tokens: the head on every token."""

    def cam_features(self, x: torch.Tensor) -> torch.Tensor:
        """The patch tokens after the final norm as (N, D, h, w)."""
        prefix, h, w = self.token_layout(tuple(x.shape[-2:]))
        tokens = self.forward_features(x)[:, prefix:]
        return tokens.transpose(1, 2).reshape(x.shape[0], -1, h, w)


class TimmCam(LinearHeadCam):
    """forward_cam for a timm classifier: its classifier's weights on ``forward_features``."""

    cam_channels_last: bool = False

    def cam_features(self, x: torch.Tensor) -> torch.Tensor:
        """``forward_features`` as (N, K, h, w)."""
        feats = self.forward_features(x)
        return feats.permute(0, 3, 1, 2) if self.cam_channels_last else feats


class PadToPatch:
    """Mixin for timm's Swin (built with ``strict_img_size=False``): the input padded with zeros (the normalised
    mean colour) at the right and bottom to whole patches, so that any size runs; the maps cover the padded input,
    at most ``patch - 1`` px more than the image."""

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        ph, pw = self.patch_embed.patch_size
        return super().forward_features(F.pad(x, (0, -x.shape[-1] % pw, 0, -x.shape[-2] % ph)))


class PaddedTimmCam(PadToPatch, TimmCam):
    """forward_cam of a padded timm Swin."""


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
    return _module_name(net, linear), None if norm is None else _module_name(net, norm)


def _module_name(net: nn.Module, module: nn.Module) -> str:
    """The name of ``module`` inside ``net`` (the CAM mixins store names, not modules)."""
    return next(key for key, m in net.named_modules() if m is module)


def timm_network(name: str, num_classes: int = 20, **kwargs: Any) -> nn.Module:
    """timm's ``name`` with random weights and ``num_classes`` outputs, with ``forward_cam`` where its head is
    GAP + linear, and ``cam_target_layer`` (Grad-CAM's default layer: timm's last feature stage)."""
    timm = _timm()
    if not timm.is_model(name):
        raise InferCamError(f"unknown timm model {name!r}; the names are timm.list_models()")
    with torch.device("meta"):  # the family decides how it is built to take any input size: structure only
        probe = timm.create_model(name, pretrained=False, num_classes=num_classes, **kwargs)
    vit, swin = _is_vit(probe), type(probe).__name__.startswith("SwinTransformer")
    any_size = ({"dynamic_img_size": True, "dynamic_img_pad": True} if vit
                else {"strict_img_size": False} if swin else {})
    net = timm.create_model(name, pretrained=False, num_classes=num_classes, **{**any_size, **kwargs})
    net.mean, net.std = tuple(net.pretrained_cfg["mean"]), tuple(net.pretrained_cfg["std"])
    if vit:
        return _vit(net)
    channels_last = getattr(net, "output_fmt", "NCHW") == "NHWC"
    if not channels_last and getattr(net, "feature_info", None):  # Grad-CAM needs (N, C, h, w) activations
        net.cam_target_layer = net.feature_info[-1]["module"]
    head = _cam_head(net, channels_last)
    if head is None:
        return add_cam(net, PadToPatch) if swin else net
    return add_cam(net, PaddedTimmCam if swin else TimmCam, cam_head=head[0], cam_norm=head[1],
                   cam_channels_last=channels_last)


def _is_vit(net: nn.Module) -> bool:
    """A timm vision transformer: patch tokens from ``patch_embed``, ``num_prefix_tokens`` others, ``blocks``."""
    return all(hasattr(net, a) for a in ("patch_embed", "num_prefix_tokens", "blocks", "forward_features")) \
        and hasattr(net.patch_embed, "dynamic_feat_size")


def _vit(net: nn.Module) -> nn.Module:
    """A timm ViT with its CAM: token maps for an average-pooling head, else Grad-CAM's token layer."""
    net.cam_target_layer = f"blocks.{len(net.blocks) - 1}.norm1"
    head = net.get_classifier()
    if getattr(net, "global_pool", None) == "avg" and isinstance(head, nn.Linear):
        fc_norm = getattr(net, "fc_norm", None)
        norm = _module_name(net, fc_norm) if isinstance(fc_norm, nn.LayerNorm) else None
        return add_cam(net, TimmVitCam, cam_head=_module_name(net, head), cam_norm=norm)
    return add_cam(net, TimmVit)


def timm_classes(name: str, state: dict[str, torch.Tensor]) -> int | None:
    """The class count of a checkpoint of ``name``: the outputs of the classifier its pretrained config
    names, or None if the checkpoint lacks that key."""
    cfg = _timm().models.get_pretrained_cfg(name)
    key = None if cfg is None else cfg.classifier
    key = key[0] if isinstance(key, (tuple, list)) else key
    weight = state.get(f"{key}.weight")
    return None if weight is None else int(weight.shape[0])


register_prefix("timm", timm_network, classes_in=timm_classes)
