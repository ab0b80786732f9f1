"""``infercam cam``: the baseline multi-scale CAM of every image (step 1 of the method)."""
from __future__ import annotations

import argparse

from ..engine import InferCam
from ..pipeline import Outputs, run_dataset
from .common import add_data_args, add_model_args, add_run_args, load_network, open_dataset, run_config
from .infer import add_output_args, finish, make_outputs


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("cam", help="baseline multi-scale CAMs (no refinement)",
                            description="Compute baseline multi-scale, flipped CAMs for every image of a "
                                        "VOC-layout data set and write them in psa or IRN format.")
    add_data_args(parser)
    add_model_args(parser)
    add_output_args(parser, splits=False)
    add_run_args(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    dataset = open_dataset(args)
    outputs: Outputs = make_outputs(args)
    engine = InferCam(load_network(args), scales=args.scales, device=args.device, batch_size=args.batch_size)
    summary = run_dataset(dataset, lambda name, image, labels: engine.baseline(image, labels), outputs,
                          overwrite=args.overwrite, on_error=args.on_error, workers=args.workers,
                          progress=not args.no_progress, manifest=run_config(args), desc="cam")
    return finish(summary)
