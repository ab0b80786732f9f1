"""Wording shared by messages: a count with its noun in the right number, a long list of names cut short."""
from __future__ import annotations

from typing import Sequence


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """``count`` and ``noun``, plural unless the count is 1: counted(1, "class", "classes") -> "1 class"."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


def listed(names: Sequence[str], limit: int = 5) -> str:
    """The first ``limit`` of ``names``, then how many more, so a long list stays one line:
    "a, b, c, d, e and 3 more"."""
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
