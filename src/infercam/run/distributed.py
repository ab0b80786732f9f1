"""Multi-process runs under ``torchrun``: each rank takes every world_size-th image and its own device.

Ranks share nothing but the output folders (each writes its own files) and one barrier at the end,
after which rank 0 merges the per-rank manifests. A failed image on one rank costs no other work.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch.distributed as dist

from ..errors import InferCamError
from ..io import write_json
from .manifest import totals_text

STATUS_SEVERITY = ("interrupted", "stopped", "finished")  # a merged run ended as its worst rank did


@dataclass(frozen=True)
class Rank:
    """This process's place in a ``torchrun`` job (rank 0 of 1 when run directly)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> "Rank":
        """Read RANK / WORLD_SIZE / LOCAL_RANK as set by torchrun; one that is not a whole number is an
        InferCamError naming it (every command reads them, not only those that torchrun shares out)."""
        values = []
        for key, default in (("RANK", "0"), ("WORLD_SIZE", "1"), ("LOCAL_RANK", "0")):
            text = os.environ.get(key, default)
            try:
                values.append(int(text))
            except ValueError:
                raise InferCamError(f"environment variable {key}={text!r} is not a whole number (torchrun sets it "
                                    "to one): unset or correct it") from None
        return cls(*values)

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def device(self, requested: str) -> str:
        """``cuda`` means this rank's own GPU (cuda:LOCAL_RANK); anything else is kept as given."""
        if self.distributed and requested == "cuda":
            return f"cuda:{self.local_rank}"
        return requested

    def manifest_name(self, base: str = "infercam-run.json") -> str:
        if not self.distributed:
            return base
        stem = base[:-len(".json")] if base.endswith(".json") else base
        return f"{stem}.rank{self.rank}-of-{self.world_size}.json"

    def peer_manifest_names(self, base: str = "infercam-run.json") -> list[str]:
        """The manifest names of this job's other ranks (their locks on a folder do not exclude this rank)."""
        return [Rank(r, self.world_size).manifest_name(base) for r in range(self.world_size) if r != self.rank]

    def label(self, text: str) -> str:
        return f"[rank {self.rank}/{self.world_size}] {text}" if self.distributed else text


def shard(names: Sequence[str], rank: int, world_size: int) -> list[str]:
    """The names rank ``rank`` of ``world_size`` processes handles (every world_size-th, from rank)."""
    return list(names[rank::world_size])


def start(rank: Rank, device: str) -> None:
    """Join the process group (NCCL on CUDA, else gloo) so ranks can meet at the end."""
    if rank.distributed and not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        dist.init_process_group(backend, timeout=_dt.timedelta(hours=12))


def finish(rank: Rank, folder: Path, base: str = "infercam-run.json") -> dict[str, Any] | None:
    """Wait for every rank, then rank 0 merges the per-rank manifests into ``base``; the merged manifest on rank
    0 (None elsewhere, in a single process, or when a rank ended early)."""
    if not rank.distributed or not dist.is_initialized():
        return None
    merged = None
    try:
        dist.barrier()
        if rank.rank == 0:
            merged = merge_manifests(folder, base, rank.world_size)
        dist.barrier()
    except RuntimeError as exc:  # another rank ended early (refused, interrupted, failed): its own line says why
        print(f"{rank.label('note')}: another rank ended early "
              f"({(str(exc).splitlines() or [type(exc).__name__])[0][:120]}); the per-rank "
              f"manifests in {folder} were not merged", file=sys.stderr)
        return None
    dist.destroy_process_group()
    return merged


def job_line(merged: dict[str, Any], world_size: int) -> str:
    """The whole job's summary from its merged manifest: the ranks' lines each count only their own share."""
    text = f"all {world_size} ranks: {totals_text(merged['totals'], merged.get('recomputed') or 0)}"
    if merged.get("remaining"):
        text += f"; {merged['remaining']} not processed (rerun the same command to finish)"
    return text


def merge_manifests(folder: Path, base: str, world_size: int) -> dict[str, Any]:
    """One manifest from the ranks' files: images in rank order, totals summed, per-rank records kept."""
    stem = base[:-len(".json")]
    parts = [json.loads((folder / f"{stem}.rank{r}-of-{world_size}.json").read_text()) for r in range(world_size)]
    per_rank = ("device", "host", "started", "ended", "status", "signal", "error", "totals", "remaining")
    merged = {key: value for key, value in parts[0].items() if key not in per_rank and key != "images"}
    merged["ranks"] = [{k: p[k] for k in per_rank} for p in parts]
    merged["status"] = min((p["status"] for p in parts), key=STATUS_SEVERITY.index)
    merged["totals"] = {k: sum(p["totals"][k] for p in parts) for k in parts[0]["totals"]}
    merged["remaining"] = sum(p["remaining"] for p in parts)
    merged["recomputed"] = sum(p.get("recomputed", 0) for p in parts)
    merged["images"] = [image for p in parts for image in p["images"]]
    write_json(folder / base, merged)
    return merged

