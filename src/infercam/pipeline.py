"""Run a per-image computation over a data set: prefetching, resuming, error policy, progress, manifest.

The computation is any callable ``(name, image, labels) -> dict[int, map] | InferCamResult``, or an
H x W label map for :class:`LabelOutputs`; the outputs decide which files are written. An optional
``prepare(image)`` (e.g. :meth:`InferCam.prepare`) runs with the decoding, in the prefetch threads, and
its result takes the image's place as the computation's second argument. Images whose
outputs already exist are skipped (resume), a failed image is recorded and the run goes on (or
stops, with ``on_error="stop"``), SIGINT/SIGTERM stop the run after the image in progress, and a
JSON manifest next to the outputs says what happened to every image.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import os
import platform
import signal
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
from PIL import Image
from tqdm import tqdm

from . import __version__
from .data.images import SizeLimits, load_image
from .data.voc import VOCDataset
from .method.engine import InferCamResult
from .classes import VOC_CLASSES
from .errors import InferCamError, OutputError
from .data.voc import read_label_png
from .io import (
    cam_file_problem, check_dir, ensure_dir, folder_lock, heatmap_path, save_cams, save_heatmaps, save_image,
    save_label_png, write_json,
)

MISSING = "not written"  # an output file a previous run did not write (the image is simply to do)
ComputeFn = Callable[[str, Any, list[int]], "InferCamResult | dict[int, np.ndarray] | np.ndarray"]
PrepareFn = Callable[[np.ndarray], Any]


@dataclass
class Outputs:
    """Where one run writes: CAM files, heatmap overlays and (for InferCam) the patches."""

    cam_dir: Path | None = None
    fmt: str = "psa"
    heatmap_dir: Path | None = None
    split_dir: Path | None = None
    class_names: tuple[str, ...] = VOC_CLASSES  # names in the heatmap files: the network's classes

    def __post_init__(self) -> None:
        if not (self.cam_dir or self.heatmap_dir or self.split_dir):
            raise InferCamError("nothing to write: give --out-cam and/or --heatmap")
        for folder, what in self._folders():
            check_dir(folder, what)

    def _folders(self) -> list[tuple[Path, str]]:
        named = ((self.cam_dir, "CAM folder"), (self.heatmap_dir, "heatmap folder"), (self.split_dir, "split folder"))
        return [(folder, what) for folder, what in named if folder is not None]

    @property
    def folder(self) -> Path:
        """The folder that holds the run manifest."""
        return self.cam_dir or self.heatmap_dir or self.split_dir  # type: ignore[return-value]

    def prepare(self) -> None:
        """Create the output folders (done when the run starts, after its inputs were checked)."""
        for folder, what in self._folders():
            ensure_dir(folder, what)

    def problem(self, name: str, labels: list[int], size: tuple[int, int]) -> str | None:
        """Why the outputs of this image (of ``size`` H, W) are not finished: ``MISSING`` when a file is not
        there, a reason when the CAM file is damaged or from other labels or another image; None when done."""
        if self.cam_dir is not None:
            path = self.cam_dir / f"{name}.npy"
            if not path.exists():
                return MISSING
            reason = cam_file_problem(path, labels, size)
            if reason is not None:
                return reason
        if self.split_dir is not None and not (self.split_dir / f"{name}.json").exists():
            return MISSING
        if self.heatmap_dir is not None and not all(
                heatmap_path(self.heatmap_dir, name, c, self.class_names).exists() for c in labels):
            return MISSING
        return None

    def write(self, name: str, image: np.ndarray, result: InferCamResult | dict[int, np.ndarray]) -> None:
        """Write every requested output; the CAM file last, since its presence marks the image done."""
        cams = result.cams if isinstance(result, InferCamResult) else result
        if self.split_dir is not None and isinstance(result, InferCamResult):
            save_split(self.split_dir, name, image, result)
        if self.heatmap_dir is not None and cams:
            save_heatmaps(self.heatmap_dir, name, image, cams, self.class_names)
        if self.cam_dir is not None:
            save_cams(self.cam_dir / f"{name}.npy", cams, self.fmt)


@dataclass
class LabelOutputs:
    """Where a run of label maps writes: one palette PNG ``<name>.png`` per image (pseudo labels, predictions)."""

    folder: Path

    def __post_init__(self) -> None:
        check_dir(self.folder, "label folder")

    def prepare(self) -> None:
        """Create the folder (done when the run starts)."""
        ensure_dir(self.folder, "label folder")

    def problem(self, name: str, labels: list[int], size: tuple[int, int]) -> str | None:
        """``MISSING`` when the image's PNG is not there, a reason when it does not load or is not of ``size``;
        None when done."""
        path = self.folder / f"{name}.png"
        if not path.exists():
            return MISSING
        try:
            shape = read_label_png(path).shape
        except InferCamError as exc:
            return str(exc)
        return None if shape == tuple(size) else f"{path} is {shape[0]}x{shape[1]}, not the image's {size[0]}x{size[1]}"

    def write(self, name: str, image: np.ndarray, result: np.ndarray) -> None:
        save_label_png(self.folder / f"{name}.png", result)


def save_split(folder: Path, name: str, image: np.ndarray, result: InferCamResult) -> None:
    """The four patches as ``<name>_1.jpg`` .. ``_4.jpg`` (the authors' layout) and ``<name>.json``."""
    for k, box in enumerate(result.boxes, start=1):
        rows, cols = box.slices()
        save_image(folder / f"{name}_{k}.jpg", np.ascontiguousarray(image[rows, cols]))
    write_json(folder / f"{name}.json", {
        "image_size": list(image.shape[:2]),
        "boxes": [list(b) for b in result.boxes],
        "box_order": ["top-left", "top-right", "bottom-left", "bottom-right"],
        "centers": {int(c): list(p) for c, p in zip(sorted(result.baseline), result.centers)},
    })


@dataclass
class ImageStatus:
    name: str
    status: str  # done | skipped | failed
    reason: str = ""
    seconds: float = 0.0


@dataclass
class RunSummary:
    """Totals and per-image outcomes of a run, and how it ended.

    ``status``: finished (every image was processed), stopped (``on_error="stop"`` after a failure, or an
    output error such as a full disk; see ``error``) or interrupted (SIGINT/SIGTERM: ``signal``).
    """

    total: int = 0
    images: list[ImageStatus] = field(default_factory=list)
    status: str = "finished"
    error: str = ""
    signal: int | None = None

    def count(self, status: str) -> int:
        return sum(1 for s in self.images if s.status == status)

    @property
    def failed(self) -> list[ImageStatus]:
        return [s for s in self.images if s.status == "failed"]

    @property
    def remaining(self) -> int:
        """Images not processed because the run ended early."""
        return self.total - len(self.images)

    @property
    def signal_name(self) -> str | None:
        return None if self.signal is None else signal.Signals(self.signal).name

    @property
    def recomputed(self) -> int:
        """Images done again because an earlier run's output was damaged or stale."""
        return sum(1 for s in self.images if s.status == "done" and s.reason.startswith("recomputed"))

    def line(self) -> str:
        again = f" ({self.recomputed} recomputed: earlier output unusable)" if self.recomputed else ""
        text = f"{self.count('done')} done{again}, {self.count('skipped')} skipped, {self.count('failed')} failed"
        if self.status == "interrupted":
            return text + f"; interrupted by {self.signal_name or 'the user'}, {self.remaining} not processed " \
                          "(rerun the same command to finish)"
        if self.status == "stopped":
            return text + f"; stopped: {self.error}, {self.remaining} not processed"
        return text


def shard(names: Sequence[str], rank: int, world_size: int) -> list[str]:
    """The names rank ``rank`` of ``world_size`` processes handles (every world_size-th, from rank)."""
    return list(names[rank::world_size])


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file (for the manifest's record of which checkpoint was used)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _load(dataset: VOCDataset, name: str, limits: SizeLimits,
          prepare: PrepareFn | None) -> tuple[np.ndarray, Any, list[int]]:
    """(image, what the computation takes: the image or ``prepare(image)``, labels)."""
    labels = dataset.labels(name)
    image = load_image(dataset.image_path(name), limits)
    return image, image if prepare is None else prepare(image), labels


def _prefetch(dataset: VOCDataset, names: Sequence[str], workers: int, limits: SizeLimits,
              prepare: PrepareFn | None) -> Iterator[tuple[str, Future]]:
    """Decode (and prepare) images ahead of the computation in a thread pool (bounded look-ahead)."""
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        pending: list[tuple[str, Future]] = []
        for name in names:
            pending.append((name, pool.submit(_load, dataset, name, limits, prepare)))
            if len(pending) > 2 * max(1, workers):
                yield pending.pop(0)
        yield from pending


def _resume_problem(dataset: VOCDataset, outputs: Outputs | LabelOutputs, name: str) -> str | None:
    """None when a previous run wrote every output of ``name`` whole and for its current labels and size;
    else why not (``MISSING`` for an image simply not done, or one whose labels or image cannot be read)."""
    try:
        labels = dataset.labels(name)
        with Image.open(dataset.image_path(name)) as img:  # reads the header only
            size = (img.height, img.width)
    except (InferCamError, OSError, ValueError):
        return MISSING  # the computation reports the problem
    return outputs.problem(name, labels, size) if labels else MISSING


class _StopRequest:
    """Turns SIGINT/SIGTERM into a flag checked between images (the write in progress completes)."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "_StopRequest":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
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
                manifest_name: str = "infercam-run.json", desc: str = "images",
                limits: SizeLimits = SizeLimits(), prepare: PrepareFn | None = None) -> RunSummary:
    """Compute and write every image of ``names`` (default: the whole data set); see module docstring.

    ``manifest`` (the run's command, configuration, ...) is written with the outcome to ``manifest_name``
    in the output folder, also when the run is interrupted or stopped by an output error (re-raised).
    """
    if on_error not in ("skip", "stop"):
        raise InferCamError(f"on_error must be 'skip' or 'stop', got {on_error!r}")
    names = list(dataset.names if names is None else names)
    outputs.prepare()
    with folder_lock(outputs.folder / f"{manifest_name}.lock"):
        return _run_locked(dataset, compute, outputs, names, overwrite, on_error, workers, progress, manifest,
                           manifest_name, desc, limits, prepare)


def _run_locked(dataset: VOCDataset, compute: ComputeFn, outputs: Outputs | LabelOutputs, names: list[str],
                overwrite: bool, on_error: str, workers: int, progress: bool, manifest: dict[str, Any] | None,
                manifest_name: str, desc: str, limits: SizeLimits, prepare: PrepareFn | None) -> RunSummary:
    """The body of :func:`run_dataset`, run while this process holds the output folder's lock."""
    summary = RunSummary(total=len(names))
    started = _dt.datetime.now(_dt.timezone.utc)
    todo, redo = [], {}
    for name in names:
        problem = MISSING if overwrite else _resume_problem(dataset, outputs, name)
        if problem is None:
            summary.images.append(ImageStatus(name, "skipped", "output exists (resumed)"))
        else:
            todo.append(name)
            if problem != MISSING:
                redo[name] = f"recomputed: the earlier output was unusable ({problem})"
    bar = tqdm(total=len(names), initial=len(names) - len(todo), desc=desc, unit="img",
               disable=not progress, dynamic_ncols=True, file=sys.stderr)
    bar.set_postfix_str(f"resumed {len(names) - len(todo)}")
    stop = _StopRequest()
    try:
        with stop, contextlib.closing(_prefetch(dataset, todo, workers, limits, prepare)) as images:
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
            write_manifest(outputs.folder / manifest_name, manifest, summary, started)
    return summary


def _process(name: str, future: Future, compute: ComputeFn, outputs: Outputs | LabelOutputs) -> ImageStatus:
    """Compute and write one image; input problems become a failed (or skipped) status."""
    t0 = time.perf_counter()
    try:
        image, prepared, labels = future.result()
        if not labels:
            return ImageStatus(name, "skipped", "no labelled class: nothing to localise")
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


def versions() -> dict[str, str]:
    """Versions of infercam and of what its results depend on."""
    import PIL
    import torch
    import torchvision

    return {"infercam": __version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
            "numpy": np.__version__, "pillow": PIL.__version__, "python": platform.python_version()}


def write_manifest(path: Path, header: dict[str, Any], summary: RunSummary, started: _dt.datetime) -> None:
    """The run's record: ``header`` (command, configuration, checkpoints, device), versions, times, how
    the run ended, totals and every image's status."""
    record = {
        **header,
        "versions": versions(),
        "host": platform.node(),
        "started": started.isoformat(),
        "ended": _dt.datetime.now(_dt.timezone.utc).isoformat(),
        "status": summary.status,
        "signal": summary.signal_name,
        "error": summary.error,
        "totals": {s: summary.count(s) for s in ("done", "skipped", "failed")},
        "recomputed": summary.recomputed,  # of the done: an earlier run's output was damaged or stale
        "remaining": summary.remaining,
        "images": [asdict(s) for s in summary.images],
    }
    write_json(path, record)
