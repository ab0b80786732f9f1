"""Options and builders shared by several subcommands (data set, network, device, outputs)."""
from __future__ import annotations

import argparse
import os
from typing import Any

from ..cam import DEFAULT_SCALES, check_scales
from ..data.voc import VOCDataset
from ..errors import InferCamError
from ..models import build_network, list_models


def parse_scales(text: str) -> tuple[float, ...]:
    """'1.0,0.5,1.5,2.0' -> (1.0, 0.5, 1.5, 2.0), with a clear error for bad values."""
    try:
        values = [float(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid scales {text!r}: use comma-separated numbers, e.g. 1.0,0.5,1.5,2.0") from None
    try:
        return check_scales(values)
    except InferCamError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_data_args(parser: argparse.ArgumentParser, labels: bool = True) -> None:
    group = parser.add_argument_group("data")
    group.add_argument("--voc-root", required=True, help="data set folder in PASCAL VOC layout (JPEGImages/, ...)")
    group.add_argument("--list", dest="list_file", default=None,
                       help="file of image names, one per line (psa-style lines accepted); default: all of JPEGImages")
    if labels:
        group.add_argument("--labels", default=None,
                           help="psa-style cls_labels.npy (dict name -> 20-vector); default: <voc-root>/cls_labels.npy, "
                                "else Annotations/<name>.xml, else SegmentationClass/<name>.png")


def add_model_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("network")
    group.add_argument("--network", default="resnet38",
                       help=f"network name (known: {', '.join(list_models())}); default: resnet38")
    group.add_argument("--weights", default=None,
                       help="checkpoint file (state_dict, or a dict holding one under 'state_dict'/'model')")
    group.add_argument("--num-classes", type=int, default=None,
                       help="classes of the network's classifier (default: from the checkpoint, else 20)")
    group.add_argument("--strict", action=argparse.BooleanOptionalAction, default=True,
                       help="refuse a checkpoint with missing, unexpected or mis-shaped keys (default: on)")
    group.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    group.add_argument("--scales", type=parse_scales, default=DEFAULT_SCALES,
                       help="comma-separated input scales (default: 1.0,0.5,1.5,2.0)")
    group.add_argument("--batch-size", type=int, default=8, help="passes per forward batch (default: 8)")


def add_run_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("run")
    group.add_argument("--overwrite", action="store_true", help="recompute images whose outputs exist (default: resume)")
    group.add_argument("--on-error", choices=("skip", "stop"), default="skip",
                       help="on a bad image: record it and go on (skip, default) or stop the run")
    group.add_argument("--workers", type=int, default=2, help="image decoding threads (default: 2)")
    group.add_argument("--no-progress", action="store_true", help="no progress bar")


def open_dataset(args: argparse.Namespace) -> VOCDataset:
    return VOCDataset.open(args.voc_root, args.list_file, getattr(args, "labels", None))


def load_network(args: argparse.Namespace):
    """The network named by --network with --weights loaded; prints what a non-strict load left out."""
    model, report = build_network(args.network, args.weights, args.num_classes, strict=args.strict)
    if not report.ok:
        print(f"warning: checkpoint loaded non-strictly:\n{report.describe()}")
    return model


def run_config(args: argparse.Namespace) -> dict[str, Any]:
    """The options of a run, for its manifest (paths made absolute)."""
    config = {}
    for key, value in sorted(vars(args).items()):
        if key == "func":
            continue
        if isinstance(value, str) and os.path.exists(value):
            value = os.path.abspath(value)
        config[key] = list(value) if isinstance(value, tuple) else value
    return config
