"""argparse types shared by every command: integers and numbers checked at parse time with one clear line."""
from __future__ import annotations

import argparse
import json
import math
import os
from typing import Any, Callable, Sequence

from ..errors import InferCamError
from ..method.engine import resolve_device
from ..train.limits import MAX_SEED


def int_at_least(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer no smaller than ``low`` (and no larger than ``high`` if given)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low or (high is not None and value > high):
            bounds = f"at least {low}" if high is None else f"{low} to {high}"
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {value}")
        return value

    return parse


def number_in(low: float, high: float) -> Callable[[str], float]:
    """An argparse type: a finite number in [``low``, ``high``]."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and low <= value <= high):
            raise argparse.ArgumentTypeError(f"must be a number in [{low:g}, {high:g}], got {text!r}")
        return value

    return parse


def number_above(low: float, high: float = math.inf) -> Callable[[str], float]:
    """An argparse type: a finite number greater than ``low`` (and no larger than ``high``)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and low < value <= high):
            bound = "" if high == math.inf else f" and at most {high:g}"
            raise argparse.ArgumentTypeError(f"must be a finite number above {low:g}{bound}, got {text!r}")
        return value

    return parse


def number_at_least(low: float) -> Callable[[str], float]:
    """An argparse type: a finite number no smaller than ``low``."""
    return number_in(low, math.inf)


def json_object(text: str) -> dict[str, Any]:
    """An argparse type: a JSON object (``{"key": value, ...}``), e.g. a network's keyword options."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object such as '{{\"widths\": [16, 32, 64, 128]}}', "
                                         f"got {type(value).__name__} {text!r}")
    return value


def file_to_write(text: str) -> str:
    """An argparse type: the path of a file to write, e.g. a checkpoint; neither blank nor a folder (one that exists,
    or a path ending in a separator) nor anything else that is not a regular file (/dev/null, a pipe), which the
    atomic write's rename would replace."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"expected a file path, got {'an empty' if not text else 'a blank'} one")
    if text.endswith((os.sep, "/")) or os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text!r} is a folder: give the path of a file in it, e.g. "
                                         f"{os.path.join(text, 'model.pth')!r}")
    if os.path.lexists(text) and not os.path.isfile(text):  # a device, pipe or dangling link: a rename replaces it
        raise argparse.ArgumentTypeError(f"{text!r} exists and is not a regular file: give the path of a file")
    return text


def existing_device(text: str) -> str:
    """An argparse type: a torch device that exists on this machine (``cpu``, ``cuda``, ``cuda:N``, ``mps``)."""
    try:
        resolve_device(text)
    except InferCamError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


class OrderedPair(argparse.Action):
    """An argparse action for ``nargs=2`` options: the two values as a tuple, the first no larger than the second."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Sequence[Any],
                 option_string: str | None = None) -> None:
        low, high = values
        if low > high:
            first, second = self.metavar or ("the first value", "the second")
            parser.error(f"argument {option_string}: {first} must not exceed {second}, got {low:g} and {high:g}")
        setattr(namespace, self.dest, (low, high))


positive_int = int_at_least(1)
positive_number = number_above(0.0)
unit_interval = number_in(0.0, 1.0)
seed = int_at_least(0, MAX_SEED)
