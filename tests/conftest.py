"""Shared test fixtures: the location of ../shared and small deterministic inputs."""
from __future__ import annotations

import os
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
