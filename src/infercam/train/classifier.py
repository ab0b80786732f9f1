"""Train a multi-label CAM classifier from image-level labels only.

Multilabel soft-margin loss on logits from global average pooling and a bias-free 1x1 classifier, so
the trained network's ``forward_cam`` is the standard CAM. Augmentation: random rescale, crop/pad to
a square, horizontal flip, light colour jitter. Checkpoints carry their config (architecture, classes,
normalisation, metrics); an interrupted run resumes from ``<out>.partial``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from ..classes import NUM_CLASSES
from ..data.images import load_image
from ..data.voc import VOCDataset
from ..errors import ConfigError, InferCamError, LabelError
from ..io import ensure_dir
from ..models import create, normalization
from ..models.registry import cam_networks, network_options, probe_shape
from ..text import counted
from .limits import check_common, check_whole, is_number
from .loop import check_finite, save_checkpoint
from .resume import load_finished, load_partial, partial_path, run_inputs, save_partial


@dataclasses.dataclass
class TrainConfig:
    """Options of one training run (saved in the checkpoint); a value that cannot work is a ConfigError naming its
    field, with the limits train-cls's options have (:mod:`infercam.train.limits`)."""

    arch: str = "small-resnet"
    arch_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    num_classes: int = NUM_CLASSES
    epochs: int = 5
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-4
    crop_size: int = 128
    scale_range: tuple[float, float] = (0.7, 1.1)
    seed: int = 0
    workers: int = 0
    cache_images: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.arch, str):
            raise ConfigError(f"`arch` must be a network name, got {self.arch!r}")
        if not isinstance(self.arch_kwargs, dict):
            raise ConfigError(f"`arch_kwargs` must be a dict of the network's options, got {self.arch_kwargs!r}")
        self.num_classes = check_whole("num_classes", self.num_classes, 1)
        check_common(self)
        scales = self.scale_range
        if not (isinstance(scales, (tuple, list)) and len(scales) == 2 and all(is_number(v) for v in scales)
                and all(math.isfinite(v) and v > 0 for v in scales)):
            raise ConfigError(f"`scale_range` must be a (min, max) pair of finite numbers > 0, got {scales!r}")
        if scales[0] > scales[1]:
            raise ConfigError(f"`scale_range`: min must not exceed max, got {scales[0]:g} and {scales[1]:g}")
        self.scale_range = type(scales)(float(v) for v in scales)
        if not isinstance(self.cache_images, bool):
            raise ConfigError(f"`cache_images` must be True or False, got {self.cache_images!r}")


