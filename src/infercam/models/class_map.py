"""A CAM source for other classes than the network's: each target class's map from its member classes' maps.

``--class-map imagenet-voc`` makes any 1000-class ImageNet network a 20-class PASCAL VOC CAM source
(:mod:`infercam.data.imagenet_voc` says which ImageNet classes stand for each VOC class). How a VOC class's map
is made from its members' maps (``reduce``):

* ``max``: the pixel-wise maximum over the members;
* ``sum``: their sum;
* ``top``: the map of the one member with the largest pooled map (the spatial mean of its CAM, the logit up to
  the head's bias) on this input; each pass (scale, flip, patch, erasing round) picks on its own input.

A class with no member (VOC person) gets an all-zero map. BENCHMARKS.md measures the three on real photos. Over a
network that computes a subset of its classes (Grad-CAM), the engine's labelled classes ask it for their members
only.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..data import imagenet_voc
from ..errors import InferCamError, check_class_range
from ..text import counted
from .registry import cam_classes

CLASS_MAPS = imagenet_voc.CLASS_MAPS
REDUCTIONS = ("max", "sum", "top")
DEFAULT_REDUCE = "top"


class ClassMapCam(nn.Module):
    """``forward_cam`` of ``model`` with its classes gathered into target classes by ``members[c]``."""

    def __init__(self, model: nn.Module, members: list[tuple[int, ...]], reduce: str = DEFAULT_REDUCE,
                 name: str = "") -> None:
        super().__init__()
        if reduce not in REDUCTIONS:
            raise InferCamError(f"unknown class-map reduction {reduce!r}: use one of {', '.join(REDUCTIONS)}")
        self.model = model
        self.members = [tuple(m) for m in members]
        self.reduce = reduce
        self.name = name
        self.class_names = imagenet_voc.VOC_CLASSES if len(self.members) == len(imagenet_voc.VOC_CLASSES) else ()
        for attr in ("mean", "std"):
            if hasattr(model, attr):
                setattr(self, attr, getattr(model, attr))

    @property
    def network_classes(self) -> int:
        """How many classes the network must have: one past the highest member."""
        return max((max(m) for m in self.members if m), default=-1) + 1

    @property
    def cam_classes(self) -> int:
        """The class map's target classes (its maps' channels)."""
        return len(self.members)

    @property
    def cam_takes_classes(self) -> bool:
        """``forward_cam(x, classes)`` asks the network for those classes' members only, where the network can
        compute a subset of its classes (Grad-CAM: one backward per member instead of one per ImageNet class)."""
        return bool(getattr(self.model, "cam_takes_classes", False))

    def forward_cam(self, x: torch.Tensor, classes: Sequence[int] | None = None) -> torch.Tensor:
        """Maps (N, T, h, w) of every target class, or (N, L, h, w) of the L target ``classes`` given."""
        targets = list(range(len(self.members))) if classes is None else [int(c) for c in classes]
        check_class_range(targets, len(self.members), "the class map")
        position = None  # where each member's map is in the network's output (None: at its own index)
        if classes is not None and self.cam_takes_classes:
            needed = sorted({m for c in targets for m in self.members[c]})
            cams = self.model.forward_cam(x, needed or [0])  # no member at all: one class, for the maps' size
            position = {m: i for i, m in enumerate(needed)}
        else:
            cams = self.model.forward_cam(x)
            if self.network_classes > cams.shape[1]:
                raise InferCamError(f"class map {self.name or 'given'} needs class {self.network_classes - 1}, but "
                                    f"the network has {counted(cams.shape[1], 'class', 'classes')} (an ImageNet-1k "
                                    f"network is needed for {imagenet_voc.NAME})")
        out = cams.new_zeros(cams.shape[0], len(targets), *cams.shape[2:])
        for j, c in enumerate(targets):
            if not self.members[c]:
                continue
            members = list(self.members[c])
            maps = cams[:, members if position is None else [position[m] for m in members]]
            if self.reduce == "max":
                out[:, j] = maps.amax(dim=1)
            elif self.reduce == "sum":
                out[:, j] = maps.sum(dim=1)
            else:
                best = maps.mean(dim=(2, 3)).argmax(dim=1)
                out[:, j] = maps[torch.arange(maps.shape[0], device=maps.device), best]
        return out


def with_class_map(model: nn.Module, class_map: str | None, reduce: str = DEFAULT_REDUCE) -> nn.Module:
    """``model`` unchanged (no class map) or wrapped as a CAM source of the map's target classes."""
    if class_map is None:
        return model
    if class_map != imagenet_voc.NAME:
        raise InferCamError(f"unknown class map {class_map!r}: use one of {', '.join(CLASS_MAPS)}")
    members = [imagenet_voc.members(c) for c in range(len(imagenet_voc.IMAGENET_TO_VOC))]
    mapped = ClassMapCam(model, members, reduce, name=f"{imagenet_voc.NAME} v{imagenet_voc.VERSION}")
    have = cam_classes(model)  # checked once here, not failing every image
    if have is not None and have < mapped.network_classes:
        raise InferCamError(f"class map {class_map} needs an ImageNet-1k network (it uses classes up to "
                            f"{mapped.network_classes - 1}), but the network has {counted(have, 'class', 'classes')}")
    return mapped
