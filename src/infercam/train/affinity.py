"""Train AffinityNet on psa's confident labels (``infercam pseudo --method crf --affinity-labels``).

Each augmented crop's label is reduced to the stride-8 grid, the pairs within the network's radius
are labelled background-positive, foreground-positive or negative (psa's
``ExtractAffinityLabelInRadius``, see :func:`infercam.models.pixel_pairs.affinity_labels`), and psa's
balanced loss is minimised with psa's optimiser settings (:data:`PSA_AFF_TRAIN`, ``train_aff.py``).

Two differences from psa, both forced by storing one label PNG: psa average-pools its low- and
high-alpha CRF scores by 8 and combines them afterwards, while here the combined label is pooled by
a majority vote of each 8 x 8 block (:func:`downsample_label`). And psa's ``PolyOptimizer`` hands its
weight decay to SGD's momentum argument (momentum 5e-4, i.e. practically none); here SGD has none.
"""
from __future__ import annotations

import functools
import math
import os
from dataclasses import asdict
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ..classes import IGNORE_INDEX
from ..data.voc import VOCDataset
from ..models.affinity import check_affinity_net
from ..errors import ConfigError, InferCamError
from ..models.pixel_pairs import affinity_labels, pair_indices
from ..models.registry import normalization
from .loop import PSA_JITTER, LabelledImages, TrainConfig, make_loader, save_checkpoint, train_loop
from .resume import partial_path

STRIDE = 8
PSA_AFF_TRAIN = TrainConfig(epochs=8, batch_size=8, lr=0.1, weight_decay=5e-4, crop_size=448)
# The confident labels' values: 0 background, c+1 class c, for any number of classes up to 254 (affinity only
# compares labels); 255 uncertain.
CONFIDENT_CLASSES = IGNORE_INDEX
LR_MULTIPLIERS = (1, 2, 10, 20)  # psa: pretrained weights, pretrained biases, new weights, new biases


def downsample_label(label: np.ndarray, stride: int = STRIDE) -> np.ndarray:
    """The most frequent value of each ``stride`` x ``stride`` block (ties to the lower value; borders
    padded with 255): an (ceil(H/s), ceil(W/s)) uint8 map."""
    h, w = label.shape
    gh, gw = math.ceil(h / stride), math.ceil(w / stride)
    padded = np.full((gh * stride, gw * stride), IGNORE_INDEX, np.int64)
    padded[:h, :w] = label
    blocks = padded.reshape(gh, stride, gw, stride).transpose(0, 2, 1, 3).reshape(gh * gw, stride * stride)
    codes = np.arange(gh * gw)[:, None] * 256 + blocks
    counts = np.bincount(codes.reshape(-1), minlength=gh * gw * 256).reshape(gh * gw, 256)
    return counts.argmax(1).astype(np.uint8).reshape(gh, gw)


def check_crop_size(crop_size: int, radius: int) -> None:
    """A ConfigError naming `crop_size` when a square crop of that side gives a feature grid (ceil(side / 8) cells)
    on which no pair fits the radius: said before any label is read, not at the first step as the grid's size."""
    cells = math.ceil(crop_size / STRIDE)
    try:
        pair_indices(cells, cells, radius)
    except InferCamError:
        least = STRIDE * (2 * radius - 2) + 1  # the smallest side whose grid has the 2 * radius - 1 columns pairs need
        raise ConfigError(f"`crop_size` {crop_size} gives a {cells}x{cells} feature grid at stride {STRIDE}, too small "
                          f"for affinity radius {radius}: use a `crop_size` of at least {least}") from None


def affinity_targets(label: torch.Tensor, radius: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(bg_pos, fg_pos, neg) pair labels (D, F) of a full-resolution confident label crop."""
    return tuple(torch.from_numpy(a) for a in affinity_labels(downsample_label(label.numpy()), radius))


def affinity_loss(aff: torch.Tensor, bg_pos: torch.Tensor, fg_pos: torch.Tensor,
                  neg: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """psa's loss: each of the three pair kinds' mean cross-entropy, combined as bg/4 + fg/4 + neg/2."""
    def mean(weights: torch.Tensor, log_p: torch.Tensor) -> torch.Tensor:
        return (weights * -log_p).sum() / (weights.sum() + 1e-5)  # not -(...): no pair gives 0, not -0

    bg = mean(bg_pos, torch.log(aff + 1e-5))
    fg = mean(fg_pos, torch.log(aff + 1e-5))
    ng = mean(neg, torch.log(1 + 1e-5 - aff))
    loss = bg / 4 + fg / 4 + ng / 2
    return loss, {"loss": loss.item(), "bg": bg.item(), "fg": fg.item(), "neg": ng.item()}


def _step(model: nn.Module, batch) -> tuple[torch.Tensor, dict[str, float]]:
    images, (bg_pos, fg_pos, neg) = batch
    return affinity_loss(model(images), bg_pos, fg_pos, neg)


def affinity_optimizer(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.SGD:
    """SGD over the network's four parameter groups at psa's lr multipliers, no decay on biases."""
    groups = [{"params": params, "lr": lr * mult, "weight_decay": weight_decay if k % 2 == 0 else 0.0}
              for k, (params, mult) in enumerate(zip(model.parameter_groups(), LR_MULTIPLIERS)) if params]
    return torch.optim.SGD(groups, lr=lr)


def train_affinity(model: nn.Module, arch: str, dataset: VOCDataset, label_dir: str | os.PathLike,
                   out: str | os.PathLike, config: TrainConfig = PSA_AFF_TRAIN, names: Sequence[str] | None = None,
                   progress: bool = True, overwrite: bool = False,
                   inputs: dict[str, Any] | None = None) -> dict[str, float]:
    """Train an AffinityNet (``arch`` is its registered name) on ``<label_dir>/<name>.png`` and save the
    checkpoint with its config to ``out``; returns the last step's losses. An interrupted run resumes from
    ``<out>.partial`` unless ``overwrite``."""
    check_affinity_net(model, arch)
    check_crop_size(config.crop_size, model.radius)
    torch.manual_seed(config.seed)
    samples = LabelledImages(dataset, label_dir, dataset.names if names is None else names, config.crop_size,
                             *normalization(model), CONFIDENT_CLASSES, jitter=PSA_JITTER,
                             label_transform=functools.partial(affinity_targets, radius=model.radius))
    optimizer = affinity_optimizer(model, config.lr, config.weight_decay)
    last = train_loop(model, make_loader(samples, config), optimizer, _step, config, progress, desc="train-aff",
                      partial=partial_path(out), overwrite=overwrite, inputs=inputs)
    save_checkpoint(out, model.eval(), {"arch": arch, "num_classes": 0, "arch_kwargs": {"radius": model.radius},
                                        "task": "affinity", "train": asdict(config), "inputs": inputs or {},
                                        "loss": last})
    return last
