"""The values training options may take: one home for the limits that the configs check when they are made
(:class:`~infercam.train.loop.TrainConfig`, :class:`~infercam.train.classifier.TrainConfig`) and that the training
commands' argparse types check on the command line. No torch here: the command line's types import it.

Each check raises a :class:`~infercam.errors.ConfigError` naming the option as the Python API spells it (a config
field, in backticks, which the command line turns into its option's spelling).
"""
from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from ..errors import ConfigError

# The largest crop: a crop larger than the image is padding (PASCAL VOC's images are at most 500 px), and the memory
# a batch needs grows with the crop's square (a float image of 2048 px is 50 MB before the network's activations;
# one of 100000 px, 120 GB).
MAX_CROP_SIZE = 2048
# The largest seed: numpy's legacy seeding and most tools take 32 bits (torch's generators take 64).
MAX_SEED = 2**32 - 1


def is_whole(value: Any) -> bool:
    """An integer (numpy's too), not a bool (True is no epoch count)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def is_number(value: Any) -> bool:
    """A real number (numpy's too), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def check_whole(name: str, value: Any, low: int, high: int | None = None) -> int:
    """``value`` as a Python int (a numpy integer would not load from a checkpoint read with weights_only); a
    ConfigError unless it is an integer (not a bool) from ``low`` to ``high`` (no upper limit: None)."""
    if not (is_whole(value) and low <= value and (high is None or value <= high)):
        bounds = f">= {low}" if high is None else f"from {low} to {high}"
        raise ConfigError(f"`{name}` must be a whole number {bounds}, got {value!r}")
    return int(value)


def check_number(name: str, value: Any, low: float, low_allowed: bool) -> float:
    """``value`` as a Python float; a ConfigError unless it is a finite number above ``low`` (or equal to it, if
    ``low_allowed``)."""
    if not (is_number(value) and math.isfinite(value) and (low <= value if low_allowed else low < value)):
        raise ConfigError(f"`{name}` must be a finite number {'>=' if low_allowed else '>'} {low:g}, got {value!r}")
    return float(value)


def check_common(config: Any) -> None:
    """Check the options every training config has (epochs, batch_size, lr, weight_decay, crop_size, workers,
    seed) and store them as plain Python numbers."""
    config.epochs = check_whole("epochs", config.epochs, 1)
    config.batch_size = check_whole("batch_size", config.batch_size, 1)
    config.lr = check_number("lr", config.lr, 0.0, low_allowed=False)
    config.weight_decay = check_number("weight_decay", config.weight_decay, 0.0, low_allowed=True)
    config.crop_size = check_whole("crop_size", config.crop_size, 1, MAX_CROP_SIZE)
    config.workers = check_whole("workers", config.workers, 0)
    config.seed = check_whole("seed", config.seed, 0, MAX_SEED)