class ClassificationSet(Dataset):
    """(augmented normalised image, label vector) pairs of a VOC-layout data set."""

    def __init__(self, dataset: VOCDataset, num_classes: int, mean, std, crop_size: int,
                 scale_range: tuple[float, float], augment: bool, seed: int = 0, cache: bool = False) -> None:
        self.dataset, self.names, self.num_classes = dataset, dataset.names, num_classes
        self.cache: dict[int, np.ndarray] | None = {} if cache else None  # decoded images, kept across epochs
        self.mean = np.asarray(mean, np.float32) * 255
        self.std = np.asarray(std, np.float32) * 255
        self.crop_size, self.scale_range, self.augment, self.seed = crop_size, scale_range, augment, seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.names)

    def label_vector(self, name: str) -> np.ndarray:
        vec = np.zeros(self.num_classes, np.float32)
        classes = self.dataset.labels(name)
        if classes and max(classes) >= self.num_classes:
            raise InferCamError(f"image {name}: class {max(classes)} but the network has "
                                f"{counted(self.num_classes, 'class', 'classes')}")
        vec[classes] = 1
        return vec

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        name = self.names[index]
        image = self.cache.get(index) if self.cache is not None else None
        if image is None:
            image = load_image(self.dataset.image_path(name))
            if self.cache is not None:
                self.cache[index] = image
        rng = np.random.default_rng((self.seed, self.epoch, index))
        image = self._augment(image, rng) if self.augment else self._fit(image)
        x = (image.astype(np.float32) - self.mean) / self.std
        return torch.from_numpy(x.transpose(2, 0, 1).copy()), torch.from_numpy(self.label_vector(name))

    def _augment(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        h, w = image.shape[:2]
        scale = rng.uniform(*self.scale_range) * self.crop_size / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        image = np.asarray(Image.fromarray(image).resize(size, resample=Image.BILINEAR), dtype=np.float32)
        if rng.random() < 0.5:
            image = image[:, ::-1]
        image = image * rng.uniform(0.8, 1.2) + rng.uniform(-20, 20)  # contrast and brightness
        return np.clip(crop_or_pad(image, self.crop_size, rng, self.mean), 0, 255)

    def _fit(self, image: np.ndarray) -> np.ndarray:
        """Evaluation view: the image as it is if it is the crop size, else resized to fit and padded."""
        h, w = image.shape[:2]
        if (h, w) != (self.crop_size, self.crop_size):
            scale = self.crop_size / max(h, w)
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            image = np.asarray(Image.fromarray(image).resize(size, resample=Image.BILINEAR))
            image = crop_or_pad(image.astype(np.float32), self.crop_size, np.random.default_rng(0), self.mean)
        return image


def crop_or_pad(image: np.ndarray, size: int, rng: np.random.Generator, fill: np.ndarray) -> np.ndarray:
    """A size x size window at a random position: cropped where the image is larger, padded where smaller."""
    canvas = np.empty((size, size, image.shape[2]), image.dtype)
    canvas[:] = fill

    def offsets(n: int) -> tuple[int, int]:  # (start in the image, start on the canvas)
        off = int(rng.integers(0, abs(n - size) + 1))
        return (off, 0) if n > size else (0, off)

    (sy, dy), (sx, dx) = offsets(image.shape[0]), offsets(image.shape[1])
    ch, cw = min(image.shape[0], size), min(image.shape[1], size)
    canvas[dy:dy + ch, dx:dx + cw] = image[sy:sy + ch, sx:sx + cw]
    return canvas


def average_precision(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Per-class average precision (N x C scores and 0/1 targets); NaN for a class with no positive."""
    aps = np.full(scores.shape[1], np.nan)
    for c in range(scores.shape[1]):
        positives = targets[:, c] > 0
        if not positives.any():
            continue
        order = np.argsort(-scores[:, c], kind="stable")
        hits = positives[order]
        precision_at_hit = np.cumsum(hits)[hits] / (np.flatnonzero(hits) + 1)
        aps[c] = precision_at_hit.mean()
    return aps


def f1_score(scores: np.ndarray, targets: np.ndarray, threshold: float = 0.5) -> float:
    """Micro F1 of sigmoid(scores) >= threshold."""
    pred = 1 / (1 + np.exp(-scores)) >= threshold
    tp = np.sum(pred & (targets > 0))
    return float(2 * tp / max(1, pred.sum() + (targets > 0).sum()))


@torch.no_grad()
def evaluate_classifier(model: torch.nn.Module, loader: DataLoader) -> dict[str, float]:
    """mAP (%) and micro F1 (%) of a classifier on a loader of (image, labels)."""
    model.eval()
    scores, targets = [], []
    for x, y in loader:
        scores.append(model(x).numpy())
        targets.append(y.numpy())
    s, t = np.concatenate(scores), np.concatenate(targets)
    return {"mAP": float(np.nanmean(average_precision(s, t)) * 100), "F1": f1_score(s, t) * 100}


def build_classifier(config: TrainConfig) -> torch.nn.Module:
    """The network ``config.arch`` built with ``config.arch_kwargs``: an InferCamError naming `arch_kwargs` when it
    does not take them (an unknown option, a value its constructor refuses), or when it is no classifier (e.g. a
    segmentation network: its output is not one score per class)."""
    options, given = network_options(config.arch), config.arch_kwargs
    unknown = [] if options is None else sorted(set(given) - set(options))  # None: the network cannot tell
    if unknown:
        accepted = f"it takes {', '.join(options)}" if options else "it takes none"
        raise InferCamError(f"`arch_kwargs`: network {config.arch!r} has no option {', '.join(unknown)} ({accepted})")
    try:
        model = create(config.arch, num_classes=config.num_classes, **given)
    except (TypeError, ValueError) as exc:
        if not given:
            raise
        raise InferCamError(f"`arch_kwargs` {json.dumps(given)}: network {config.arch!r} cannot be built with them: "
                            f"{exc}") from None
    shape = probe_shape(model, model, config.crop_size)  # the size it trains on (an AffinityNet refuses 64 px)
    if shape is not None and shape != (1, config.num_classes):
        raise InferCamError(f"network {config.arch!r} gives scores of shape {list(shape[1:])} per image, not one per "
                            f"class: train-cls trains a classifier, one of {', '.join(cam_networks())}")
    return model


def training_layout(model: torch.nn.Module) -> torch.memory_format:
    """channels_last (about 1.3x faster training steps on a CPU), unless a convolution other than the image's own
    has fewer than 16 input channels: torch 2.14.1's oneDNN backward of such a narrow convolution in channels_last
    (seen with strided 1x1 ones, e.g. widths of 8) crashes the process (double free, segmentation fault)."""
    narrow = any(isinstance(m, torch.nn.Conv2d) and m.in_channels < 16
                 and not (m.in_channels == 3 and m.kernel_size != (1, 1)) for m in model.modules())
    return torch.contiguous_format if narrow else torch.channels_last


def train_classifier(voc_root: str | os.PathLike, train_list: str | os.PathLike, val_list: str | os.PathLike | None,
                     out: str | os.PathLike, config: TrainConfig, labels: str | os.PathLike | None = None,
                     progress: bool = True, overwrite: bool = False) -> dict[str, Any]:
    """Train, evaluate on ``val_list`` each epoch, and write the checkpoint ``out``; returns the last epoch's
    metrics. A checkpoint ``out`` that a finished run with the same options and data wrote is reused, one from
    other options is refused (unless ``overwrite``), so a rerun never trains twice or replaces another model."""
    out = Path(out)
    ensure_dir(out.parent, "checkpoint folder")
    partial = partial_path(out)
    torch.manual_seed(config.seed)  # initial weights and dropout
    train_set = VOCDataset.open(voc_root, train_list, labels)
    train_set.check_label_length(config.num_classes, "the network to train (`num_classes`)")
    # the data counts too: a rerun on other images or labels starts afresh instead of mixing two data sets
    classes = {name: train_set.labels(name) for name in train_set.names}  # any label source
    if not any(classes.values()):
        raise LabelError(f"none of the {len(classes)} training images has a class label (check `labels`): "
                         "nothing to learn")
    table = "\n".join(f"{name} {found}" for name, found in classes.items())
    inputs = run_inputs(config.arch, voc_root, train_set.names, train_set.labels_path,
                        label_content=hashlib.sha256(table.encode("utf-8")).hexdigest())
    options = {**dataclasses.asdict(config), **inputs}
    done = load_finished(out, config.arch, options, overwrite)
    if done is not None:  # the same run finished before: its metrics, not a second training
        print(f"{out} holds a finished run with these options: reused (--overwrite trains again)", file=sys.stderr)
        return (done[1].get("history") or [{}])[-1]
    model = build_classifier(config)
    mean, std = normalization(model)
    cache = config.cache_images and config.workers == 0  # worker processes would each keep a copy
    train_data = ClassificationSet(train_set, config.num_classes, mean, std, config.crop_size,
                                   config.scale_range, augment=True, seed=config.seed, cache=cache)
    steps_per_epoch = len(train_data) // config.batch_size
    if steps_per_epoch == 0:
        raise InferCamError(f"too few training images ({len(train_set)}) for batch size {config.batch_size}")
    val_loader = None
    if val_list is not None:
        val_set = VOCDataset.open(voc_root, val_list, labels)
        val_data = ClassificationSet(val_set, config.num_classes, mean, std, config.crop_size,
                                     config.scale_range, augment=False, cache=cache)
        val_loader = DataLoader(val_data, batch_size=config.batch_size, num_workers=config.workers)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    total_steps = config.epochs * steps_per_epoch
    warmup = min(steps_per_epoch, total_steps // 10 + 1)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup)
                                                 * 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps)))
    start_epoch, history = 0, []
    state = load_partial(partial, options, overwrite)
    if state is not None:
        model.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        torch.set_rng_state(state["rng"])
        start_epoch, history = state["epoch"], state["history"]
        print(f"resuming from epoch {start_epoch} ({partial})", file=sys.stderr)
    meta = {"arch": config.arch, "arch_kwargs": config.arch_kwargs, "num_classes": config.num_classes,
            "mean": list(mean), "std": list(std), "train": dataclasses.asdict(config), "inputs": inputs}
    layout = training_layout(model)
    for epoch in range(start_epoch, config.epochs):
        train_data.epoch = epoch
        loader = DataLoader(train_data, batch_size=config.batch_size, shuffle=True, drop_last=True,
                            num_workers=config.workers, generator=torch.Generator().manual_seed(config.seed + epoch))
        model.train()
        model.to(memory_format=layout)  # weights are unchanged
        t0, losses = time.perf_counter(), []
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{config.epochs}", disable=not progress, file=sys.stderr,
                   dynamic_ncols=True)
        for i, (x, y) in enumerate(bar):
            loss = F.multilabel_soft_margin_loss(model(x.contiguous(memory_format=layout)), y)
            check_finite(loss, epoch * steps_per_epoch + i)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
        record = {"epoch": epoch + 1, "loss": float(np.mean(losses)), "seconds": round(time.perf_counter() - t0, 1)}
        if val_loader is not None:
            record.update(evaluate_classifier(model, val_loader))
        history.append(record)
        print("  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in record.items()),
              file=sys.stderr)
        save_partial(partial, options, {"state_dict": model.state_dict(), "optimizer": optimizer.state_dict(),
                                        "schedule": schedule.state_dict(), "rng": torch.get_rng_state(),
                                        "epoch": epoch + 1, "history": history})
    save_checkpoint(out, model, {**meta, "history": history})
    return history[-1] if history else {}
