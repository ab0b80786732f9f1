"""``infercam split``: the authors' first step, writing each image's four corner patches to files."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..method.engine import InferCam
from ..method.modes import MODES
from ..run.outputs import Outputs
from .common import Stages, add_data_args, add_model_args, add_run_args, add_size_args, engine_options, \
    load_network, run_over_dataset, size_limits


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "split", help="write the four patches of every image as --mode cuts them (the authors' two-step flow: "
                      "--mode fixed or reference)",
        description="Compute the baseline CAM, its centres of mass and the four patches of every image as --mode "
                    "cuts them: the overlapping corner patches with --mode fixed or reference (the authors' flow); "
                    "the default and evidence modes do not cut, so each of their four patches is the whole image. "
                    "Write them as <name>_1.jpg (top-left), _2 (top-right), _3 (bottom-left), _4 (bottom-right) "
                    "plus <name>.json with the boxes. Feed the folder to 'infercam infer --split-path' (the same "
                    "--mode).")
    add_data_args(parser)
    add_size_args(parser)
    add_model_args(parser)
    parser.add_argument("--mode", choices=MODES, default="default",
                        help="how the patches are cut, as the mode's InferCam run cuts them: fixed: the published "
                             "corner patches, starts clamped at 0; reference: the authors' wrap-around slicing; "
                             "default, evidence: no cut (each of the four patches is the whole image)")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for the patches and box files")
    add_run_args(parser)
    parser.set_defaults(func=run, sharded=True)  # torchrun shares its images out among its ranks


def make_compute(args: argparse.Namespace) -> Stages:
    """The split of a prepared image; images are prepared in the prefetch threads."""
    engine = InferCam(load_network(args), mode=args.mode, **engine_options(args))
    return (lambda name, prepared, labels: engine.split(prepared, labels)), engine.prepare


def run(args: argparse.Namespace) -> int:
    return run_over_dataset(args, Outputs(split_dir=Path(args.out)), make_compute, "split", size_limits(args))
