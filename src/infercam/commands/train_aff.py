"""``infercam train-aff``: train AffinityNet on psa's confident labels."""
from __future__ import annotations

import argparse

from ..models.affinity import AFFINITY_ALIASES, affinity_network_name
from ..models.registry import networks_of_kind
from ..train.affinity import PSA_AFF_TRAIN, train_affinity
from .common import add_data_args, open_dataset
from .train_common import (add_checkpoint_arg, add_train_args, check_network_kind, initial_network,
                           one_run_per_checkpoint, reuse_finished, train_config, training_inputs)


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "train-aff", help="train AffinityNet on confident CRF labels (psa)",
        description="Train AffinityNet (psa, CVPR 2018) on the confident labels written by `infercam pseudo "
                    "--method crf --affinity-labels` (0 background, c+1 class c, 255 unsure). Pairs of stride-8 "
                    "cells within the network's radius (5) are labelled same-background, same-foreground or "
                    "different, and psa's balanced loss bg/4 + fg/4 + neg/2 is minimised with SGD at psa's lr "
                    "multipliers (x1, x2, x10, x20 for pretrained weights, biases, new weights, biases). The "
                    "checkpoint carries its config, so `infercam pseudo --method rw --aff-weights` loads it.")
    add_data_args(parser, labels=False)
    parser.add_argument("--aff-labels", required=True, help="folder of <name>.png confident labels")
    add_checkpoint_arg(parser)
    add_train_args(parser, PSA_AFF_TRAIN, "resnet38-aff", "psa's train_aff.py", known_networks())
    parser.set_defaults(func=run)


def known_networks() -> str:
    """The AffinityNets train-aff trains, the short names first: 'demo (= demo-aff), ...'."""
    return ", ".join([f"{short} (= {name})" for short, name in AFFINITY_ALIASES.items()] + networks_of_kind("affinity"))


@one_run_per_checkpoint
def run(args: argparse.Namespace) -> int:
    dataset = open_dataset(args)
    args.network = affinity_network_name(args.network)
    check_network_kind(args.network, "affinity", "train-aff", known_networks())
    model, _ = initial_network(args, num_classes=0)
    inputs = training_inputs(args, dataset, args.aff_labels)
    if not reuse_finished(args, model, inputs):
        last = train_affinity(model, args.network, dataset, args.aff_labels, args.out, train_config(args),
                              progress=not args.no_progress, overwrite=args.overwrite, inputs=inputs)
        print(f"saved {args.out}: " + ", ".join(f"{k} {v:.4f}" for k, v in last.items()))
    return 0
