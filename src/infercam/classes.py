"""PASCAL VOC class names and colour map, shared by data loading, outputs and evaluation."""
from __future__ import annotations

import numpy as np

VOC_CLASSES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)
NUM_CLASSES = len(VOC_CLASSES)
IGNORE_INDEX = 255


def voc_colormap(n: int = 256) -> np.ndarray:
    """The standard VOC palette: (n, 3) uint8, index 0 black (background), 255 the border colour."""
    cmap = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        cmap[i] = (r, g, b)
    return cmap
