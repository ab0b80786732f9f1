"""Helpers of the CLI tests: a command line over a tiny VOC folder, running it, and what it leaves behind."""
import json
from pathlib import Path

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
