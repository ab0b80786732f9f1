"""The record of a run: every image's outcome (:class:`RunSummary`), the versions and checkpoints it used, and
the JSON manifest written next to its outputs."""
from __future__ import annotations

import datetime as _dt
import hashlib
import os
import platform
import signal
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..io import write_json


MANIFEST = "infercam-run.json"  # a run's record in each output folder (torchrun ranks: infercam-run.rankR-of-W.json)
MANIFEST_STEM = "infercam-run"


@dataclass
class ImageStatus:
    """One image's outcome in a run."""

    name: str
    status: str  # done | skipped | failed
    reason: str = ""
    seconds: float = 0.0


@dataclass
class RunSummary:
    """Totals and per-image outcomes of a run, and how it ended.

    ``status``: running (the record written before the first output), finished (every image was processed),
    stopped (``on_error="stop"`` after a failure, or an output error such as a full disk; see ``error``) or
    interrupted (SIGINT/SIGTERM: ``signal``).
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
        text = totals_text({status: self.count(status) for status in ("done", "skipped", "failed")}, self.recomputed)
        if self.status == "interrupted":
            return text + f"; interrupted by {self.signal_name or 'the user'}, {self.remaining} not processed " \
                          "(rerun the same command to finish)"
        if self.status == "stopped":
            return text + f"; stopped: {self.error}, {self.remaining} not processed"
        return text



def totals_text(totals: dict[str, int], recomputed: int = 0) -> str:
    """'N done (M recomputed: ...), S skipped, F failed': a run's (or a torchrun job's) totals as summaries say them."""
    again = f" ({recomputed} recomputed: earlier output unusable)" if recomputed else ""
    return f"{totals['done']} done{again}, {totals['skipped']} skipped, {totals['failed']} failed"


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file (for the manifest's record of which checkpoint was used)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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
