"""torchrun: two CPU ranks (gloo) shard the images; their outputs equal a single-process run file by file."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cli_run import live_lock
from infercam.cli import main
from infercam.io import load_cams
from infercam.run.distributed import Rank
from seg_voc import make_seg_voc

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
    # each rank's line says it is one rank's share, and the job's total comes last (two bare "2 done" lines read as
    # a 2-image run)
    lines = [line for line in proc.stderr.splitlines() if " done, " in line]
    assert sorted(lines[:2]) == [f"[rank {r}/2] 2 done, 0 skipped, 0 failed" for r in range(2)], proc.stderr[-3000:]
    assert lines[2:] == ["all 2 ranks: 4 done, 0 skipped, 0 failed"], proc.stderr[-3000:]
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


def test_a_rank_that_is_refused_ends_the_job_in_one_line_per_rank(tiny_voc, tiny_weights, tmp_path):
    """One rank refused (another run's live lock on its manifest name): the other rank's wait for it ends with a
    note, not a gloo traceback; a device this machine lacks is refused before the process group."""
    out = tmp_path / "multi"
    out.mkdir()
    args = ["infer", "--voc-root", str(tiny_voc), "--network", "tiny:TinyCamNet", "--weights", str(tiny_weights),
            "--no-progress", "--workers", "1", "--out-cam", str(out)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    # torchrun stops the other ranks within --monitor-interval (0.1 s) of a failed one: under load rank 0 could be
    # stopped before its barrier, so the test gives it time to reach the barrier whose wait it reports
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "--monitor-interval=5",
           "-m", "infercam"]
    with live_lock(out / "infercam-run.rank1-of-2.json.lock") as pid:
        proc = subprocess.run([*cmd, *args], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and f"another run (pid {pid}" in proc.stderr
    ours = "/infercam/"  # torchrun's own launcher prints a traceback for a failed rank; none may be from infercam
    assert "another rank ended early" in proc.stderr and "2 done, 0 skipped" in proc.stderr, proc.stderr[-3000:]
    assert not [line for line in proc.stderr.splitlines() if line.strip().startswith("File") and ours in line]
    assert json.loads((out / "infercam-run.rank0-of-2.json").read_text())["totals"]["done"] == 2
    if not torch.cuda.is_available():
        proc = subprocess.run([*cmd, *args, "--device", "cuda"], env=env, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode != 0 and "CUDA is not available" in proc.stderr, proc.stderr[-3000:]
        assert not [line for line in proc.stderr.splitlines() if line.strip().startswith("File") and ours in line]


def test_merged_manifest_sums_the_ranks(tmp_path):
    from infercam.run.distributed import merge_manifests

    part = {"config": {}, "device": "cpu", "host": "h", "started": "s", "ended": "e", "status": "finished",
            "signal": None, "error": "", "totals": {"done": 2, "skipped": 0, "failed": 0}, "remaining": 0}
    for r, recomputed in enumerate((0, 2)):
        (tmp_path / f"infercam-run.rank{r}-of-2.json").write_text(
            json.dumps({**part, "recomputed": recomputed, "images": [{"name": f"x{r}"}]}))
    merged = merge_manifests(tmp_path, "infercam-run.json", 2)
    assert merged["recomputed"] == 2 and merged["totals"]["done"] == 4 and len(merged["images"]) == 2


def test_each_summary_line_is_one_write(monkeypatch):
    """Ranks print their summaries to one stream at once: print() writes a line and its newline apart, and two ranks'
    lines once ran together ('[rank 1/2] 2 done, 0 skipped, 0 failed[rank 0/2] 2 done, ...')."""
    import sys

    from infercam.commands.common import report
    from infercam.run.manifest import ImageStatus, RunSummary

    class Recorder:
        def __init__(self):
            self.writes = []

        def write(self, text):
            self.writes.append(text)
            return len(text)

        def flush(self):
            pass

    recorder = Recorder()
    monkeypatch.setattr(sys, "stderr", recorder)
    summary = RunSummary(total=2, images=[ImageStatus("a", "done"), ImageStatus("b", "failed", "not an image")])
    assert report(summary, prefix="[rank 1/2] ") == 1
    assert recorder.writes == ["[rank 1/2] 1 done, 0 skipped, 1 failed\n", "  failed b: not an image\n"]


@pytest.mark.parametrize("command", [
    ["make-synthetic", "--n-train", "2", "--n-val", "0", "--out", "{out}"],
    ["eval", "--pred", "{out}", "--voc-root", "{voc}", "--list", "{voc}/ImageSets/Segmentation/train.txt"],
    ["report", "--voc-root", "{voc}", "--run", "{out}", "--out", "{out}/report"],
])
def test_a_command_that_does_not_share_its_work_is_refused_under_torchrun(command, tiny_voc, tmp_path, capsys,
                                                                           monkeypatch):
    """Under torchrun, eval, report and make-synthetic ran in full on every rank, each writing the same files:
    every rank now refuses at once, before touching anything."""
    out = tmp_path / "out"
    argv = [a.format(out=out, voc=tiny_voc) for a in command]
    for rank in ("0", "1"):
        monkeypatch.setenv("RANK", rank)
        monkeypatch.setenv("WORLD_SIZE", "2")
        assert main(argv) == 2
        assert capsys.readouterr().err.strip().splitlines() == [
            f"infercam {argv[0]}: error: {argv[0]} runs in one process: run it without torchrun (torchrun shares the "
            "images of cam, infer, split and pseudo out among its processes)"]
    assert not out.exists()


def test_a_torchrun_variable_that_is_not_a_number_is_one_error_line(tmp_path, capsys, monkeypatch):
    """Every command reads WORLD_SIZE since 01096fb: make-synthetic (or eval) in a shell with WORLD_SIZE set empty
    failed with int()'s traceback, where it ran before."""
    monkeypatch.setenv("WORLD_SIZE", "")
    assert main(["make-synthetic", "--n-train", "1", "--n-val", "0", "--out", str(tmp_path / "syn")]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "infercam make-synthetic: error: environment variable WORLD_SIZE='' is not a whole number (torchrun sets it "
        "to one): unset or correct it"]


def test_eval_under_a_real_torchrun_is_refused_on_each_rank(tmp_path):
    """The same refusal with the environment torchrun itself sets: each rank says it in one line, and neither
    prints the table nor writes the scores."""
    voc, scores = make_seg_voc(tmp_path / "voc"), tmp_path / "scores.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "--monitor-interval=5",
           "-m", "infercam", "eval", "--pred", str(voc / "cams"), "--voc-root", str(voc), "--list",
           str(voc / "ImageSets/Segmentation/train.txt"), "--json", str(scores)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    refusal = ("infercam eval: error: eval runs in one process: run it without torchrun (torchrun shares the images "
               "of cam, infer, split and pseudo out among its processes)")
    assert proc.returncode != 0 and proc.stderr.splitlines().count(refusal) == 2, proc.stderr[-3000:]
    assert "mIoU" not in proc.stdout + proc.stderr and not scores.exists()
    assert not [line for line in proc.stderr.splitlines() if line.strip().startswith("File") and "/infercam/" in line]
