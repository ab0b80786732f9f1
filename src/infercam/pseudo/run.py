"""Pseudo labels for a whole data set: the per-image step of :func:`infercam.run.dataset.run_dataset` with
:class:`infercam.run.outputs.LabelOutputs` (read the image's CAM file, label it)."""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import DataError
from ..io import NORMALISED_PEAK, load_cams
from .threshold import CamDict

Labeler = Callable[[np.ndarray, CamDict], np.ndarray]


def cam_labeler(cam_dir: str | os.PathLike, labeler: Labeler, dropped: Counter | None = None,
                absent: Counter | None = None,
                unnormalised: dict[str, float] | None = None) -> Callable[[str, np.ndarray, list[int]], np.ndarray]:
    """A per-image computation for :func:`infercam.run.dataset.run_dataset`: ``labeler(image, <cam_dir>/<name>.npy)``.

    Maps of classes the image is not labelled with are dropped (as psa does: a pseudo label only holds the image's
    classes); ``dropped`` counts them per image name, ``absent`` the image's classes that have no map (they get no
    pixel: CAMs computed with other labels), ``unnormalised`` records the peak of maps that reach well above 1 (the
    background scores are made for maps in [0, 1])."""
    cam_dir = Path(cam_dir)

    def compute(name: str, image: np.ndarray, labels: list[int]) -> np.ndarray:
        path = cam_dir / f"{name}.npy"
        if not path.is_file():
            raise DataError(f"CAM file not found: {path}")
        cams = load_cams(path)
        kept = {c: m for c, m in cams.items() if c in labels}
        if dropped is not None and len(kept) < len(cams):
            dropped[name] += len(cams) - len(kept)
        if not kept:
            raise DataError(f"CAM file {path} holds none of the image's classes {labels} (it has {sorted(cams)})")
        if absent is not None and len(kept) < len(set(labels)):
            absent[name] += len(set(labels)) - len(kept)
        peak = max(float(m.max(initial=0)) for m in kept.values())
        if unnormalised is not None and peak > NORMALISED_PEAK:
            unnormalised[name] = peak
        return labeler(image, kept)

    return compute

