"""``infercam make-synthetic``: write the synthetic VOC-layout data set (see docs/synthetic.md)."""
from __future__ import annotations

import argparse

from tqdm import tqdm

from ..data.scenes import SceneDesign
from ..data.synthetic import MAX_IMAGES, MAX_SIZE, make_synthetic
from ..errors import InferCamError
from ..text import counted
from .validate import int_at_least


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "make-synthetic", help="write a synthetic PASCAL-VOC-layout data set",
        description="Write a synthetic data set in PASCAL VOC layout: JPEGImages/, SegmentationClass/ "
                    "(VOC palette, 255 on a border band), SegmentationPart/ (1 body, 2 head), Annotations/, "
                    "ImageSets/Segmentation/{train,val}.txt and psa-style cls_labels.npy. Each of 20 "
                    "classes has a small, bright, discriminative head and a large body with weak "
                    "class-specific texture; 1-3 classes per image on desaturated clutter. The output is "
                    "identical for a given seed, whatever the number of workers.")
    parser.add_argument("--out", required=True, help="new or empty output folder")
    parser.add_argument("--n-train", type=int_at_least(0, MAX_IMAGES), default=10000, help="training images (default: 10000)")
    parser.add_argument("--n-val", type=int_at_least(0, MAX_IMAGES), default=1000, help="validation images (default: 1000)")
    parser.add_argument("--size", type=int_at_least(64, MAX_SIZE), default=176,
                        help="image side in pixels (default: 176; 160-192 suits a stride-8 classifier)")
    parser.add_argument("--seed", type=int_at_least(0), default=0, help="random seed (default: 0)")
    parser.add_argument("--workers", type=int_at_least(1), default=1, help="worker processes (default: 1)")
    parser.add_argument("--no-border", action="store_true",
                        help="no 255 band along object outlines in the masks (default: a band as in VOC)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.n_train + args.n_val == 0:
        raise InferCamError("nothing to write: --n-train and --n-val are both 0")
    if args.n_train + args.n_val > MAX_IMAGES:
        raise InferCamError(f"at most {MAX_IMAGES} images in all, got {args.n_train + args.n_val}")
    design = SceneDesign(border_width=0 if args.no_border else 1)
    with tqdm(total=args.n_train + args.n_val, desc="make-synthetic", unit="img",
              delay=0.5, disable=args.no_progress) as bar:
        summary = make_synthetic(args.out, args.n_train, args.n_val, args.size, args.seed,
                                 workers=args.workers, design=design, progress=bar.update)
    mix = ", ".join(f"{counted(k, 'class', 'classes')}: {v}" for k, v in sorted(summary.classes_per_image.items()))
    print(f"wrote {summary.n_train} train + {summary.n_val} val images ({counted(summary.objects, 'object')}; "
          f"{mix}) to {summary.root}")
    return 0
