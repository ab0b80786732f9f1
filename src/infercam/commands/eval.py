"""``infercam eval``: score CAM files or label PNGs against VOC ground truth (mIoU, per-class IoU)."""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

from ..classes import VOC_CLASSES
from ..data import imagenet_voc
from ..data.voc import SEG_DIR, read_image_list
from ..errors import DataError
from ..evaluation import (
    DEFAULT_THRESHOLDS, EvalResult, evaluate_cams, evaluate_labels, format_threshold, threshold_range,
)
from ..io import check_dir, ensure_dir, write_json
from .common import check_json_target, earlier_records
from .validate import unit_interval

CURVE_POINTS = 20  # entries in the printed mIoU-vs-threshold line
SCORE_KEYS = {"miou", "per_class", "num_images"}  # keys of every --json file eval writes (EvalResult.to_dict)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval", help="score CAMs or label PNGs against VOC ground truth",
        description="Score predictions against <voc-root>/SegmentationClass/<name>.png. CAM files "
        "(<name>.npy, psa or IRN format) are turned into labels by argmax over [t, class maps] for "
        "each background threshold t; label PNGs (<name>.png) are scored as they are.",
    )
    p.add_argument("--pred", required=True, type=Path, help="folder of <name>.npy CAMs or <name>.png labels")
    p.add_argument("--voc-root", required=True, type=Path, help="VOC folder holding SegmentationClass/")
    p.add_argument("--list", required=True, type=Path, help="file of image names, one per line")
    p.add_argument("--format", choices=("auto", "cam", "label"), default="auto",
                   help="prediction kind (default: auto, from the files present)")
    sweep = p.add_mutually_exclusive_group()
    sweep.add_argument("--threshold", type=unit_interval, help="one background threshold in [0, 1], e.g. 0.15")
    sweep.add_argument("--thresholds", metavar="START:STOP:STEP", type=_parse_range,
                       help="threshold sweep, stop included (default 0:0.95:0.01)")
    p.add_argument("--json", type=Path, help="also write the scores to this JSON file")
    p.add_argument("--missing", choices=("error", "skip"), default="error",
                   help="what to do when a prediction or ground truth file is missing (default: error)")
    p.add_argument("--ignore-class", action="append", default=[], metavar="NAME", type=_voc_class,
                   help="score without this VOC class: its ground truth pixels are ignored, a prediction of it "
                        "counts as none (CAMs: its map is dropped), and it is left out of the mean; repeatable")
    p.add_argument("--class-map", choices=imagenet_voc.CLASS_MAPS, default=None,
                   help="score only the classes the class map covers (imagenet-voc: every class but person)")
    p.set_defaults(func=run)


def _voc_class(text: str) -> int:
    if text not in VOC_CLASSES:
        raise argparse.ArgumentTypeError(f"unknown VOC class {text!r}; classes: {', '.join(VOC_CLASSES)}")
    return VOC_CLASSES.index(text)


def ignored_classes(args: argparse.Namespace) -> list[int]:
    """The VOC classes --ignore-class names, and those --class-map does not cover."""
    ignored = set(args.ignore_class)
    if args.class_map is not None:
        ignored |= set(imagenet_voc.uncovered_classes())
    return sorted(ignored)


def _parse_range(text: str) -> np.ndarray:
    try:
        start, stop, step = (float(x) for x in text.split(":"))
        if not all(math.isfinite(v) for v in (start, stop, step)) or start < 0 or stop > 1:
            raise ValueError("START and STOP must lie in [0, 1]")
        return threshold_range(start, stop, step)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected START:STOP:STEP within [0, 1], e.g. 0:0.95:0.01 ({exc})") from None


def _detect_format(pred_dir: Path, names: list[str]) -> str:
    """'cam' or 'label', from which prediction files exist for the listed names."""
    has = {ext: any((pred_dir / f"{n}{ext}").is_file() for n in names) for ext in (".npy", ".png")}
    if has[".npy"] and has[".png"]:
        raise DataError(f"{pred_dir} holds both .npy and .png predictions: choose one with --format")
    if not (has[".npy"] or has[".png"]):
        raise DataError(f"no <name>.npy or <name>.png predictions for the listed images in {pred_dir}")
    return "cam" if has[".npy"] else "label"


