"""``infercam report``: a browsable side-by-side gallery of CAM and label folders, scored where there is ground truth."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..data.voc import check_layout, image_names, read_image_list
from ..report.runs import write_runs_report
from .validate import positive_int, unit_interval


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "report", help="an HTML gallery of runs side by side (CAM or label folders), with where each wins and loses",
        description="Write one self-contained folder (index.html + img/, relative links only) comparing runs on a "
                    "VOC folder: per run its mIoU (infercam eval's), IoU per class with the best run marked, mIoU "
                    "against threshold, and a gallery of every image (photo, ground truth, each run's map with its "
                    "IoU) sortable by name, a run's IoU or the difference of two runs, filterable by class.")
    parser.add_argument("--voc-root", required=True, type=Path, help="VOC folder: JPEGImages/, SegmentationClass/ if any")
    parser.add_argument("--list", dest="list_file", default=None, type=Path,
                        help="file of image names (default: every image in JPEGImages)")
    parser.add_argument("--run", action="append", required=True, metavar="[NAME=]DIR",
                        help="a folder of <name>.npy CAM files (psa or IRN) or of <name>.png label maps, named NAME "
                             "(default: the folder's name); repeatable")
    parser.add_argument("--out", required=True, type=Path, help="report folder (index.html and img/)")
    parser.add_argument("--images", type=positive_int, default=None, metavar="N",
                        help="show only the N most informative images (the largest IoU differences between runs)")
    parser.add_argument("--sort", choices=("gain", "loss", "name", "iou"), default="gain",
                        help="the gallery's first order: gain / loss = the last run's IoU minus the first's, largest "
                             "/ smallest first; iou = the first run's, lowest first; name (default: gain)")
    parser.add_argument("--threshold", type=unit_interval, default=None,
                        help="score CAM runs at this background threshold (default: each run's best of 0..0.95)")
    parser.add_argument("--missing", choices=("error", "skip"), default="error",
                        help="a run without the file of a listed image: stop (error, default) or show it as "
                             "missing and go on (skip)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_layout(args.voc_root)  # with --list too: else each image "not found", or with --missing skip a bare page
    names = (read_image_list(args.list_file, args.voc_root) if args.list_file is not None
             else image_names(args.voc_root))  # the label file is not needed
    path = write_runs_report(args.out, args.voc_root, names, args.run, args.threshold, args.images, args.sort,
                             args.missing, progress=not args.no_progress)
    print(f"report: {path}")
    return 0
