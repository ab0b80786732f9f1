"""Train a segmentation network on pseudo label PNGs (255 ignored) and write its predictions as
label PNGs that ``infercam eval`` scores.

The defaults (:data:`SEG_TRAIN`: SGD with momentum 0.9, lr 0.01, weight decay 1e-4, poly decay,
320 px crops) are common DeepLab settings, not psa's: psa trains its segmentation network elsewhere.
"""
from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..classes import IGNORE_INDEX
from ..data.voc import VOCDataset
from ..errors import DataError, InferCamError
from ..models.registry import normalization
from ..run.dataset import run_dataset
from ..run.manifest import RunSummary
from ..run.outputs import LabelOutputs
from ..text import counted
from .loop import LabelledImages, TrainConfig, make_loader, save_checkpoint, train_loop
from .resume import partial_path

SEG_TRAIN = TrainConfig(epochs=20, batch_size=8, lr=0.01, weight_decay=1e-4, crop_size=320)
MOMENTUM = 0.9


def segmentation_loss(logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over the labelled pixels (255 ignored); 0 for a batch with none."""
    target = label.long()
    stray = target[(target != IGNORE_INDEX) & ((target < 0) | (target >= logits.shape[1]))]
    if stray.numel():
        raise DataError(f"a label PNG holds class {int(stray[0])}, but the network has "
                        f"{counted(logits.shape[1], 'class', 'classes')} (0-{logits.shape[1] - 1}, {IGNORE_INDEX} "
                        "ignored): check `num_classes` and the labels")
    total = F.cross_entropy(logits, target, ignore_index=IGNORE_INDEX, reduction="sum")
    return total / (target != IGNORE_INDEX).sum().clamp(min=1)


def _step(model: nn.Module, batch) -> tuple[torch.Tensor, dict[str, float]]:
    images, labels = batch
    try:
        logits = model(images)
    except ValueError as exc:  # BatchNorm after a pooled 1 x 1 map (DeepLabV3's ASPP) needs two samples
        if "Expected more than 1 value per channel" in str(exc):
            raise InferCamError("this network's batch norm needs at least 2 images per batch: use a `batch_size` "
                                "of 2 or more") from None
        raise
    if logits.ndim != 4:
        raise InferCamError(f"the network gives {tuple(logits.shape)} scores per batch, not a map per pixel: "
                            "train-seg needs a segmentation network (e.g. deeplabv3-resnet50, demo-seg)")
    loss = segmentation_loss(logits, labels)
    return loss, {"loss": loss.item()}


def train_segmentation(model: nn.Module, arch: str, num_classes: int, dataset: VOCDataset,
                       label_dir: str | os.PathLike, out: str | os.PathLike, config: TrainConfig = SEG_TRAIN,
                       names: Sequence[str] | None = None, progress: bool = True,
                       overwrite: bool = False, inputs: dict[str, Any] | None = None,
                       arch_kwargs: dict[str, Any] | None = None) -> dict[str, float]:
    """Train on ``<label_dir>/<name>.png`` and save the checkpoint with its config to ``out`` (``arch_kwargs``:
    the options ``model`` was built with, recorded so that ``build_network(arch, out)`` builds it again); returns
    the last step's loss. An interrupted run resumes from ``<out>.partial`` unless ``overwrite``."""
    torch.manual_seed(config.seed)
    samples = LabelledImages(dataset, label_dir, dataset.names if names is None else names, config.crop_size,
                             *normalization(model), num_classes)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=MOMENTUM,
                                weight_decay=config.weight_decay)
    last = train_loop(model, make_loader(samples, config), optimizer, _step, config, progress, desc="train-seg",
                      partial=partial_path(out), overwrite=overwrite, inputs=inputs)
    save_checkpoint(out, model.eval(), {"arch": arch, "num_classes": num_classes, "task": "segmentation",
                                        **({"arch_kwargs": arch_kwargs} if arch_kwargs else {}),
                                        "train": asdict(config), "inputs": inputs or {}, "loss": last})
    return last


def predict(model: nn.Module, image: np.ndarray, device: str | torch.device = "cpu") -> np.ndarray:
    """The label map (uint8) of an RGB image: argmax of the logits, single scale; ``model`` in eval mode."""
    mean, std = (torch.tensor(v, dtype=torch.float32).view(3, 1, 1) for v in normalization(model))
    x = (torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255 - mean) / std
    with torch.no_grad():
        logits = model(x[None].to(device))
    return logits[0].argmax(0).to(torch.uint8).cpu().numpy()


def predict_dataset(model: nn.Module, dataset: VOCDataset, out_dir: str | os.PathLike,
                    names: Sequence[str] | None = None, device: str | torch.device = "cpu", progress: bool = True,
                    overwrite: bool = False, manifest: dict[str, Any] | None = None, since: float | None = None,
                    workers: int = 2, peers: Sequence[str] = ()) -> RunSummary:
    """Write ``<out_dir>/<name>.png`` predictions (images need no class labels) as a resumable run
    (:func:`~infercam.run.dataset.run_dataset`: a PNG already there whole is kept unless ``overwrite`` or older
    than ``since``; an unreadable image is recorded as failed and the run goes on; ``manifest`` is the run's
    record in the folder; ``peers``: the names of other locks on the folder that this run holds)."""
    model.to(device).eval()
    return run_dataset(dataset, lambda name, image, labels: predict(model, image, device),
                       LabelOutputs(Path(out_dir), needs_labels=False), names=names, overwrite=overwrite,
                       workers=workers, progress=progress, manifest=manifest, since=since, desc="predict",
                       peers=peers)
