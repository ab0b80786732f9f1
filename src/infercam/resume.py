"""Resumable training: the state of an unfinished run in ``<out>.partial``, written atomically after every
epoch and removed once ``<out>`` is saved; a rerun with the same options continues from it."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from .errors import InferCamError
from .io import atomic_path

# Options that do not change what is computed: a run may resume with other values.
RUNTIME_OPTIONS = ("device", "workers")


def partial_path(out: str | os.PathLike) -> Path:
    """``<out>.partial``: where the run that writes ``out`` keeps its state until it finishes."""
    out = Path(out)
    return out.with_name(out.name + ".partial")


def save_partial(path: Path, options: dict[str, Any], state: dict[str, Any]) -> None:
    """Write ``state`` (weights, optimiser, step, RNG, ...) with the run's ``options``, atomically."""
    with atomic_path(path) as tmp:
        torch.save({"options": options, **state}, tmp)


def load_partial(path: Path, options: dict[str, Any], overwrite: bool = False) -> dict[str, Any] | None:
    """The state an unfinished run with the same ``options`` saved, or None (no file, or ``overwrite``)."""
    if overwrite or not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many kinds for a bad file
        raise InferCamError(f"cannot read {path} ({type(exc).__name__}): delete it or use --overwrite") from None
    saved = state.get("options", {}) if isinstance(state, dict) else {}
    differ = sorted(k for k in {*saved, *options} - set(RUNTIME_OPTIONS) if saved.get(k) != options.get(k))
    if differ:
        raise InferCamError(f"{path} is from a run with other options ({', '.join(differ)}): "
                            "delete it or use --overwrite")
    return state
