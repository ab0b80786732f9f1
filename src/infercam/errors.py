"""Errors that describe a user's input problem; the CLI prints them as one clear line and exits non-zero.

A message names an option as the Python API spells it, in backticks (`batch_size`, `overwrite`); the CLI prints
each one that is an option of the command as that option (--batch-size, --overwrite), so both kinds of user read
the name they typed."""
from __future__ import annotations

import errno

from .text import counted


class InferCamError(Exception):
    """Base class of every error caused by input the user can fix (files, labels, options)."""


class ConfigError(InferCamError, ValueError):
    """An option (a config field, a function's parameter) whose value cannot work, e.g. a batch size of 0."""


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
        raise LabelError(f"class index {max(bad)} out of range: {owner} has {counted(count, 'class', 'classes')}")


class DataError(InferCamError):
    """A data set folder or list file that does not have the expected layout."""


class OutputError(InferCamError):
    """An output location that cannot be written."""


# Write errors that are the machine's, not infercam's, whatever wrote: said the same way everywhere.
NO_ROOM = {errno.ENOSPC: "disk full", errno.EDQUOT: "disk quota exceeded"}


def describe_write_error(exc: OSError, path: str | None) -> str:
    """One line saying why writing ``path`` failed (a full disk, a read-only file system, a permission, ...)."""
    if exc.errno in NO_ROOM:
        return NO_ROOM[exc.errno] + (f" while writing {path}" if path else "")
    if exc.errno == errno.EROFS:
        return f"cannot write {path}: read-only file system"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"no permission to write {path}"
    return f"cannot write {path}: {exc.strerror or exc}"
