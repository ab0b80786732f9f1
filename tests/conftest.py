"""Shared test fixtures: the location of ../shared and small deterministic inputs."""
from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path | None:
    """``$INFERCAM_SHARED``, else ``shared/`` beside or inside the repository, if it exists."""
    for candidate in (os.environ.get("INFERCAM_SHARED"), REPO.parent / "shared", REPO / "shared"):
        if candidate and (Path(candidate) / "checkpoints").is_dir():
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def shared_checkpoints() -> Path:
    root = shared_dir()
    if root is None:
        pytest.skip("shared/checkpoints not found (set INFERCAM_SHARED)")
    return root / "checkpoints"


@pytest.fixture()
def tiny_voc(tmp_path: Path) -> Path:
    """A 4-image VOC-layout folder (JPEGs, list file, cls_labels.npy, XML for one image)."""
    import numpy as np
    from PIL import Image

    root = tmp_path / "voc"
    (root / "JPEGImages").mkdir(parents=True)
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    rng = np.random.default_rng(0)
    labels = {"img_a": [0], "img_b": [3, 7], "img_c": [1, 2, 5], "img_d": [14]}
    table = {}
    for i, (name, classes) in enumerate(labels.items()):
        h, w = 40 + 8 * i, 56 - 4 * i
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / "JPEGImages" / f"{name}.jpg")
        vec = np.zeros(20, np.float32)
        vec[classes] = 1
        table[name] = vec
    np.save(root / "cls_labels.npy", table)
    (root / "ImageSets" / "Segmentation" / "train.txt").write_text("\n".join(labels) + "\n")
    return root


@pytest.fixture()
def tiny_weights(tmp_path: Path) -> Path:
    """A checkpoint of tests/tiny.py's TinyCamNet, for ``--network tiny:TinyCamNet``."""
    import torch
    from tiny import TinyCamNet

    path = tmp_path / "tiny.pth"
    torch.save(TinyCamNet().state_dict(), path)
    return path


@pytest.fixture(scope="session")
def fill(shared_checkpoints: Path):
    """The shared ``fill.py`` module (deterministic psa-format state dicts)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("shared_fill", shared_checkpoints / "fill.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """One intra-op thread for the whole suite (and its subprocesses): the tests' tiny convolutions run many
    times faster so on a small machine, and far more so when another process holds the other core."""
    import torch

    before, env = torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")
    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"
    yield
    torch.set_num_threads(before)
    if env is None:
        os.environ.pop("OMP_NUM_THREADS", None)
    else:
        os.environ["OMP_NUM_THREADS"] = env


@pytest.fixture()
def sigint_handler():
    """Set SIGINT's handler for a test, whatever the suite was started with (a background job of a script starts
    with SIGINT ignored), and put the suite's back afterwards."""
    suite = signal.getsignal(signal.SIGINT)
    yield lambda handler: signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGINT, suite)
