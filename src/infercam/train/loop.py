"""Shared parts of the AffinityNet and segmentation training: images with label PNGs and psa's
augmentation, the poly learning-rate loop with a progress bar, and checkpoints that carry their config.

Augmentation as psa's ``train_aff.py``: optional colour jitter, normalisation, a random crop of
``crop_size`` (an image smaller than the crop is placed at a random spot of a zero image, its label
padded with 255) and a random horizontal flip. The learning rate decays as psa's ``PolyOptimizer``:
``lr = base * (1 - step / max_steps) ** 0.9``, set before each step.
"""
from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import ColorJitter
from tqdm import tqdm

from ..classes import IGNORE_INDEX
from ..data.images import load_image
from ..data.voc import VOCDataset, read_label_png
from ..errors import ConfigError, DataError, InferCamError, LabelError
from ..io import ensure_dir
from ..method.engine import resolve_device
from ..text import counted
from .limits import check_common, check_whole
from .resume import load_partial, load_saved_weights, partial_path, save_partial, save_torch

POLY_POWER = 0.9
PSA_JITTER = dict(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.1)  # psa train_aff.py

LabelTransform = Callable[[torch.Tensor], Any]
StepFn = Callable[[nn.Module, Any], tuple[torch.Tensor, dict[str, float]]]


@dataclass
class TrainConfig:
    """Options of a training run (saved in the checkpoint); a value that cannot work is a ConfigError naming its
    field, with the limits the training commands' options have (:mod:`infercam.train.limits`)."""

    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    crop_size: int
    max_steps: int | None = None
    workers: int = 0
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        check_common(self)
        if self.max_steps is not None:
            self.max_steps = check_whole("max_steps", self.max_steps, 1)
        if not isinstance(self.device, str):
            raise ConfigError(f"`device` must be a device name such as 'cpu' or 'cuda:0', got {self.device!r}")
        try:
            resolve_device(self.device)
        except InferCamError as exc:
            raise ConfigError(f"`device`: {exc}") from None


def _span(length: int, size: int) -> tuple[int, int, int]:
    """(source start, target start, extent) of a random crop of ``size`` along an axis of ``length``."""
    slack = int(torch.randint(abs(length - size) + 1, ()))
    return (slack, 0, size) if length >= size else (0, slack, length)


