"""Run a per-image computation over a data set: prefetching, resuming, error policy, progress, manifest.

The computation is any callable ``(name, image, labels) -> dict[int, map] | InferCamResult``, or an
H x W label map for :class:`LabelOutputs`; the outputs decide which files are written, and whether an
image needs class labels (an image without any is skipped; predictions need none and get ``[]``). An optional
``prepare(image)`` (e.g. :meth:`InferCam.prepare`) runs with the decoding, in the prefetch threads, and
its result takes the image's place as the computation's second argument. Images whose
outputs already exist are skipped (resume), a failed image is recorded and the run goes on (or
stops, with ``on_error="stop"``), SIGINT/SIGTERM stop the run after the image in progress, and a
JSON manifest next to the outputs says what happened to every image.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import signal
import sys
import time
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
from PIL import Image
from tqdm import tqdm

from ..data.images import SizeLimits, load_image
from ..data.voc import VOCDataset
from ..errors import InferCamError, OutputError
from ..io import folder_lock, refuse_live_holder
from ..method.engine import InferCamResult
from ..signals import catchable
from .manifest import MANIFEST, MANIFEST_STEM, ImageStatus, RunSummary, write_manifest
from .outputs import MISSING, LabelOutputs, Outputs

ComputeFn = Callable[[str, Any, list[int]], "InferCamResult | dict[int, np.ndarray] | np.ndarray"]
PrepareFn = Callable[[np.ndarray], Any]
NO_LABELS = "no labelled class: nothing to localise"  # why an image without class labels is skipped


def _load(dataset: VOCDataset, name: str, limits: SizeLimits, prepare: PrepareFn | None,
          labelled: bool) -> tuple[np.ndarray, Any, list[int]]:
    """(image, what the computation takes: the image or ``prepare(image)``, labels: [] unless ``labelled``). The
    image is looked up first, so that a name with no image (a typo in a list file) is reported as such, not as
    missing labels."""
    image = load_image(dataset.image_path(name), limits)
    labels = dataset.labels(name) if labelled else []
    return image, image if prepare is None else prepare(image), labels


def _prefetch(dataset: VOCDataset, names: Sequence[str], workers: int, limits: SizeLimits,
              prepare: PrepareFn | None, labelled: bool) -> Iterator[tuple[str, Future]]:
    """Decode (and prepare) images ahead of the computation in a thread pool (bounded look-ahead)."""
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        pending: list[tuple[str, Future]] = []
        for name in names:
            pending.append((name, pool.submit(_load, dataset, name, limits, prepare, labelled)))
            if len(pending) > 2 * max(1, workers):
                yield pending.pop(0)
        yield from pending


def _resume_problem(dataset: VOCDataset, outputs: Outputs | LabelOutputs, name: str,
                    since: float | None) -> str | None:
    """None when a previous run wrote every output of ``name`` whole, for its current labels and size (and not
    before ``since``); else why not (``MISSING`` for an image simply not done, or one whose labels or image
    cannot be read)."""
    try:
        labels = dataset.labels(name) if outputs.needs_labels else []
        with warnings.catch_warnings():  # a huge image: the computation reports it, once
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(dataset.image_path(name)) as img:  # reads the header only
                size = (img.height, img.width)
    except (InferCamError, OSError, ValueError, Image.DecompressionBombError):
        return MISSING  # the computation reports the problem
    return outputs.problem(name, labels, size, since) if labels or not outputs.needs_labels else MISSING


class _StopRequest:
    """Turns SIGINT/SIGTERM into a flag checked between images (the write in progress completes), each where it may
    be caught (:func:`infercam.signals.catchable`: the main thread, a signal not ignored)."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "_StopRequest":
        for sig in (signal.SIGINT, signal.SIGTERM):
            if catchable(sig):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signal is not None:  # a second Ctrl-C stops at once (an unfinished write is discarded)
            raise KeyboardInterrupt
        self.signal = signum

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


def run_dataset(dataset: VOCDataset, compute: ComputeFn, outputs: Outputs | LabelOutputs, *,
                names: Sequence[str] | None = None, overwrite: bool = False, on_error: str = "skip",
                workers: int = 2, progress: bool = True, manifest: dict[str, Any] | None = None,
                manifest_name: str = MANIFEST, peers: Sequence[str] = (), since: float | None = None,
                desc: str = "images", limits: SizeLimits = SizeLimits(),
                prepare: PrepareFn | None = None) -> RunSummary:
    """Compute and write every image of ``names`` (default: the whole data set); see module docstring.

    ``manifest`` (the run's command, configuration, ...) is written to ``manifest_name`` in every output folder
    before the first output (status "running") and again with the outcome, also when the run is interrupted or
    stopped by an output error (re-raised). Each folder is locked under the same name; ``peers`` are the manifest
    names of the other processes of this job (torchrun ranks), whose locks do not exclude this one, while any
    other run's live lock does. Outputs written before ``since`` (a time stamp: the start of the --overwrite run
    this one continues) are not resumed from but computed again.
    """
    if on_error not in ("skip", "stop"):
        raise InferCamError(f"on_error must be 'skip' or 'stop', got {on_error!r}")
    names = list(dataset.names if names is None else names)
    outputs.prepare()
    with contextlib.ExitStack() as locks:
        for folder in outputs.folders:  # every folder locked and free before any is changed
            locks.enter_context(folder_lock(folder / f"{manifest_name}.lock"))
            refuse_other_runs(folder, {manifest_name, *peers})
        for folder in outputs.folders if overwrite else ():  # earlier records no longer describe the folders
            for record in folder.glob(f"{MANIFEST_STEM}*.json"):
                if record.name not in {manifest_name, *peers}:
                    record.unlink(missing_ok=True)
        return _run_locked(dataset, compute, outputs, names, overwrite, on_error, workers, progress, manifest,
                           manifest_name, since, desc, limits, prepare)


