"""A synthetic data set in PASCAL VOC layout: scenes of :mod:`infercam.data.scenes` written as JPEG images, class
and part masks, annotations, image lists and psa's ``cls_labels.npy``, from several processes if asked.

See docs/synthetic.md for the design.
"""
from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..classes import VOC_CLASSES, voc_colormap
from ..errors import OutputError
from .scenes import SceneDesign, image_rng, render_scene
from .voc import ANNOT_DIR, IMAGE_DIR, SEG_DIR, voc_annotation

PART_DIR = "SegmentationPart"
LIST_DIR = os.path.join("ImageSets", "Segmentation")
LABELS_FILE = "cls_labels.npy"
MAX_IMAGES = 1_000_000  # far beyond any use here; the job list of a typo (1e9) would exhaust the memory first
MAX_SIZE = 2048
_PALETTE = voc_colormap().ravel().tolist()


def _save_palette_png(mask: np.ndarray, path: Path) -> None:
    """Write an index mask as a palette PNG with the VOC colour map."""
    img = Image.fromarray(mask, mode="P")
    img.putpalette(_PALETTE)
    img.save(path, optimize=False)


@dataclass(frozen=True)
class _Job:
    """What a worker needs to render and write one image."""

    root: str
    name: str
    index: int
    size: int
    seed: int
    design: SceneDesign


def _write_image(job: _Job) -> tuple[str, bytes, int]:
    """Render image ``job.index`` and write its JPEG, masks and annotation; return its labels.

    The label vector travels as raw bytes: arrays unpickled from a worker would pickle differently.
    """
    scene = render_scene(image_rng(job.seed, job.index), job.size, job.design)
    root = Path(job.root)
    Image.fromarray(scene.image).save(root / IMAGE_DIR / f"{job.name}.jpg", quality=job.design.jpeg_quality)
    _save_palette_png(scene.classes, root / SEG_DIR / f"{job.name}.png")
    _save_palette_png(scene.parts, root / PART_DIR / f"{job.name}.png")
    voc_annotation(f"{job.name}.jpg", job.size, job.size,
                   [(VOC_CLASSES[o.class_index], o.box, o.truncated) for o in scene.objects], folder="synthetic",
                   segmented=True).write(root / ANNOT_DIR / f"{job.name}.xml", encoding="utf-8")
    return job.name, scene.labels().tobytes(), len(scene.objects)


@dataclass(frozen=True)
class SyntheticSummary:
    """What :func:`make_synthetic` wrote: counts per split, per class and per number of classes."""

    root: Path
    n_train: int
    n_val: int
    size: int
    seed: int
    objects: int
    images_per_class: tuple[int, ...]
    classes_per_image: dict[int, int]


def _prepare_root(root: Path) -> None:
    """Create the output folders; refuse a path that is a file or a folder that is not empty."""
    if root.exists() and not root.is_dir():
        raise OutputError(f"output path exists and is not a folder: {root}")
    if root.is_dir() and any(root.iterdir()):
        raise OutputError(f"output folder is not empty: {root} (choose a new folder or empty it)")
    try:
        for sub in (IMAGE_DIR, SEG_DIR, PART_DIR, ANNOT_DIR, LIST_DIR):
            (root / sub).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output folder {root}: {exc}") from None


def _empty(root: Path) -> None:
    """Remove everything in ``root`` (a folder that was empty before this run filled it)."""
    for entry in root.iterdir():
        shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)


def _default_sigterm() -> None:
    """Pool workers die quietly when the pool ends them (the CLI's SIGTERM handler is for the main process)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _run_jobs(jobs: list[_Job], workers: int) -> Iterator[tuple[str, bytes, int]]:
    """Results of :func:`_write_image` in job order, from ``workers`` processes.

    Fork where possible, so that callers need no ``if __name__ == "__main__"`` guard.
    """
    if workers == 1:
        yield from map(_write_image, jobs)
        return
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    with multiprocessing.get_context(method).Pool(workers, initializer=_default_sigterm) as pool:
        yield from pool.imap(_write_image, jobs, chunksize=max(1, min(32, len(jobs) // (8 * workers))))


def make_synthetic(root: str | os.PathLike, n_train: int, n_val: int, size: int = 176, seed: int = 0, *,
                   workers: int = 1, design: SceneDesign | None = None,
                   progress: Callable[[int], object] | None = None) -> SyntheticSummary:
    """Write a synthetic VOC-layout data set into the new or empty folder ``root``.

    Images are named ``syn_%06d`` (train first, then val); each image depends only on (seed, index),
    so the bytes written do not depend on ``workers``. ``progress(1)`` is called per image.
    """
    if n_train < 0 or n_val < 0 or not 0 < n_train + n_val <= MAX_IMAGES:
        raise ValueError(f"need n_train, n_val >= 0 and 1 to {MAX_IMAGES} images, got {n_train}, {n_val}")
    if not 64 <= size <= MAX_SIZE:
        raise ValueError(f"size must be 64 to {MAX_SIZE} px, got {size}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    design = design or SceneDesign()
    root = Path(root)
    created = not root.exists()
    _prepare_root(root)
    jobs = [_Job(os.fspath(root), f"syn_{i:06d}", i, size, seed, design) for i in range(n_train + n_val)]
    labels: dict[str, np.ndarray] = {}
    objects = 0
    try:
        for name, vector, count in _run_jobs(jobs, workers):
            labels[name] = np.frombuffer(vector, dtype=np.float32).copy()
            objects += count
            if progress is not None:
                progress(1)
        names = [job.name for job in jobs]
        for split, part in (("train", names[:n_train]), ("val", names[n_train:])):
            (root / LIST_DIR / f"{split}.txt").write_text("".join(f"{n}\n" for n in part), encoding="utf-8")
        np.save(root / LABELS_FILE, labels, allow_pickle=True)
    except BaseException:  # interrupted or failed: no half-made data set is left to block the next run
        shutil.rmtree(root, ignore_errors=True) if created else _empty(root)
        raise
    table = np.stack(list(labels.values()))
    per_image = table.sum(axis=1).astype(int)
    return SyntheticSummary(
        root, n_train, n_val, size, seed, objects,
        tuple(int(x) for x in table.sum(axis=0)),
        {int(k): int((per_image == k).sum()) for k in np.unique(per_image)},
    )