def random_crop(image: torch.Tensor, label: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A random ``size`` x ``size`` window of a (C, H, W) image and its (H, W) label; pads with 0 / 255."""
    (sy, ty, h), (sx, tx, w) = _span(image.shape[1], size), _span(image.shape[2], size)
    out_image = image.new_zeros((image.shape[0], size, size))
    out_label = label.new_full((size, size), IGNORE_INDEX)
    out_image[:, ty:ty + h, tx:tx + w] = image[:, sy:sy + h, sx:sx + w]
    out_label[ty:ty + h, tx:tx + w] = label[sy:sy + h, sx:sx + w]
    return out_image, out_label


def check_label_pngs(label_dir: Path, names: Sequence[str], classes: int) -> None:
    """A DataError when a ``<label_dir>/<name>.png`` is missing; a LabelError naming the first with a value that is
    neither a class (0 to ``classes`` - 1) nor ignored (255), or saying how many were checked when every pixel of
    all is ignored: a value out of range would be trained on as no class (or stop a run midway), and labels of 255
    only train nothing."""
    missing = [n for n in names if not (label_dir / f"{n}.png").is_file()]
    if missing:
        raise DataError(f"{counted(len(missing), 'label PNG')} missing in {label_dir}, e.g. {missing[0]}.png")
    labelled = False
    for name in names:
        path = label_dir / f"{name}.png"
        counts = np.bincount(read_label_png(path).ravel(), minlength=256)
        stray = np.flatnonzero(counts[classes:IGNORE_INDEX])
        if stray.size:
            raise LabelError(f"label PNG {path} holds value {classes + int(stray[0])}: labels of "
                             f"{counted(classes, 'class', 'classes')} are 0-{classes - 1} (0 background, class c "
                             f"as c+1) or {IGNORE_INDEX} (ignored)")
        labelled = labelled or counts[:min(classes, IGNORE_INDEX)].any()
    if not labelled:
        raise LabelError(f"every pixel of the {counted(len(names), 'label PNG')} checked in {label_dir} is "
                         f"{IGNORE_INDEX} (ignored): nothing to train on")


class LabelledImages(Dataset):
    """(normalised image crop (3, S, S), transformed label) samples from a data set and ``<label_dir>/<name>.png``
    (labels 0 to ``classes`` - 1, and 255 ignored; all checked before training, :func:`check_label_pngs`)."""

    def __init__(self, dataset: VOCDataset, label_dir: str | os.PathLike, names: Sequence[str], crop_size: int,
                 mean: Sequence[float], std: Sequence[float], classes: int, jitter: dict[str, float] | None = None,
                 label_transform: LabelTransform | None = None) -> None:
        self.dataset, self.label_dir, self.names = dataset, Path(label_dir), list(names)
        self.crop_size = crop_size
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
        self.jitter = ColorJitter(**jitter) if jitter else None
        self.label_transform = label_transform
        check_label_pngs(self.label_dir, self.names, classes)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Any]:
        name = self.names[index]
        image = torch.from_numpy(load_image(self.dataset.image_path(name))).permute(2, 0, 1)
        label = torch.from_numpy(read_label_png(self.label_dir / f"{name}.png"))
        if label.shape != image.shape[1:]:
            raise DataError(f"label PNG of {name} is {tuple(label.shape)} but the image is {tuple(image.shape[1:])}")
        if self.jitter is not None:
            image = self.jitter(image)
        image = (image.float() / 255 - self.mean) / self.std
        image, label = random_crop(image, label, self.crop_size)
        if torch.rand(()) < 0.5:
            image, label = image.flip(-1), label.flip(-1)
        return image, label if self.label_transform is None else self.label_transform(label)


def make_loader(samples: Dataset, config: TrainConfig) -> DataLoader:
    """Shuffled batches, the last incomplete one dropped (as psa)."""
    if len(samples) < config.batch_size:
        raise InferCamError(f"batch size {config.batch_size} is larger than the {len(samples)} training images")
    return DataLoader(samples, batch_size=config.batch_size, shuffle=True, num_workers=config.workers,
                      drop_last=True)


def _to(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to(b, device) for b in batch)
    return batch.to(device)


def check_finite(loss: torch.Tensor, step: int) -> None:
    """An InferCamError when the loss of ``step`` is NaN or infinite: training diverged, and every later step
    would only spread it through the weights."""
    if not torch.isfinite(loss):
        raise InferCamError(f"training diverged at step {step} (loss {loss.item()}): lower `lr`")


def train_loop(model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer, step_fn: StepFn,
               config: TrainConfig, progress: bool = True, desc: str = "train", partial: Path | None = None,
               overwrite: bool = False, inputs: dict[str, Any] | None = None) -> dict[str, float]:
    """Run ``epochs`` passes (at most ``max_steps`` steps) with poly lr decay; the last step's losses.

    With ``partial`` (``<out>.partial``) the state is saved there after every epoch, and a run of the same
    network, config and ``inputs`` (:func:`~infercam.train.resume.run_inputs`) resumes from it (unless
    ``overwrite``) to the weights an uninterrupted run reaches.
    """
    total = config.epochs * len(loader)
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    if total < 1:
        raise InferCamError("nothing to train: no step (check `epochs`, `max_steps` and `batch_size`)")
    device = torch.device(config.device)
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    model.to(device).train()
    options = {"network": type(model).__name__, **asdict(config), **(inputs or {})}
    if partial is not None:  # made now, not after the first epoch's work
        ensure_dir(Path(partial).parent, "checkpoint folder")
    step, last = 0, {}
    state = None if partial is None else load_partial(partial, options, overwrite)
    if state is not None:
        load_saved_weights(model, state["state_dict"], partial)
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
        step, last = state["step"], state["last"]
        print(f"resuming from step {step} of {total} ({partial})", file=sys.stderr)
    bar = tqdm(total=total, initial=step, desc=desc, unit="step", disable=not progress, dynamic_ncols=True,
               file=sys.stderr)
    try:
        while step < total:
            for batch in loader:
                if step == total:
                    break
                for group, base in zip(optimizer.param_groups, base_lrs):
                    group["lr"] = base * (1 - step / total) ** POLY_POWER
                loss, last = step_fn(model, _to(batch, device))
                check_finite(loss, step)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                step += 1
                bar.update(1)
                bar.set_postfix({k: f"{v:.4f}" for k, v in last.items()})
            if partial is not None and step < total:  # an epoch ended
                save_partial(partial, options, {"state_dict": model.state_dict(), "optimizer": optimizer.state_dict(),
                                                "rng": torch.get_rng_state(), "step": step, "last": last})
    finally:
        bar.close()
    return last


def save_checkpoint(path: str | os.PathLike, model: nn.Module, config: dict[str, Any]) -> None:
    """Write ``{"state_dict": ..., "config": config}`` atomically (see ``models.read_checkpoint``), then
    remove the run's ``<path>.partial``; weights that are not finite are refused, nothing written."""
    ensure_dir(Path(path).parent, "checkpoint folder")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    bad = next((k for k, v in model.named_parameters() if not torch.isfinite(v).all()), None)  # not buffers (masks)
    if bad is not None:  # the last step diverged, after the last loss was checked
        raise InferCamError(f"training diverged: the trained weights hold NaN or infinite values ({bad}), "
                            f"{path} not written: lower `lr`")
    save_torch(path, {"state_dict": state, "config": config})
    partial_path(path).unlink(missing_ok=True)
