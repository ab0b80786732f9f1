"""argparse types shared by every command: integers and numbers checked at parse time with one clear line."""
from __future__ import annotations

import argparse
import math
from typing import Callable


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


positive_int = int_at_least(1)
positive_number = number_above(0.0)
unit_interval = number_in(0.0, 1.0)
