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


class DataError(InferCamError):
    """A data set folder or list file that does not have the expected layout."""


class OutputError(InferCamError):
    """An output location that cannot be written."""
