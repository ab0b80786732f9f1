"""Gradient-based class maps (Grad-CAM, Grad-CAM++) as ``forward_cam``, for classifiers without a CAM head.

:class:`GradCam` wraps any classifier ``model(x) -> (N, C)`` and a target layer with an (N, K, h, w)
output A. For every class c it takes the gradient G of the logit y_c with respect to A (one backward
per class, through the part of the network after the target layer only), weights A's channels and
keeps the positive part:

* Grad-CAM (Selvaraju et al., 2017): w_k = mean_ij G_kij; map = ReLU(sum_k w_k A_k).
* Grad-CAM++ (Chattopadhyay et al., 2018): a_kij = G^2 / (2 G^2 + sum_ij(A_k) G^3) (0 where that is
  undefined); w_k = sum_ij a_kij ReLU(G_kij); map = ReLU(sum_k w_k A_k).

Vision transformers: a network with ``token_layout(size) -> (prefix tokens, h, w)`` may name a token layer (output
(N, prefix + h*w, K)); its patch tokens are reshaped to the (N, K, h, w) grid and the prefix (class, register,
distillation) tokens dropped.

``forward_cam(x, classes)`` computes the listed classes only (one backward each), and the engine asks for its
labelled classes only (``cam_takes_classes``): with an ImageNet network that is 1-3 backwards per pass, not 1000.

For a global-average-pooling + linear head and the last feature layer, Grad-CAM is the CAM divided by
h*w: InferCam's maps, normalised by their maximum, are the same. The InferCam engine calls
``forward_cam`` under ``torch.inference_mode()``; the wrapper leaves it (``inference_mode(False)``,
``enable_grad()``) and runs the network on a clone of the input, since inference tensors cannot take
part in autograd. The network must be in eval mode, so that the images of a batch do not interact.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InferCamError, check_class_range
from ..models.registry import probe_channels

CAM_METHODS = ("cam", "gradcam", "gradcam++")


class GradCam(nn.Module):
    """Grad-CAM (``plus=False``) or Grad-CAM++ maps of every class at ``target_layer`` (a module name;
    default: the network's ``cam_target_layer``), as ``forward_cam``; ``forward`` is the network's."""

    cam_takes_classes = True  # forward_cam(x, classes) computes only those classes (see the module docstring)

    def __init__(self, model: nn.Module, target_layer: str | None = None, plus: bool = False) -> None:
        super().__init__()
        self.model = model
        self.target_layer = target_layer or getattr(model, "cam_target_layer", None)
        if self.target_layer is None:
            raise InferCamError(f"{type(model).__name__} has no default Grad-CAM layer: name one with `target_layer` "
                                f"(a module with an (N, C, h, w) output; top-level modules: "
                                f"{', '.join(name for name, _ in model.named_children())})")
        try:
            model.get_submodule(self.target_layer)
        except AttributeError:
            raise InferCamError(f"{type(model).__name__} has no module {self.target_layer!r} "
                                "(`target_layer`)") from None
        self.plus = plus
        for key in ("mean", "std"):  # the network's normalisation (see models.normalization)
            if hasattr(model, key):
                setattr(self, key, getattr(model, key))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The network's logits (N, C)."""
        return self.model(x)

    @property
    def cam_classes(self) -> int | None:
        """The network's class count, from its logits on a small blank input (no backward: forward_cam would need
        one per class); None where the network cannot take it."""
        return probe_channels(self.model, self.model)

    def forward_cam(self, x: torch.Tensor, classes: Sequence[int] | None = None) -> torch.Tensor:
        """Non-negative maps (N, C, h, w) of every class at the target layer's resolution, or (N, L, h, w) of the
        L ``classes`` given, in their order."""
        with torch.inference_mode(False), torch.enable_grad():
            acts, logits = self._activations(x.clone())
            wanted = list(range(logits.shape[1])) if classes is None else [int(c) for c in classes]
            check_class_range(wanted, logits.shape[1])
            maps = []
            for i, c in enumerate(wanted):
                (grads,) = torch.autograd.grad(logits[:, c].sum(), acts, retain_graph=i + 1 < len(wanted),
                                               allow_unused=True)
                if grads is None:
                    raise InferCamError(f"the logits do not depend on target layer {self.target_layer!r}")
                weights = _plus_weights(grads, acts) if self.plus else grads.mean(dim=(2, 3))
                maps.append(F.relu(torch.einsum("nk,nkhw->nhw", weights, acts.detach())))
        return torch.stack(maps, dim=1)

    def _activations(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(A, logits): the graph starts at the target layer's output A, so a backward stops there. A token layer's
        output (N, prefix + h*w, K), for a network with ``token_layout``, becomes A = its patch tokens as (N, K, h, w)
        (the class and any register or distillation tokens dropped)."""
        captured: list[torch.Tensor] = []
        layout = self.model.token_layout(tuple(x.shape[-2:])) if hasattr(self.model, "token_layout") else None

        def capture(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
            if layout is not None and output.dim() == 3:
                prefix, h, w = layout
                grid = output[:, prefix:].detach().transpose(1, 2).reshape(output.shape[0], -1, h, w)
                captured.append(grid.requires_grad_())
                tokens = captured[-1].flatten(2).transpose(1, 2)
                return torch.cat([output[:, :prefix], tokens], dim=1)
            captured.append(output.detach().requires_grad_())
            return captured[-1].clone()  # a non-leaf, which later in-place operations may modify

        handle = self.model.get_submodule(self.target_layer).register_forward_hook(capture)
        try:
            logits = self.model(x)
        finally:
            handle.remove()
        if len(captured) != 1 or captured[0].dim() != 4:
            shapes = [tuple(a.shape) for a in captured]
            raise InferCamError(f"target layer {self.target_layer!r} must run once per forward with an (N, C, h, w) "
                                f"output (or, in a vision transformer, (N, tokens, C)); got outputs of shapes {shapes}")
        if logits.dim() != 2:
            raise InferCamError(f"{type(self.model).__name__} must return logits (N, C), got {tuple(logits.shape)}")
        return captured[0], logits


def _plus_weights(grads: torch.Tensor, acts: torch.Tensor) -> torch.Tensor:
    """Grad-CAM++ channel weights (N, K) from gradients and activations (N, K, h, w)."""
    g2 = grads.pow(2)
    denom = 2 * g2 + acts.detach().sum(dim=(2, 3), keepdim=True) * g2 * grads
    defined = denom != 0
    alpha = torch.where(defined, g2 / torch.where(defined, denom, torch.ones_like(denom)), torch.zeros_like(g2))
    return (alpha * F.relu(grads)).sum(dim=(2, 3))


def with_cam_method(model: nn.Module, cam_method: str = "cam", target_layer: str | None = None) -> nn.Module:
    """The network whose ``forward_cam`` gives ``cam_method``'s maps: ``model`` itself for ``cam`` (it must have
    forward_cam), else a :class:`GradCam` wrapper at ``target_layer``."""
    if cam_method not in CAM_METHODS:
        raise InferCamError(f"unknown CAM method {cam_method!r}: use one of {', '.join(CAM_METHODS)}")
    if cam_method == "cam":
        if target_layer is not None:
            raise InferCamError("`target_layer` applies to `cam_method` gradcam or gradcam++ only")
        if not hasattr(model, "forward_cam"):
            raise InferCamError(f"{type(model).__name__} has no forward_cam (its head is not global average pooling "
                                "+ one linear layer to form a CAM from): use `cam_method` gradcam or gradcam++")
        return model
    return GradCam(model, target_layer, plus=cam_method == "gradcam++")
