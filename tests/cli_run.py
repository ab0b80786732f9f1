"""Helpers of the CLI tests: a command line over a tiny VOC folder, running it, and what it leaves behind."""
import contextlib
import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import numpy as np

from infercam.cli import main


def argv(voc, weights, out, *extra, command="infer"):
    return [command, "--voc-root", voc, "--network", "tiny:TinyCamNet", "--weights", weights, "--no-progress",
            "--out-cam", out, *extra]


def run(capsys, args) -> tuple[int, str]:
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


def temp_files(root: Path) -> list[Path]:
    return list(root.rglob(".tmp-*"))


def noise(height: int, width: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def label(voc: Path, name: str, classes=(0,)) -> None:
    table = np.load(voc / "cls_labels.npy", allow_pickle=True).item()
    table[name] = np.zeros(20, np.float32)
    table[name][list(classes)] = 1
    np.save(voc / "cls_labels.npy", table)


def list_file(voc: Path, *names: str, text: str | None = None) -> Path:
    path = voc / "run.txt"
    path.write_bytes((text if text is not None else "\n".join(names) + "\n").encode())
    return path


def manifest(folder: Path) -> dict:
    return json.loads((folder / "infercam-run.json").read_text())


@contextlib.contextmanager
def live_lock(path: Path) -> Iterator[int]:
    """A lock file at ``path`` held by a live process of this host (its pid is yielded), as a run that is writing
    leaves it; the process ends with the block, so the lock is stale after it."""
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        path.write_text(json.dumps({"pid": holder.pid, "host": socket.gethostname(),
                                    "since": "2026-12-04T00:00:00+0000"}))
        yield holder.pid
    finally:
        holder.kill()
        holder.wait()
