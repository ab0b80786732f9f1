"""A closer look at small objects: the CAM of a patch centred on a class, enlarged, blended into the image's map.

A classifier's CAM has the resolution of its last feature grid (1/32 of the input for EfficientNet), so a small
object's map is a blur about as wide as a grid cell, and erasing it only reveals what touches it (BENCHMARKS.md,
issue 13). A class whose baseline region is small instead gets the CAM of the box round that region, enlarged to
the image's longer side: the same multi-scale passes, on an input where the object is as large as an ImageNet
photo's. The zoomed map replaces the baseline inside the box, through a window that falls to 0 at every box side
inside the image, so the merged map has no step at the box border.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from scipy import ndimage

from .split import Box


@dataclass(frozen=True)
class ZoomSmall:
    """Which classes are zoomed, and how: the box round a class's baseline region (>= ``threshold``), widened by
    ``margin`` times its height and width on each side; a class is zoomed when that box can be enlarged at least
    ``min_zoom`` times (at most ``max_zoom``) and stay within the image's longer side and its pixel count (so a
    closer look costs no more input pixels than the image). The window ramps over ``band`` times the box's side."""

    threshold: float = 0.3
    margin: float = 0.5
    band: float = 0.15
    min_zoom: float = 2.0
    max_zoom: float = 4.0
    rounds: int = 1  # CAMs on the enlarged box: its own, then erasing rounds by the mode's rules
    peak_only: bool = False  # the region: only the connected part of the map >= threshold round its peak

    def box(self, base: np.ndarray) -> tuple[Box, float] | None:
        """The zoom box and factor of one class's normalised baseline map (H x W), or None if it is not small."""
        height, width = base.shape
        region = base >= self.threshold
        if self.peak_only and region.any():
            parts, _ = ndimage.label(region)
            region = parts == parts.flat[int(np.argmax(base))]
        rows = np.flatnonzero(region.any(axis=1))
        cols = np.flatnonzero(region.any(axis=0))
        if not len(rows):
            return None
        top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        dy, dx = self.margin * (bottom - top), self.margin * (right - left)
        box = Box(max(0, int(top - dy)), max(0, int(left - dx)), min(height, int(bottom + dy)),
                  min(width, int(right + dx)))
        factor = min(max(height, width) / max(box.height, box.width),
                     math.sqrt(height * width / (box.height * box.width)), self.max_zoom)
        return (box, factor) if factor >= self.min_zoom else None

    def window(self, box: Box, height: int, width: int) -> torch.Tensor:
        """h x w weights of the zoomed map: 1 inside, falling linearly to 0 over ``band`` of the box's height
        (width) at each side that lies inside the image (a side on the image border needs no ramp)."""
        def ramp(size: int, band: float, rises: bool, falls: bool) -> torch.Tensor:
            pos = torch.arange(size, dtype=torch.float32) + 0.5
            weight = torch.ones(size)
            span = max(band * size, 1.0)
            if rises:
                weight = torch.minimum(weight, pos / span)
            if falls:
                weight = torch.minimum(weight, (size - pos) / span)
            return weight.clamp(0.0, 1.0)

        rows = ramp(box.height, self.band, box.top > 0, box.bottom < height)
        cols = ramp(box.width, self.band, box.left > 0, box.right < width)
        return torch.minimum(rows[:, None], cols[None, :])


def enlarge(image: np.ndarray, box: Box, factor: float) -> np.ndarray:
    """The box's crop of the image resized by ``factor`` (PIL bicubic, as the pyramid's levels are)."""
    rows, cols = box.slices()
    crop = Image.fromarray(np.ascontiguousarray(image[rows, cols]))
    size = (max(1, round(box.width * factor)), max(1, round(box.height * factor)))
    return np.asarray(crop.resize(size, resample=Image.BICUBIC))


def blend(canvas: torch.Tensor, box: Box, zoomed: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """``canvas`` (H x W) with the zoomed map (normalised, at any size) blended in at ``box`` through ``window``."""
    fitted = F.interpolate(zoomed[None, None], size=(box.height, box.width), mode="bilinear",
                           align_corners=False)[0, 0]
    out = canvas.clone()
    rows, cols = box.slices()
    window = window.to(canvas.device)
    out[rows, cols] = (1 - window) * canvas[rows, cols] + window * fitted
    return out
