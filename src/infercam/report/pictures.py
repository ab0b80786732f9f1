"""The pictures of a report: label maps in VOC colours, patch boxes and region outlines drawn on images."""
from __future__ import annotations

import numpy as np

from ..classes import voc_colormap
from ..method.split import Box

PALETTE = voc_colormap()


def colour_labels(label: np.ndarray) -> np.ndarray:
    """A label map in VOC colours (ignore 255 shown white)."""
    rgb = PALETTE[label]
    rgb[label == 255] = 255
    return rgb


def draw_boxes(image: np.ndarray, boxes: list[Box]) -> np.ndarray:
    """The image with the four patch boxes outlined (1 px, in distinct colours)."""
    out = image.copy()
    for box, colour in zip(boxes, ((255, 255, 0), (0, 255, 255), (255, 0, 255), (255, 128, 0))):
        b, r = box.bottom - 1, box.right - 1
        out[box.top, box.left:box.right] = out[b, box.left:box.right] = colour
        out[box.top:box.bottom, box.left] = out[box.top:box.bottom, r] = colour
    return out


def outline(image: np.ndarray, mask: np.ndarray, colour=(0, 255, 0)) -> np.ndarray:
    """The image with the border of a bool mask drawn (e.g. an object's hand-drawn boxes)."""
    out = image.copy()
    inner = mask.copy()
    inner[1:-1, 1:-1] = mask[1:-1, 1:-1] & mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:]
    out[mask & ~inner] = colour
    return out
