"""Options and helpers shared by ``train-aff`` and ``train-seg`` (and --out, --crop-size's limit and the checkpoint
lock, by ``train-cls`` too)."""
from __future__ import annotations

import argparse
import functools
import sys
from dataclasses import asdict
from typing import Any, Callable

import torch
from torch import nn

from ..data.voc import VOCDataset
from ..errors import InferCamError
from ..models import create, load_state_dict, read_checkpoint
from ..models.registry import network_kind
from ..models.segnets import BACKBONE_CLASSIFIERS
from ..train.limits import MAX_CROP_SIZE, MAX_SEED
from ..train.loop import TrainConfig
from ..train.resume import checkpoint_lock, load_finished, load_saved_weights, run_inputs
from .common import refuse_inputs_as_outputs
from .validate import existing_device, file_to_write, int_at_least, number_at_least, positive_int, positive_number, seed

crop_size = int_at_least(1, MAX_CROP_SIZE)
CROP_LIMIT = f"at most {MAX_CROP_SIZE}: a crop beyond the image is padding, and memory grows with its square"


def add_checkpoint_arg(parser: argparse.ArgumentParser) -> None:
    """``--out``: the checkpoint file a training command writes (not blank, not a folder)."""
    parser.add_argument("--out", required=True, type=file_to_write, help="checkpoint file to write")


def add_train_args(parser: argparse.ArgumentParser, defaults: TrainConfig, network: str, source: str,
                   known: str) -> None:
    """Network, initial weights and optimisation options; ``defaults``, ``source`` and ``known`` (the networks the
    command trains) feed the help."""
    group = parser.add_argument_group("network")
    group.add_argument("--network", default=network, help=f"network to train (known: {known}, or a plug-in "
                                                          f"'package.module:Factory'; default: {network})")
    group.add_argument("--init-weights", default=None, metavar="FILE",
                       help="initialise from this checkpoint where keys and shapes fit (e.g. a classifier's "
                            "backbone); the rest keeps its fresh initialisation")
    group = parser.add_argument_group(f"training (defaults: {source})")
    group.add_argument("--epochs", type=positive_int, default=defaults.epochs,
                       help=f"passes over the data (default: {defaults.epochs})")
    group.add_argument("--max-steps", type=positive_int, default=None, help="stop after this many steps (default: all epochs)")
    group.add_argument("--batch-size", type=positive_int, default=defaults.batch_size, help=f"default: {defaults.batch_size}")
    group.add_argument("--lr", type=positive_number, default=defaults.lr,
                       help=f"base learning rate, poly decay (default: {defaults.lr})")
    group.add_argument("--weight-decay", type=number_at_least(0.0), default=defaults.weight_decay,
                       help=f"default: {defaults.weight_decay}")
    group.add_argument("--crop-size", type=crop_size, default=defaults.crop_size,
                       help=f"square random crop in pixels (default: {defaults.crop_size}; {CROP_LIMIT})")
    group.add_argument("--workers", type=int_at_least(0), default=0, help="data loading processes (default: 0, in-process)")
    group.add_argument("--seed", type=seed, default=0, help=f"random seed, 0 to {MAX_SEED} (default: 0)")
    group.add_argument("--device", type=existing_device, default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    group.add_argument("--overwrite", action="store_true",
                       help="train afresh even if <out>.partial (left by an interrupted run) or <out> (a "
                            "finished run with the same options, otherwise reused) exists")
    group.add_argument("--no-progress", action="store_true", help="no progress bar")


KINDS = {"classifier": "a CAM classifier", "affinity": "an AffinityNet", "segmentation": "a segmentation network"}


def check_network_kind(name: str, kind: str, command: str, known: str) -> None:
    """Refuse, before anything is built or read, a registered network of another kind than ``command`` trains
    (``train-seg --network demo``, a classifier, would fail only at its first step, and an AffinityNet there with a
    message about its radius); a plug-in is checked when it runs."""
    found = network_kind(name)
    if found is not None and found != kind:
        raise InferCamError(f"network {name!r} is {KINDS[found]}: {command} needs {KINDS[kind]} ({known})")


def train_config(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
                       crop_size=args.crop_size, max_steps=args.max_steps, workers=args.workers, seed=args.seed,
                       device=args.device)


def backbone_options(network: str, init_config: dict[str, Any]) -> dict[str, Any]:
    """The options a network built on a classifier's backbone (small-resnet-seg) takes from the checkpoint config
    of its --init-weights classifier (train-cls --arch-kwargs: its widths, depths, dilations); {} otherwise."""
    kwargs = init_config.get("arch_kwargs")
    if BACKBONE_CLASSIFIERS.get(network) == init_config.get("arch") and isinstance(kwargs, dict):
        return dict(kwargs)
    return {}


def initial_network(args: argparse.Namespace, num_classes: int) -> tuple[nn.Module, dict[str, Any]]:
    """The network of --network, initialised from --seed, with --init-weights loaded where they fit (a summary
    is printed), and the options it was built with (:func:`backbone_options`), for its checkpoint."""
    torch.manual_seed(args.seed)
    state, config = read_checkpoint(args.init_weights) if args.init_weights is not None else ({}, {})
    options = backbone_options(args.network, config)
    model = create(args.network, num_classes=num_classes, **options)
    if args.init_weights is not None:
        report = load_state_dict(model, state, strict=False, source=args.init_weights)
        loaded = len(state) - len(report.unexpected) - len(report.mismatched)
        print(f"init: {loaded} tensors from {args.init_weights}; {len(report.missing)} network tensors new, "
              f"{len(report.unexpected)} checkpoint tensors unused, {len(report.mismatched)} of another shape")
    return model, options


def training_inputs(args: argparse.Namespace, dataset: VOCDataset, labels: str, **more: Any) -> dict[str, Any]:
    """What this run learns from (:func:`~infercam.train.resume.run_inputs`): its network, data, labels and
    initial weights, so that a rerun on other ones neither resumes nor reuses this one's work."""
    return run_inputs(args.network, dataset.root, dataset.names, labels, args.init_weights, **more)


def reuse_finished(args: argparse.Namespace, model: nn.Module, inputs: dict[str, Any]) -> bool:
    """Load into ``model`` the weights of a finished run with these options and ``inputs`` that --out holds;
    False when there is none (or --overwrite) and the network must be trained."""
    done = load_finished(args.out, args.network, {**asdict(train_config(args)), **inputs}, args.overwrite)
    if done is None:
        return False
    load_saved_weights(model, done[0], args.out)
    model.eval()
    print(f"{args.out} holds a finished run with these options: reused (--overwrite trains again)", file=sys.stderr)
    return True


def one_run_per_checkpoint(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """``run`` holding ``<args.out>.lock`` (:func:`checkpoint_lock`) from its reuse check to the save, once its
    outputs were found not to be any of its inputs."""
    @functools.wraps(run)
    def locked(args: argparse.Namespace) -> int:
        refuse_inputs_as_outputs(args)
        with checkpoint_lock(args.out):
            return run(args)
    return locked
