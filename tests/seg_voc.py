"""A tiny VOC-layout folder for the pseudo label / AffinityNet / segmentation tests.

Each image has one or two flat-coloured objects on a noisy grey background; the CAMs are the
objects' masks blurred (so they bleed over the borders) and max-normalised, as psa writes them.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from infercam.io import save_cams, save_label_png

# (class index, colour) of the objects.
OBJECTS = ((0, (220, 40, 40)), (7, (40, 200, 60)), (14, (40, 70, 230)))


def _scene(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    image = np.clip(110 + rng.normal(0, 6, (size, size, 3)), 0, 255).astype(np.uint8)
    mask = np.zeros((size, size), np.uint8)
    yy, xx = np.mgrid[:size, :size]
    picks = rng.choice(len(OBJECTS), size=int(rng.integers(1, 3)), replace=False)
    for k, pick in enumerate(sorted(picks)):
        cls, colour = OBJECTS[pick]
        cy, cx = rng.uniform(0.3, 0.7) * size, (0.3 + 0.4 * k) * size if len(picks) > 1 else size / 2
        r = rng.uniform(0.15, 0.22) * size
        inside = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        image[inside] = colour
        mask[inside] = cls + 1
    return image, mask


def make_seg_voc(root: Path, n: int = 4, size: int = 96, seed: int = 0) -> Path:
    """Write JPEGImages/, SegmentationClass/, cls_labels.npy, ImageSets/Segmentation/train.txt and
    cams/<name>.npy (psa format) under ``root``; returns ``root``."""
    rng = np.random.default_rng(seed)
    for folder in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation", "cams"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    names, table = [], {}
    for i in range(n):
        name = f"img_{i}"
        image, mask = _scene(rng, size)
        Image.fromarray(image).save(root / "JPEGImages" / f"{name}.jpg", quality=95)
        save_label_png(root / "SegmentationClass" / f"{name}.png", mask)
        classes = sorted(int(v) - 1 for v in np.unique(mask) if v)
        vec = np.zeros(20, np.float32)
        vec[classes] = 1
        table[name] = vec
        cams = {}
        for c in classes:
            blurred = ndimage.gaussian_filter((mask == c + 1).astype(np.float32), sigma=4)
            cams[c] = blurred / blurred.max()
        save_cams(root / "cams" / f"{name}.npy", cams)
        names.append(name)
    np.save(root / "cls_labels.npy", table)
    (root / "ImageSets/Segmentation/train.txt").write_text("\n".join(names) + "\n")
    return root
