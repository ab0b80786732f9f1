"""torchvision classifiers by name, ``torchvision:<name>``, with the CAM of their own head.

``create("torchvision:resnet50", num_classes=20)`` is ``torchvision.models.get_model("resnet50",
weights=None, num_classes=20)``, extended with ``forward_cam`` (see :mod:`.linear_cam`) where the head
is global average pooling + one linear layer: ResNet, ResNeXt, Wide ResNet, RegNet, ConvNeXt,
EfficientNet (v1, v2), MobileNetV2, MNASNet, ShuffleNetV2, DenseNet, Swin (v1, v2). The others are
built as they are, without ``forward_cam`` (VGG, AlexNet, MobileNetV3: MLP heads; ...): use Grad-CAM for them.
ViT (``vit_b_16`` ...) reads its class token: it takes any input size and Grad-CAM runs over its tokens
(:mod:`.vit_any_size`). The state_dict is torchvision's own, so a fine-tuned model's loads as it is.
"""
from __future__ import annotations

import dataclasses
import difflib
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchvision import models as tvm

from ..errors import InferCamError
from .linear_cam import LinearHeadCam, add_cam
from .registry import register_prefix
from .vit_any_size import AnySizeVit


@dataclasses.dataclass(frozen=True)
class _Layout:
    """Where a family's feature map and head are (module names)."""

    last: str  # the last child of the feature extractor: children run in order up to it (Grad-CAM's default layer)
    head: str | None = None  # the linear layer on the pooled features; None: the head is not GAP + linear
    norm: str | None = None  # a LayerNorm the network applies to the pooled vector before the head
    relu: bool = False  # the network applies a ReLU to the feature map in forward, outside any module


_LAYOUTS: dict[type[nn.Module], _Layout] = {
    tvm.ResNet: _Layout("layer4", "fc"),
    tvm.RegNet: _Layout("trunk_output", "fc"),
    tvm.ConvNeXt: _Layout("features", "classifier.2", norm="classifier.0"),
    tvm.EfficientNet: _Layout("features", "classifier.1"),
    tvm.MobileNetV2: _Layout("features", "classifier.1"),
    tvm.MNASNet: _Layout("layers", "classifier.1"),
    tvm.ShuffleNetV2: _Layout("conv5", "fc"),
    tvm.DenseNet: _Layout("features", "classifier", relu=True),
    tvm.SwinTransformer: _Layout("permute", "head"),
    tvm.MobileNetV3: _Layout("features"),
    tvm.VGG: _Layout("features"),
    tvm.AlexNet: _Layout("features"),
    tvm.SqueezeNet: _Layout("features"),
}


class TorchvisionCam(LinearHeadCam):
    """forward_cam for a torchvision classifier: its head's weights on the feature map before pooling."""

    cam_last: str
    cam_relu: bool = False

    def cam_features(self, x: torch.Tensor) -> torch.Tensor:
        """The feature map the head pools: the network's children run in order up to ``cam_last``."""
        for name, child in self.named_children():
            x = child(x)
            if name == self.cam_last:
                break
        return F.relu(x) if self.cam_relu else x


def check_torchvision_name(name: str) -> None:
    """Raise a clear error, with close matches, unless ``name`` is a torchvision classification model."""
    known = tvm.list_models(module=tvm)
    if name not in known:
        close = difflib.get_close_matches(name, known, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise InferCamError(f"unknown torchvision classifier {name!r}{hint}; the names are "
                            "torchvision.models.list_models(module=torchvision.models)")


def torchvision_network(name: str, num_classes: int = 20, **kwargs: Any) -> nn.Module:
    """torchvision's ``name`` with random weights and ``num_classes`` outputs, with ``forward_cam`` where its
    head is GAP + linear, and ``cam_target_layer`` (Grad-CAM's default layer) where its family is known."""
    check_torchvision_name(name)
    net = tvm.get_model(name, weights=None, num_classes=num_classes, **kwargs)
    if isinstance(net, tvm.VisionTransformer):  # class token: Grad-CAM over the tokens, at any input size
        last = list(net.encoder.layers.named_children())[-1][0]
        return add_cam(net, AnySizeVit, cam_target_layer=f"encoder.layers.{last}.ln_1")
    layout = _LAYOUTS.get(type(net))
    if layout is None:
        return net
    net.cam_target_layer = layout.last
    if layout.head is None:
        return net
    return add_cam(net, TorchvisionCam, cam_last=layout.last, cam_head=layout.head, cam_norm=layout.norm,
                   cam_relu=layout.relu)


def torchvision_classes(name: str, state: dict[str, torch.Tensor]) -> int | None:
    """The class count of a checkpoint of ``name``: the outputs of its classifier (the network's last
    linear or convolution layer), or None if the checkpoint lacks that key."""
    check_torchvision_name(name)
    try:
        with torch.device("meta"):  # structure only: no memory, no initialisation
            skeleton = tvm.get_model(name, weights=None)
    except NotImplementedError:  # RegNet computes its widths with tensor ops, which need data
        skeleton = tvm.get_model(name, weights=None)
    head = [key for key, m in skeleton.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))][-1]
    weight = state.get(f"{head}.weight")
    return None if weight is None else int(weight.shape[0])


def torchvision_name(model: nn.Module) -> tuple[str, int] | None:
    """(torchvision builder name, class count) that build ``model``'s architecture (the same class and state_dict
    shapes), for a plain torchvision classifier; None for any other module. Candidates are built on the meta
    device (structure only), and only those of the model's own torchvision module (resnet: resnet18 ... wide_resnet)."""
    if not type(model).__module__.startswith("torchvision.models"):
        return None
    heads = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    if not heads:
        return None
    classes = heads[-1].out_features if isinstance(heads[-1], nn.Linear) else heads[-1].out_channels
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    for name in tvm.list_models(module=tvm):
        builder = tvm.get_model_builder(name)
        if builder.__module__ != type(model).__module__:
            continue
        try:
            with torch.device("meta"):
                candidate = builder(weights=None, num_classes=classes)
        except Exception:  # e.g. RegNet computes its widths with tensor ops, which need data: no suggestion
            continue
        if type(candidate) is type(model) and {k: tuple(v.shape) for k, v in candidate.state_dict().items()} == shapes:
            return name, classes
    return None


def forward_cam_hint(model: nn.Module) -> str:
    """How to get ``forward_cam`` for a torchvision classifier built with torchvision itself (the same network
    through ``torchvision:<name>``, or Grad-CAM where its head forms no CAM); empty for other modules."""
    found = torchvision_name(model)
    if found is None:
        return ""
    name, classes = found
    if isinstance(model, tvm.VisionTransformer):  # torchvision's takes only its training size: infercam's any
        return (f"build torchvision's {name} as infercam.models.create('torchvision:{name}', num_classes={classes}) "
                "(the same state_dict, at any input size), load your weights into it, net.load_state_dict("
                "model.state_dict()), and wrap it with Grad-CAM over its tokens: infercam.method.gradcam.GradCam(net)")
    layout = _LAYOUTS.get(type(model))
    if layout is not None and layout.head is None:
        return (f"torchvision's {name} has no CAM of its own head: wrap it with Grad-CAM, "
                f"infercam.method.gradcam.GradCam(model, target_layer={layout.last!r})")
    return (f"build torchvision's {name} as infercam.models.create('torchvision:{name}', num_classes={classes}) "
            "(the same network and state_dict, with forward_cam) and load your weights into it: "
            "net.load_state_dict(model.state_dict())")


register_prefix("torchvision", torchvision_network, classes_in=torchvision_classes)
