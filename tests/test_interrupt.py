"""Interrupted and resumed runs: SIGINT/SIGTERM finish the image in progress (a second signal discards its
unfinished write), the manifest says so, the exit status is 128 + the signal, and a rerun completes the rest
with outputs identical to an uninterrupted run; ``--on-error stop``; training resumes from ``<out>.partial``."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import infercam.run.outputs
import infercam.train.loop
from infercam.cli import interrupts_deferred, main
from infercam.io import load_cams
from seg_voc import make_seg_voc

TESTS = Path(__file__).resolve().parent


def argv(voc, weights, out, *extra, network="tiny:TinyCamNet"):
    return [str(a) for a in ("infer", "--voc-root", voc, "--network", network, "--weights", weights,
                             "--no-progress", "--workers", "1", "--out-cam", out, *extra)]


def manifest(folder: Path) -> dict:
    return json.loads((folder / "infercam-run.json").read_text())


def temp_files(root: Path) -> list[Path]:
    return list(root.rglob(".tmp-*"))


def many_images(root: Path, count: int) -> Path:
    """A VOC-layout folder of ``count`` small noise images with one or two labels each."""
    (root / "JPEGImages").mkdir(parents=True)
    rng = np.random.default_rng(0)
    table = {}
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (40, 48), dtype=np.uint8)).convert("RGB").save(
            root / "JPEGImages" / f"im{i:02d}.png")
        table[f"im{i:02d}"] = np.zeros(20, np.float32)
        table[f"im{i:02d}"][[i % 20, (3 * i) % 20][: 1 + i % 2]] = 1
    np.save(root / "cls_labels.npy", table)
    return root


def assert_same_cams(a: Path, b: Path) -> None:
    names = sorted(p.name for p in a.glob("*.npy"))
    assert names == sorted(p.name for p in b.glob("*.npy"))
    for name in names:
        x, y = load_cams(a / name), load_cams(b / name)
        assert sorted(x) == sorted(y)
        for c in x:
            np.testing.assert_array_equal(x[c], y[c])


def test_sigint_finishes_the_image_in_progress_and_a_rerun_completes_the_rest(tmp_path, tiny_weights, capsys,
                                                                            sigint_handler):
    sigint_handler(signal.default_int_handler)  # the child's SIGINT as at a terminal (exec resets a caught one)
    voc, out, reference = many_images(tmp_path / "voc", 12), tmp_path / "cams", tmp_path / "reference"
    args = argv(voc, tiny_weights, out, network="tiny:SlowCamNet")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "infercam", *args], env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while len(list(out.glob("*.npy"))) < 3:
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "no outputs in time"
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    record = manifest(out)
    done = [s["name"] for s in record["images"] if s["status"] == "done"]
    assert record["status"] == "interrupted" and record["signal"] == "SIGINT"
    assert 3 <= len(done) < 12 and record["remaining"] == 12 - len(done)
    assert f"{len(done)} done, 0 skipped, 0 failed; interrupted by SIGINT, {12 - len(done)} not processed" in err
    assert sorted(p.stem for p in out.glob("*.npy")) == done and not temp_files(tmp_path)

    assert main(args) == 0
    assert f"{12 - len(done)} done, {len(done)} skipped, 0 failed" in capsys.readouterr().err
    assert manifest(out)["status"] == "finished"
    assert main(argv(voc, tiny_weights, reference)) == 0  # uninterrupted (TinyCamNet: the same maps, no delay)
    assert_same_cams(out, reference)


def test_sigterm_in_process_finishes_the_write_in_progress(tiny_voc, tiny_weights, tmp_path, capsys, monkeypatch):
    real, calls = infercam.run.outputs.save_cams, []

    def save_cams(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)

    monkeypatch.setattr(infercam.run.outputs, "save_cams", save_cams)
    out = tmp_path / "cams"
    assert main(argv(tiny_voc, tiny_weights, out)) == 128 + signal.SIGTERM
    assert "2 done, 0 skipped, 0 failed; interrupted by SIGTERM, 2 not processed" in capsys.readouterr().err
    assert sorted(load_cams(out / "img_b.npy")) == [3, 7] and not (out / "img_c.npy").exists()
    record = manifest(out)
    assert (record["status"], record["signal"], record["remaining"]) == ("interrupted", "SIGTERM", 2)
    assert not temp_files(tmp_path)


def test_a_second_sigint_discards_the_unfinished_write(tiny_voc, tiny_weights, tmp_path, capsys, monkeypatch,
                                                      sigint_handler):
    sigint_handler(signal.default_int_handler)
    real, calls = np.save, []

    def save(file, arr, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            file.write(b"\x93NUMPY half a file")
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)  # the handler raises KeyboardInterrupt here
        return real(file, arr, *args, **kwargs)

    monkeypatch.setattr(np, "save", save)
    out = tmp_path / "cams"
    assert main(argv(tiny_voc, tiny_weights, out)) == 130
    assert "infercam infer: interrupted" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["img_a.npy", "infercam-run.json"] and not temp_files(tmp_path)
    record = manifest(out)
    assert (record["status"], record["signal"], record["remaining"]) == ("interrupted", "SIGINT", 3)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_run_that_ignores_a_signal_goes_on_ignoring_it(sig, tiny_voc, tiny_weights, tmp_path, capsys, monkeypatch):
    real = np.save

    def save(file, arr, *args, **kwargs):
        os.kill(os.getpid(), sig)
        return real(file, arr, *args, **kwargs)

    monkeypatch.setattr(np, "save", save)
    out = tmp_path / "cams"
    suite = signal.signal(sig, signal.SIG_IGN)  # as SIGINT is in a background job of a script (`cmd &`)
    try:
        assert main(argv(tiny_voc, tiny_weights, out)) == 0
        assert signal.getsignal(sig) is signal.SIG_IGN
    finally:
        signal.signal(sig, suite)
    assert manifest(out)["status"] == "finished" and len(list(out.glob("*.npy"))) == 4


def test_on_error_stop_stops_at_the_first_failure_and_a_rerun_goes_on(tiny_voc, tiny_weights, tmp_path, capsys):
    (tiny_voc / "JPEGImages" / "bad.jpg").write_bytes(b"")
    table = np.load(tiny_voc / "cls_labels.npy", allow_pickle=True).item()
    np.save(tiny_voc / "cls_labels.npy", {**table, "bad": table["img_a"]})
    (tiny_voc / "run.txt").write_text("img_a\nbad\nimg_b\nimg_c\n")
    out = tmp_path / "cams"
    args = argv(tiny_voc, tiny_weights, out, "--list", tiny_voc / "run.txt")
    assert main([*args, "--on-error", "stop"]) == 1
    err = capsys.readouterr().err
    assert "1 done, 0 skipped, 1 failed; stopped: bad failed and --on-error is stop, 2 not processed" in err
    assert "failed bad: image file is empty (0 bytes)" in err
    record = manifest(out)
    assert (record["status"], record["remaining"]) == ("stopped", 2)
    assert sorted(p.name for p in out.glob("*.npy")) == ["img_a.npy"]
    assert main(args) == 1
    assert "2 done, 1 skipped, 1 failed" in capsys.readouterr().err and manifest(out)["status"] == "finished"


def test_interrupted_training_resumes_from_partial_to_the_same_weights(tmp_path, monkeypatch, capsys):
    voc = make_seg_voc(tmp_path / "voc")

    def train(out: Path) -> int:
        return main([str(a) for a in ("train-seg", "--voc-root", voc, "--pseudo", voc / "SegmentationClass",
                                      "--out", out, "--network", "demo-seg", "--crop-size", "48", "--batch-size",
                                      "2", "--epochs", "3", "--no-progress")])

    assert train(tmp_path / "whole.pth") == 0
    real = infercam.train.loop.save_partial

    def save_then_stop(*args, **kwargs):
        real(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(infercam.train.loop, "save_partial", save_then_stop)
    cut = tmp_path / "cut.pth"
    assert train(cut) == 130
    assert (tmp_path / "cut.pth.partial").exists() and not cut.exists() and not temp_files(tmp_path)
    monkeypatch.setattr(infercam.train.loop, "save_partial", real)
    capsys.readouterr()
    assert train(cut) == 0
    assert "resuming from step 2 of 6" in capsys.readouterr().err
    assert not (tmp_path / "cut.pth.partial").exists()
    a, b = torch.load(tmp_path / "whole.pth", weights_only=True), torch.load(cut, weights_only=True)
    for key in a["state_dict"]:
        torch.testing.assert_close(a["state_dict"][key], b["state_dict"][key], rtol=0, atol=0)


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_during_make_synthetic_leaves_no_half_made_folder(tmp_path, workers):
    out = tmp_path / "syn"
    # 200 000 images (minutes of work) so that it is still running when stopped, however slowly this test polls on a
    # loaded machine: with 5 000 (3 s) it once exited 0 having written them all, most likely finished between two polls
    proc = subprocess.Popen([sys.executable, "-m", "infercam", "make-synthetic", "--out", str(out), "--n-train",
                             "200000", "--n-val", "0", "--size", "64", "--workers", str(workers), "--no-progress"],
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while len(list(out.glob("JPEGImages/*"))) < 5 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGTERM)  # as a scheduler or `timeout` stops a job: workers and all
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 128 + signal.SIGTERM and "make-synthetic: terminated" in err
    assert "Traceback" not in err and not out.exists()


def wait_until_loaded(pid: int, library: str, timeout: float = 60) -> None:
    """Return once the process has mapped the shared library (it is inside that import), polling /proc."""
    deadline = time.monotonic() + timeout
    while library not in Path(f"/proc/{pid}/maps").read_text():
        assert time.monotonic() < deadline, f"{library} was never loaded"
        time.sleep(0.002)


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc to see when torch is being imported")
@pytest.mark.parametrize("delay", [0.0, 0.15, 0.3, 0.45, 0.6])
def test_ctrl_c_while_the_commands_are_imported_is_one_line_not_a_traceback(delay, sigint_handler):
    sigint_handler(signal.default_int_handler)  # the child's SIGINT as at a terminal (exec resets a caught one)
    # Interrupted at some points of torch's import (about 0.3 s after its C++ library is loaded, here), the process
    # aborted (SIGABRT: pybind11's error_already_set thrown through C++) or died by SIGINT after printing its line
    proc = subprocess.Popen([sys.executable, "-m", "infercam", "eval", "--help"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    wait_until_loaded(proc.pid, "libtorch_cpu")
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and err == "infercam: interrupted\n", (proc.returncode, err)


def test_a_ctrl_c_inside_the_deferred_block_is_raised_when_it_ends(sigint_handler):
    sigint_handler(signal.default_int_handler)
    went_on = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # a Python handler runs between bytecodes: there is time for it
            went_on.append(True)
    assert went_on == [True] and signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_process_that_ignores_ctrl_c_goes_on_ignoring_it_in_the_deferred_block(sigint_handler):
    sigint_handler(signal.SIG_IGN)  # as in a background job of a script (`cmd &`)
    with interrupts_deferred():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
