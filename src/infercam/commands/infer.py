"""``infercam infer``: the full method (baseline -> split -> class-conditional rounds -> merge)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ..data.images import load_image
from ..engine import InferCam
from ..io import CAM_FORMATS
from ..pipeline import Outputs, RunSummary, run_dataset
from ..split import MODES
from .common import add_data_args, add_model_args, add_run_args, load_network, open_dataset, run_config


def add_output_args(parser: argparse.ArgumentParser, splits: bool = True) -> None:
    group = parser.add_argument_group("outputs")
    group.add_argument("--out-cam", default=None, help="folder for <name>.npy CAM files")
    group.add_argument("--format", choices=CAM_FORMATS, default="psa",
                       help="psa: dict {class: HxW map}; irn: {'keys': classes, 'high_res': KxHxW} (default: psa)")
    group.add_argument("--heatmap", default=None, help="folder for <name>_<class>.png heatmap overlays")
    if splits:
        group.add_argument("--save-splits", default=None, metavar="DIR",
                           help="also write each image's four patches (<name>_1.png .. _4.png) for inspection")


def make_outputs(args: argparse.Namespace) -> Outputs:
    split_dir = getattr(args, "save_splits", None)
    return Outputs(cam_dir=Path(args.out_cam) if args.out_cam else None, fmt=args.format,
                   heatmap_dir=Path(args.heatmap) if args.heatmap else None,
                   split_dir=Path(split_dir) if split_dir else None)


def finish(summary: RunSummary) -> int:
    """Print the one-line summary (and the failures); exit 1 if any image failed or the run was cut short."""
    print(summary.line(), file=sys.stderr)
    for status in summary.failed[:20]:
        print(f"  failed {status.name}: {status.reason}", file=sys.stderr)
    if len(summary.failed) > 20:
        print(f"  ... and {len(summary.failed) - 20} more (see the run manifest)", file=sys.stderr)
    return 1 if summary.failed or summary.interrupted else 0


def add_method_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("method")
    group.add_argument("--mode", choices=MODES, default="default",
                       help="default: the method with the published code's quirks fixed; reference: reproduce "
                            "the authors' code exactly (see README)")
    group.add_argument("--erase-threshold", type=float, default=0.7, help="covered when A >= this (default 0.7)")
    group.add_argument("--stop-fraction", type=float, default=0.02,
                       help="stop when a round covers less than this fraction anew (default 0.02)")
    group.add_argument("--max-rounds", type=int, default=5, help="rounds per patch, round 0 included (default 5)")


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("infer", help="refined CAMs with InferCam (one command, no intermediate files)",
                            description="Run InferCam on every image of a VOC-layout data set: baseline CAM, split "
                                        "into four corner patches, class-conditional erasing rounds, merge.")
    add_data_args(parser)
    add_model_args(parser)
    add_method_args(parser)
    add_output_args(parser)
    parser.add_argument("--split-path", default=None, metavar="DIR",
                        help="use pre-cut patches <name>_1.jpg .. _4.jpg from DIR (the authors' two-step flow) "
                             "instead of computing the split")
    add_run_args(parser)
    parser.set_defaults(func=run)


def build_engine(args: argparse.Namespace) -> InferCam:
    return InferCam(load_network(args), mode=args.mode, scales=args.scales, device=args.device,
                    erase_threshold=args.erase_threshold, stop_fraction=args.stop_fraction,
                    max_rounds=args.max_rounds, batch_size=args.batch_size)


def run(args: argparse.Namespace) -> int:
    dataset = open_dataset(args)
    outputs = make_outputs(args)
    engine = build_engine(args)
    if args.split_path:
        split_dir = Path(args.split_path)

        def compute(name: str, image: np.ndarray, labels: list[int]):
            patches = [load_image(split_dir / f"{name}_{k}.jpg") for k in range(1, 5)]
            return engine.refine_patches(image.shape[:2], patches, labels)
    else:
        def compute(name: str, image: np.ndarray, labels: list[int]):
            return engine(image, labels)

    summary = run_dataset(dataset, compute, outputs, overwrite=args.overwrite, on_error=args.on_error,
                          workers=args.workers, progress=not args.no_progress, manifest=run_config(args),
                          desc=f"infer ({args.mode})")
    return finish(summary)
