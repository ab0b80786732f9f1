"""``infercam infer``: the full method (baseline -> split -> class-conditional rounds -> merge)."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from ..data.images import load_image
from ..errors import InferCamError
from ..method.engine import InferCam
from ..method.modes import MODES, recipe
from .common import Stages, add_data_args, add_model_args, add_output_args, add_run_args, add_size_args, \
    earlier_records, engine_options, load_network, make_outputs, run_over_dataset, size_limits
from .validate import number_above, positive_int, unit_interval


def add_method_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("method")
    group.add_argument("--mode", choices=MODES, default="default",
                       help="default: erasing rounds on the whole image that count only near what is already "
                            "covered (no spill, no seams); evidence: default, and a class stops counting once the "
                            "erased image's peak response to it is below half of round 0's (for real photos); "
                            "fixed: the published method with its code's quirks fixed; "
                            "reference: the authors' code exactly (see README)")
    group.add_argument("--erase-threshold", type=number_above(0.0, 1.0), default=0.7,
                       help="covered when A >= this, in (0, 1] (default 0.7; at 0 every pixel would be)")
    group.add_argument("--stop-fraction", type=unit_interval, default=None,
                       help="stop when a round covers less than this fraction anew (default: the mode's: 0 for "
                            "default and evidence, every round runs; 0.02 for fixed and reference)")
    group.add_argument("--max-rounds", type=positive_int, default=5,
                       help="rounds per patch, round 0 included (default 5)")


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("infer", help="refined CAMs with InferCam (one command, no intermediate files)",
                            description="Run InferCam on every image of a VOC-layout data set: baseline CAM, split "
                                        "(fixed and reference: four corner patches; default and evidence: the "
                                        "whole image), class-conditional erasing rounds, merge.")
    add_data_args(parser)
    add_size_args(parser)
    add_model_args(parser)
    add_method_args(parser)
    add_output_args(parser)
    parser.add_argument("--split-path", default=None, metavar="DIR",
                        help="use pre-cut patches <name>_1.jpg .. _4.jpg from DIR (the authors' two-step flow) "
                             "instead of computing the split")
    add_run_args(parser)
    parser.set_defaults(func=run, sharded=True)  # torchrun shares its images out among its ranks


def make_compute(args: argparse.Namespace) -> Stages:
    """The per-image computation: the one-command method (images prepared in the prefetch threads), or
    refinement of pre-cut patches."""
    engine = InferCam(load_network(args), mode=args.mode, erase_threshold=args.erase_threshold,
                      stop_fraction=args.stop_fraction, max_rounds=args.max_rounds, **engine_options(args))
    if not args.split_path:
        return (lambda name, prepared, labels: engine(prepared, labels)), engine.prepare
    split_dir = Path(args.split_path)
    check_split_mode(split_dir, args.mode)

    def from_patches(name: str, image: np.ndarray, labels: list[int]):
        patches = [load_image(split_dir / f"{name}_{k}.jpg") for k in range(1, 5)]
        return engine.refine_patches(image.shape[:2], patches, labels)

    return from_patches, None


def check_split_mode(split_dir: Path, mode: str) -> None:
    """An error when the run that cut ``split_dir``'s patches (split, or infer --save-splits) recorded a mode that
    cuts otherwise: fixed and reference cut an image differently, default and evidence not at all, so such patches
    are not the ones this mode refines. A folder without such a record (the authors' own split) is taken as it is."""
    here = os.path.realpath(split_dir)  # as run records write output folders
    configs = [record["config"] for _, record in earlier_records(split_dir)]
    cut = sorted({str(config.get("mode")) for config in configs
                  if config.get("command") == "split" or config.get("save_splits") == here})
    same_cut = {m for m in MODES if recipe(m).boxes == recipe(mode).boxes}  # default and evidence: the whole image
    if cut and not same_cut.intersection(cut):
        raise InferCamError(f"the patches in {split_dir} were cut with `mode` {' and '.join(cut)}, not {mode}: "
                            "refine them with the `mode` that cut them (or split again)")


def run(args: argparse.Namespace) -> int:
    # the mode's own --stop-fraction given is the run that leaves it out (check_same_run)
    args.unset_defaults = {"stop_fraction": recipe(args.mode).stop_fraction}
    return run_over_dataset(args, make_outputs(args), make_compute, f"infer ({args.mode})", size_limits(args))