def refuse_other_runs(folder: Path, job: set[str]) -> None:
    """An OutputError if a run outside this job (e.g. a torchrun job, while this is a plain run) holds a live
    lock on ``folder``."""
    for lock in sorted(folder.glob(f"{MANIFEST_STEM}*.json.lock")):
        if lock.name[:-len(".lock")] not in job:
            refuse_live_holder(lock)


def _run_locked(dataset: VOCDataset, compute: ComputeFn, outputs: Outputs | LabelOutputs, names: list[str],
                overwrite: bool, on_error: str, workers: int, progress: bool, manifest: dict[str, Any] | None,
                manifest_name: str, since: float | None, desc: str, limits: SizeLimits,
                prepare: PrepareFn | None) -> RunSummary:
    """The body of :func:`run_dataset`, run while this process holds the output folders' locks."""
    summary = RunSummary(total=len(names))
    started = _dt.datetime.now(_dt.timezone.utc)
    todo, redo = [], {}
    for name in names:
        problem = MISSING if overwrite else _resume_problem(dataset, outputs, name, since)
        if problem is None:
            summary.images.append(ImageStatus(name, "skipped", "output exists (resumed)"))
        else:
            todo.append(name)
            if problem != MISSING:
                redo[name] = f"recomputed: the earlier output was unusable ({problem})"
    bar = tqdm(total=len(names), initial=len(names) - len(todo), desc=desc, unit="img",
               disable=not progress, dynamic_ncols=True, file=sys.stderr)
    bar.set_postfix_str(f"resumed {len(names) - len(todo)}")
    if manifest is not None:  # before any output: a run killed outright still says what wrote the folders
        for folder in outputs.folders:
            write_manifest(folder / manifest_name, manifest, dataclasses.replace(summary, status="running"), started)
    stop = _StopRequest()
    try:
        loading = _prefetch(dataset, todo, workers, limits, prepare, outputs.needs_labels)
        with stop, contextlib.closing(loading) as images:
            for name, future in images:
                if stop.signal is not None:
                    break
                try:
                    status = _process(name, future, compute, outputs)
                    if name in redo and status.status == "done":
                        status.reason = redo[name]
                except OutputError as exc:  # the output location is unusable: so it is for every later image
                    summary.images.append(ImageStatus(name, "failed", str(exc)))
                    raise
                summary.images.append(status)
                bar.update(1)
                bar.set_postfix_str(summary.line())
                if status.status == "failed" and on_error == "stop":
                    summary.status, summary.error = "stopped", f"{name} failed and --on-error is stop"
                    break
    except BaseException as exc:
        interrupted = isinstance(exc, KeyboardInterrupt)
        summary.status = "interrupted" if interrupted else "stopped"
        summary.error = "" if interrupted else str(exc) if isinstance(exc, InferCamError) else repr(exc)
        raise
    finally:
        bar.close()
        if stop.signal is not None:
            summary.status, summary.signal = "interrupted", stop.signal
        if manifest is not None:
            for folder in outputs.folders:
                write_manifest(folder / manifest_name, manifest, summary, started)
    return summary


def _process(name: str, future: Future, compute: ComputeFn, outputs: Outputs | LabelOutputs) -> ImageStatus:
    """Compute and write one image; input problems become a failed (or skipped) status."""
    t0 = time.perf_counter()
    try:
        image, prepared, labels = future.result()
        if not labels and outputs.needs_labels:
            return ImageStatus(name, "skipped", NO_LABELS)
        outputs.write(name, image, compute(name, prepared, labels))
    except OutputError:
        raise
    except InferCamError as exc:
        return ImageStatus(name, "failed", str(exc))
    except (MemoryError, RuntimeError) as exc:
        if not is_out_of_memory(exc):
            raise
        free_memory()
        return ImageStatus(name, "failed", f"out of memory ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}): "
                                           "give a smaller --max-side, fewer or smaller --scales, or a smaller "
                                           "--batch-size")
    return ImageStatus(name, "done", seconds=round(time.perf_counter() - t0, 4))


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an allocation failure (Python's, the CPU allocator's, or CUDA's)."""
    if isinstance(exc, MemoryError):
        return True
    text = str(exc)
    return type(exc).__name__ == "OutOfMemoryError" or "out of memory" in text.lower() \
        or "DefaultCPUAllocator" in text


def free_memory() -> None:
    """Give back what a failed image held (Python garbage, CUDA's cached blocks) before the next image."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
