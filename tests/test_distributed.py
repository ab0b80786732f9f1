"""torchrun: two CPU ranks (gloo) shard the images; their outputs equal a single-process run file by file."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from infercam.cli import main
from infercam.io import load_cams
from infercam.run.distributed import Rank

TESTS = Path(__file__).resolve().parent


def test_rank_from_env_and_names(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    rank = Rank.from_env()
    assert rank.device("cuda") == "cuda:1" and rank.device("cpu") == "cpu"
    assert rank.manifest_name() == "infercam-run.rank1-of-4.json"
    assert Rank().manifest_name() == "infercam-run.json" and Rank().device("cuda") == "cuda"


def test_two_ranks_equal_one_process(tiny_voc, tiny_weights, tmp_path):
    args = ["infer", "--voc-root", str(tiny_voc), "--network", "tiny:TinyCamNet", "--weights", str(tiny_weights),
            "--no-progress", "--workers", "1"]
    single, multi = tmp_path / "single", tmp_path / "multi"
    assert main([*args, "--out-cam", str(single)]) == 0
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "infercam", *args, "--out-cam", str(multi)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    names = sorted(p.name for p in single.glob("*.npy"))
    assert names == sorted(p.name for p in multi.glob("*.npy")) and len(names) == 4
    for name in names:
        a, b = load_cams(single / name), load_cams(multi / name)
        assert sorted(a) == sorted(b)
        for c in a:
            np.testing.assert_allclose(a[c], b[c], atol=1e-6)
    merged = json.loads((multi / "infercam-run.json").read_text())
    assert merged["totals"]["done"] == 4 and len(merged["ranks"]) == 2
    per_rank = [json.loads((multi / f"infercam-run.rank{r}-of-2.json").read_text()) for r in range(2)]
    assert [len(p["images"]) for p in per_rank] == [2, 2]
