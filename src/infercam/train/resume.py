"""Resumable training: the state of an unfinished run in ``<out>.partial``, written atomically after every
epoch and removed once ``<out>`` is saved; a rerun with the same options continues from it, and a rerun of a
finished one reuses ``<out>`` (so only the step after training, e.g. predictions, is done again)."""
from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch

from ..errors import CheckpointError, InferCamError, OutputError
from ..io import atomic_path, ensure_dir, folder_lock
from ..models.registry import read_checkpoint
from ..run.manifest import file_sha256

# Options that do not change what is computed: a run may resume with other values.
RUNTIME_OPTIONS = ("device", "workers")


def run_inputs(network: str, voc_root: str | os.PathLike, names: Sequence[str], labels: str | os.PathLike | None,
               init_weights: str | os.PathLike | None = None, label_content: str | None = None,
               **more: Any) -> dict[str, Any]:
    """What a training run learns from, recorded with its partial state and its checkpoint so that a rerun on
    other data resumes or reuses nothing: the network name, the data set folder, the images (a SHA-256 of their
    names), the label source and its content (``label_content``, by default :func:`labels_sha256` of the source),
    and the initial weights' SHA-256 (and ``more``, e.g. the class count)."""
    if label_content is None and labels is not None:
        label_content = labels_sha256(labels, names)
    return {"network_name": network, "voc_root": os.path.abspath(voc_root),
            "images": hashlib.sha256("\n".join(names).encode("utf-8")).hexdigest(),
            "labels": None if labels is None else os.path.abspath(labels), "labels_sha256": label_content,
            "init_weights": None if init_weights is None else file_sha256(init_weights), **more}


def labels_sha256(labels: str | os.PathLike, names: Sequence[str]) -> str:
    """SHA-256 of what a run learns from ``labels``: the file itself (``cls_labels.npy``), or for a folder each
    image's ``<name>.png`` in ``names`` order, so that labels written again since (e.g. pseudo labels from new CAMs)
    count as other data. A missing PNG counts as such (training reports it)."""
    labels = Path(labels)
    if not labels.is_dir():
        return file_sha256(labels) if labels.is_file() else "not found"
    digest = hashlib.sha256()
    for name in names:
        path = labels / f"{name}.png"
        digest.update(f"{name}\0".encode("utf-8"))
        digest.update(file_sha256(path).encode("ascii") if path.is_file() else b"missing")
    return digest.hexdigest()


@contextlib.contextmanager
def checkpoint_lock(out: str | os.PathLike) -> Iterator[None]:
    """Hold ``<out>.lock`` while one run decides whether to train and writes ``out``: a second run on the same
    checkpoint is refused instead of both training and one's checkpoint replacing the other's."""
    out = Path(out)
    ensure_dir(out.parent, "checkpoint folder")
    with folder_lock(out.with_name(out.name + ".lock"), target=out):
        yield


def partial_path(out: str | os.PathLike) -> Path:
    """``<out>.partial``: where the run that writes ``out`` keeps its state until it finishes."""
    out = Path(out)
    return out.with_name(out.name + ".partial")


def save_torch(path: str | os.PathLike, obj: Any) -> None:
    """``torch.save(obj)`` to ``path`` atomically. A write that stops short is an OutputError naming the file, which
    keeps its earlier content (no partial file is left): torch's writer says only "[enforce fail at
    inline_container.cc] unexpected pos ..." or "PytorchStreamWriter failed writing file", so the cause is looked
    up: a disk without room left, else a quota or file size limit."""
    with atomic_path(path) as tmp:
        try:
            torch.save(obj, tmp)
        except RuntimeError as exc:
            if "inline_container" not in str(exc) and "PytorchStreamWriter" not in str(exc):
                raise
            if shutil.disk_usage(os.path.dirname(tmp)).free < 2**20:
                raise OutputError(f"disk full while writing {path}") from None
            raise OutputError(f"cannot write {path}: the write stopped short (a quota or file size limit?)") from None


def save_partial(path: Path, options: dict[str, Any], state: dict[str, Any]) -> None:
    """Write ``state`` (weights, optimiser, step, RNG, ...) with the run's ``options``, atomically."""
    save_torch(path, {"options": options, **state})


def _differing(saved: dict[str, Any], options: dict[str, Any]) -> str:
    """The options, runtime ones aside, whose values differ between two runs, as a message part ('' if none);
    those the saved run did not record are said to be so (an older infercam wrote it)."""
    differ = sorted(k for k in {*saved, *options} - set(RUNTIME_OPTIONS) if saved.get(k) != options.get(k))
    unrecorded = [k for k in differ if k not in saved]
    older = f"; {', '.join(unrecorded)} not recorded by the older infercam that wrote it" if unrecorded else ""
    return ", ".join(differ) + older


def load_saved_weights(model: torch.nn.Module, state: dict[str, torch.Tensor], path: str | os.PathLike) -> None:
    """Load the weights a run saved at ``path`` (its checkpoint or ``.partial``) into ``model``; an InferCamError
    when they do not fit the network built now (an older infercam built small-resnet-seg with its default widths,
    whatever the --init-weights classifier's were), instead of torch's list of mismatched sizes."""
    try:
        model.load_state_dict(state)
    except RuntimeError:
        raise InferCamError(f"{path} holds weights of another shape than the network built now (e.g. a "
                            "small-resnet-seg that an older infercam built with its default widths): use `overwrite` "
                            "to train again, or another `out`") from None


def load_partial(path: Path, options: dict[str, Any], overwrite: bool = False) -> dict[str, Any] | None:
    """The state an unfinished run with the same ``options`` saved, or None (no file, or ``overwrite``)."""
    if overwrite or not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many kinds for a bad file
        raise InferCamError(f"cannot read {path} ({type(exc).__name__}): delete it or use `overwrite`") from None
    saved = state.get("options", {}) if isinstance(state, dict) else {}
    differ = _differing(saved, options)
    if differ:
        raise InferCamError(f"{path} is from a run with other options ({differ}): "
                            "delete it or use `overwrite`")
    return state


def load_finished(out: str | os.PathLike, arch: str, options: dict[str, Any],
                  overwrite: bool = False) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(state_dict, config) of the checkpoint a finished run of ``arch`` with the same training ``options`` (its
    config and :func:`run_inputs`) saved at ``out``, or None (no file, or ``overwrite``). One from other options
    is an error, not replaced."""
    if overwrite or not Path(out).exists():
        return None
    advice = "use `overwrite` to train again, or another `out`"
    try:
        state, config = read_checkpoint(out)
    except CheckpointError as exc:
        raise InferCamError(f"{out} exists but is not a usable checkpoint ({exc}): {advice}") from None
    if not isinstance(config.get("train"), dict):
        raise InferCamError(f"{out} exists but was not written by an infercam training run: {advice}")
    differ = _differing({"arch": config.get("arch"), **config["train"], **config.get("inputs", {})},
                        {"arch": arch, **options})
    if differ:
        raise InferCamError(f"{out} exists, trained with other options ({differ}): {advice}")
    return state, config
