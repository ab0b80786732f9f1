"""A CAM source for other classes than the network's: each target class's map from its member classes' maps.

``--class-map imagenet-voc`` makes any 1000-class ImageNet network a 20-class PASCAL VOC CAM source
(:mod:`infercam.data.imagenet_voc` says which ImageNet classes stand for each VOC class). How a VOC class's map
is made from its members' maps (``reduce``):

* ``max``: the pixel-wise maximum over the members;
* ``sum``: their sum;
* ``top``: the map of the one member with the largest pooled map (the spatial mean of its CAM, the logit up to
  the head's bias) on this input; each pass (scale, flip, patch, erasing round) picks on its own input.

A class with no member (VOC person) gets an all-zero map. BENCHMARKS.md measures the three on real photos.
"""
from __future__ import annotations

import torch
from torch import nn

from ..data import imagenet_voc
from ..errors import InferCamError

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

    def forward_cam(self, x: torch.Tensor) -> torch.Tensor:
        cams = self.model.forward_cam(x)
        needed = max((max(m) for m in self.members if m), default=-1)
        if needed >= cams.shape[1]:
            raise InferCamError(f"class map {self.name or 'given'} needs class {needed}, but the network has "
                                f"{cams.shape[1]} classes (an ImageNet-1k network is needed for {imagenet_voc.NAME})")
        out = cams.new_zeros(cams.shape[0], len(self.members), *cams.shape[2:])
        for c, idx in enumerate(self.members):
            if not idx:
                continue
            maps = cams[:, list(idx)]
            if self.reduce == "max":
                out[:, c] = maps.amax(dim=1)
            elif self.reduce == "sum":
                out[:, c] = maps.sum(dim=1)
            else:
                best = maps.mean(dim=(2, 3)).argmax(dim=1)
                out[:, c] = maps[torch.arange(maps.shape[0], device=maps.device), best]
        return out


def with_class_map(model: nn.Module, class_map: str | None, reduce: str = DEFAULT_REDUCE) -> nn.Module:
    """``model`` unchanged (no class map) or wrapped as a CAM source of the map's target classes."""
    if class_map is None:
        return model
    if class_map != imagenet_voc.NAME:
        raise InferCamError(f"unknown class map {class_map!r}: use one of {', '.join(CLASS_MAPS)}")
    members = [imagenet_voc.members(c) for c in range(len(imagenet_voc.IMAGENET_TO_VOC))]
    return ClassMapCam(model, members, reduce, name=f"{imagenet_voc.NAME} v{imagenet_voc.VERSION}")
