"""``infercam cam``: the baseline multi-scale CAM of every image (step 1 of the method)."""
from __future__ import annotations

import argparse

from ..method.engine import InferCam
from .common import Stages, add_data_args, add_model_args, add_output_args, add_run_args, add_size_args, \
    engine_options, load_network, make_outputs, run_over_dataset, size_limits


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("cam", help="baseline multi-scale CAMs (no refinement)",
                            description="Compute baseline multi-scale, flipped CAMs for every image of a "
                                        "VOC-layout data set and write them in psa or IRN format.")
    add_data_args(parser)
    add_size_args(parser)
    add_model_args(parser)
    add_output_args(parser, splits=False)
    add_run_args(parser)
    parser.set_defaults(func=run, sharded=True)  # torchrun shares its images out among its ranks


def make_compute(args: argparse.Namespace) -> Stages:
    """The baseline CAM of a prepared image; images are prepared in the prefetch threads."""
    engine = InferCam(load_network(args), **engine_options(args))
    return (lambda name, prepared, labels: engine.baseline(prepared, labels)), engine.prepare


def run(args: argparse.Namespace) -> int:
    return run_over_dataset(args, make_outputs(args), make_compute, "cam", size_limits(args))
