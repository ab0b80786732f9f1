"""Errors that describe a user's input problem; the CLI prints them as one clear line and exits non-zero."""
from __future__ import annotations


class InferCamError(Exception):
    """Base class of every error caused by input the user can fix (files, labels, options)."""


class CheckpointError(InferCamError):
    """A checkpoint that cannot be read or does not fit the network."""


class ImageError(InferCamError):
    """An image file that is missing, unreadable or unusable."""


class LabelError(InferCamError):
    """Image-level labels that are missing, empty or out of range."""


def check_class_range(classes: list[int], count: int, owner: str = "the network") -> None:
    """A LabelError naming the first class index of ``classes`` that ``owner``'s ``count`` classes do not have."""
    bad = [c for c in classes if not 0 <= c < count]
    if bad:
        raise LabelError(f"class index {max(bad)} out of range: {owner} has {count} classes")


class DataError(InferCamError):
    """A data set folder or list file that does not have the expected layout."""


class OutputError(InferCamError):
    """An output location that cannot be written."""