def _pct(x: float) -> str:
    return "    -" if math.isnan(x) else f"{x:5.1f}"


def format_report(result: EvalResult) -> str:
    """A readable summary: images, best threshold and mIoU, the threshold curve, foreground coverage, per-class
    scores."""
    lines = [f"images: {result.num_images}" + (f" (skipped {result.num_skipped})" if result.num_skipped else "")]
    if result.best_threshold is not None:
        lines.append(f"best threshold: {format_threshold(result.best_threshold)}")
    lines.append(f"mIoU: {result.miou:.2f}%")
    if len(result.per_threshold) > 1:
        items = list(result.per_threshold.items())
        stride = math.ceil(len(items) / CURVE_POINTS)
        lines.append("mIoU by threshold: " + "  ".join(f"{format_threshold(t)}:{m:.1f}" for t, m in items[::stride]))
    fg = {k: 100 * v for k, v in result.confusion.foreground().items()}
    lines.append(f"foreground (any class vs background): {_pct(fg['share']).strip()}% of the pixels "
                 f"(truth {_pct(fg['truth_share']).strip()}%), recall {_pct(fg['recall']).strip()}, "
                 f"precision {_pct(fg['precision']).strip()}")
    lines.append(f"{'class':<12} {'IoU':>5} {'prec':>5} {'rec':>5}")
    for name, s in result.per_class.items():
        lines.append(f"{name:<12} {_pct(s['iou'])} {_pct(s['precision'])} {_pct(s['recall'])}")
    return "\n".join(lines)


def note_class_map(args: argparse.Namespace) -> None:
    """A note when the run that wrote --pred recorded a class map that eval is not given: the classes the map gives
    no class of the network (ImageNet has no person) have all-zero maps and would be scored as misses; none when
    --ignore-class already leaves those classes out."""
    used = sorted({str(record["config"]["class_map"]) for _, record in earlier_records(args.pred)
                   if record["config"].get("class_map")})
    if used and args.class_map is None and not set(imagenet_voc.uncovered_classes()) <= set(args.ignore_class):
        print(f"infercam eval: note: the maps in {args.pred} were made with --class-map {' and '.join(used)}: add "
              f"--class-map {used[0]} to leave the classes it does not cover out of the scores", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    if args.json is not None:
        check_json_target(args.json, SCORE_KEYS, "infercam eval")
        check_dir(args.json.parent, "JSON output folder")  # before the work, as the target itself
    if not args.pred.is_dir():
        raise DataError(f"prediction folder not found: {args.pred}" if not args.pred.exists()
                        else f"--pred {args.pred} is a file: give the folder of <name>.npy or <name>.png predictions")
    if not (args.voc_root / SEG_DIR).is_dir():  # else every image's ground truth "not found", one by one
        raise DataError(f"data set folder not found: {args.voc_root}" if not args.voc_root.is_dir() else
                        f"no {SEG_DIR}/ folder in {args.voc_root}: eval needs its ground truth <name>.png masks")
    if len(ignored_classes(args)) >= len(VOC_CLASSES):  # VOC_CLASSES: the 20 object classes
        raise DataError("--ignore-class / --class-map leave no class but background to score")
    names = read_image_list(args.list, args.voc_root)
    note_class_map(args)
    kind = _detect_format(args.pred, names) if args.format == "auto" else args.format
    if kind == "cam":
        thresholds = [args.threshold] if args.threshold is not None else args.thresholds
        result = evaluate_cams(args.pred, args.voc_root, names,
                               DEFAULT_THRESHOLDS if thresholds is None else thresholds, args.missing,
                               ignored_classes(args))
    else:
        if args.threshold is not None or args.thresholds is not None:
            print("infercam eval: note: thresholds do not apply to label PNGs; ignored", file=sys.stderr)
        result = evaluate_labels(args.pred, args.voc_root, names, args.missing, ignored_classes(args))
    for note in result.not_found_notes() + result.notes:
        print(f"infercam eval: note: {note}; left out", file=sys.stderr)
    if unnormalised := result.unnormalised_note():
        print(f"infercam eval: note: {unnormalised}", file=sys.stderr)
    print(format_report(result))
    if args.json is not None:
        ensure_dir(args.json.parent, "JSON output folder")
        write_json(args.json, result.to_dict())
    return 0
