"""Where to cut an image into four overlapping corner patches, from the CAMs' centres of mass.

One labelled class: cut at its centre with a 10 px margin; two classes: at the extreme centres with
a 20 px margin; three or more: no cut (every patch is the whole image).
"""
from __future__ import annotations

import math
import warnings
from typing import NamedTuple, Sequence

import numpy as np
from scipy import ndimage

DEFAULT_MARGINS = (10, 20)  # one class, two classes
CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right")  # the four patches, in order


class Box(NamedTuple):
    """A half-open pixel box: rows [top, bottom), columns [left, right)."""

    top: int
    left: int
    bottom: int
    right: int

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def width(self) -> int:
        return self.right - self.left

    def slices(self) -> tuple[slice, slice]:
        return slice(self.top, self.bottom), slice(self.left, self.right)


def mass_center(cam: np.ndarray) -> tuple[int, int]:
    """Centre of mass (row, col) of one map, truncated to int; the image centre if undefined."""
    height, width = cam.shape
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        cy, cx = ndimage.center_of_mass(cam)
    if not (math.isfinite(cy) and math.isfinite(cx)):
        return int(height / 2), int(width / 2)
    return int(cy), int(cx)


def clamp_start(value: int, size: int) -> int:
    """A patch start row/column, clamped at 0."""
    return max(value, 0)


def wrap_start(value: int, size: int) -> int:
    """A patch start row/column as the authors' numpy slicing reads it: a negative start counts from the end."""
    return value if value >= 0 else max(0, size + value)


def patch_boxes(centers: Sequence[tuple[int, int]], height: int, width: int, mode: str = "default",
                margins: tuple[int, int] = DEFAULT_MARGINS) -> list[Box]:
    """The four patch boxes (top-left, top-right, bottom-left, bottom-right) a mode cuts for these centres.

    ``reference`` reproduces the authors' numpy slicing, where a negative start counts from the end of the
    image; ``fixed`` clamps it at 0; ``default`` does not cut (:mod:`infercam.method.modes`).
    """
    from .modes import recipe  # the modes are built from this module's rules

    return recipe(mode).boxes(centers, height, width, margins)


def corner_patches(centers: Sequence[tuple[int, int]], height: int, width: int,
                   margins: tuple[int, int] = DEFAULT_MARGINS, start=clamp_start) -> list[Box]:
    """The published cut: one or two centres give four overlapping corner patches meeting at the centres plus
    a margin (10 px for one class, 20 for two; ``start`` turns a negative start into a row/column); three or
    more give the whole image four times."""
    if not centers:
        raise ValueError("at least one centre is needed")
    whole = Box(0, 0, height, width)
    if len(centers) > 2:
        return [whole] * 4
    margin = margins[0] if len(centers) == 1 else margins[1]
    ys = [c[0] for c in centers]
    xs = [c[1] for c in centers]
    y_end = min(max(ys) + margin, height)
    x_end = min(max(xs) + margin, width)
    y_start = start(min(ys) - margin, height)
    x_start = start(min(xs) - margin, width)
    return [
        Box(0, 0, y_end, x_end),
        Box(0, x_start, y_end, width),
        Box(y_start, 0, height, x_end),
        Box(y_start, x_start, height, width),
    ]


def corner_boxes(sizes: Sequence[tuple[int, int]], height: int, width: int) -> list[Box]:
    """Boxes of four pre-cut patches placed back at their corners by their sizes (the authors' rule)."""
    (h1, w1), (h2, w2), (h3, w3), (h4, w4) = sizes
    for h, w in sizes:
        if h > height or w > width:
            raise ValueError(f"a {h}x{w} patch does not fit a {height}x{width} image")
    return [
        Box(0, 0, h1, w1),
        Box(0, width - w2, h2, width),
        Box(height - h3, 0, height, w3),
        Box(height - h4, width - w4, height, width),
    ]


def merge_max(patch_maps: Sequence[tuple[Box, np.ndarray]], shape: tuple[int, ...]) -> np.ndarray:
    """Place each patch's maps (L x h x w) at its box on a zero canvas (L x H x W); maximum on overlaps."""
    canvas = np.zeros(shape, dtype=np.float32)
    for box, maps in patch_maps:
        rows, cols = box.slices()
        np.maximum(canvas[:, rows, cols], maps, out=canvas[:, rows, cols])
    return canvas


merge = merge_max  # the published merge
