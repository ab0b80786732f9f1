"""Wording shared by messages: a count with its noun in the right number."""
from __future__ import annotations


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """``count`` and ``noun``, plural unless the count is 1: counted(1, "class", "classes") -> "1 class"."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"
