"""The README's first picture: real photos with a real ImageNet network, and one synthetic image with its truth.

Rows: darknet's dog, eagle and horses photos (EfficientNet-Lite0, ImageNet weights, the photo's hand-drawn boxes in
green), each as photo / baseline CAM / InferCam default / InferCam fixed (the published method); then one
synthetic held-out image (the bundled demo network) as image / ground truth / baseline / default / fixed.

    .venv/bin/python docs/figures/make_figure.py            # writes docs/figures/infercam.png
Rerun it whenever the method changes.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from infercam import InferCam, models
from infercam.data import photos
from infercam.data.images import fit
from infercam.data.scenes import image_rng, render_scene
from infercam.io import overlay
from infercam.report.pictures import colour_labels, outline

OUT = Path(__file__).with_name("infercam.png")
PHOTOS = ("dog", "eagle", "horses")
CELL = 220  # the longer side of each panel
SYNTHETIC_SEED, SYNTHETIC_INDEX = 20221, 7  # an image of the demo's held-out split
CAPTION = 22


def panel(image: np.ndarray, caption: str) -> Image.Image:
    """One captioned cell: the picture fitted to CELL px (its longer side), the caption above it."""
    pic = Image.fromarray(fit(image, CELL) if max(image.shape[:2]) > CELL else image)
    if max(pic.size) < CELL:
        scale = CELL / max(pic.size)
        pic = pic.resize((round(pic.width * scale), round(pic.height * scale)), Image.NEAREST)
    cell = Image.new("RGB", (CELL, pic.height + CAPTION), "white")
    cell.paste(pic, ((CELL - pic.width) // 2, CAPTION))
    ImageDraw.Draw(cell).text((4, 4), caption, fill="black")
    return cell


def top_map(cams: dict[int, np.ndarray]) -> np.ndarray:
    return np.max(np.stack(list(cams.values())), axis=0)


def photo_row(net, photo: photos.Photo, image: np.ndarray) -> list[Image.Image]:
    image = fit(image, 500)
    classes = photo.imagenet_classes()
    default = InferCam(net, mode="default")(image, classes)
    fixed = InferCam(net, mode="fixed")(image, classes)
    boxes = np.any(np.stack([photo.region(c, shape=image.shape[:2]) for c in classes]), axis=0)
    names = ", ".join(next(o.imagenet_name for o in photo.objects if o.imagenet == c) for c in classes)
    return [panel(outline(image, boxes), f"{photo.name}: {names}"[:34]),
            panel(overlay(image, top_map(default.baseline)), "baseline CAM"),
            panel(overlay(image, top_map(default.cams)), "InferCam default"),
            panel(overlay(image, top_map(fixed.cams)), "InferCam fixed (published)")]


def synthetic_row() -> list[Image.Image]:
    scene = render_scene(image_rng(SYNTHETIC_SEED, SYNTHETIC_INDEX))
    net, _ = models.build_network("demo")
    labels = [int(c) for c in np.flatnonzero(scene.labels())]
    default = InferCam(net, mode="default")(scene.image, labels)
    fixed = InferCam(net, mode="fixed")(scene.image, labels)
    return [panel(scene.image, "synthetic (demo network)"), panel(colour_labels(scene.classes), "ground truth"),
            panel(overlay(scene.image, top_map(default.baseline)), "baseline CAM"),
            panel(overlay(scene.image, top_map(default.cams)), "InferCam default"),
            panel(overlay(scene.image, top_map(fixed.cams)), "InferCam fixed (published)")]


def main() -> int:
    found = {p.name: (p, im) for p, im in photos.available("test")[0]}
    missing = [n for n in PHOTOS if n not in found]
    if missing:
        print(f"darknet's photos {missing} not found: run `make photos` first", file=sys.stderr)
        return 1
    net, _ = models.build_network("efficientnet-lite0")
    rows = [photo_row(net, *found[n]) for n in PHOTOS] + [synthetic_row()]
    columns = max(len(r) for r in rows)
    heights = [max(cell.height for cell in row) for row in rows]
    sheet = Image.new("RGB", (columns * CELL, sum(heights)), "white")
    for i, row in enumerate(rows):
        for j, cell in enumerate(row):
            sheet.paste(cell, (j * CELL, sum(heights[:i])))
    sheet.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(OUT, optimize=True)  # < 600 KB
    print(f"wrote {OUT} ({OUT.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
