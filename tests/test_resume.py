"""Resuming into a folder an earlier run wrote: damaged or stale outputs are recomputed, a folder written by
another computation is refused, two runs on one folder do not both write it, and one image that runs out of
memory fails alone (issue 17)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from cli_run import argv, label, list_file, live_lock, manifest, run, temp_files
from infercam.io import load_cams, save_cams


def cam_bytes(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.npy"))}


DAMAGE = {  # how an earlier output of img_b is spoilt
    "random bytes": lambda p: p.write_bytes(np.random.default_rng(0).bytes(300)),
    "cut to half": lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
    "maps of 3 x 3": lambda p: save_cams(p, {3: np.zeros((3, 3), np.float32), 7: np.zeros((3, 3), np.float32)}),
    "other classes": lambda p: save_cams(p, {3: load_cams(p)[3]}),
    "maps that are text": lambda p: np.save(p, {3: "abc", 7: "abc"}, allow_pickle=True),
    "maps of NaN": lambda p: np.save(p, {c: np.full_like(m, np.nan) for c, m in load_cams(p).items()}),
}


@pytest.mark.parametrize("fmt", ["psa", "irn"])
@pytest.mark.parametrize("cams, said", [
    ({3: np.full((2, 2), np.nan)}, "NaN"), ({3: np.zeros((2, 2, 1))}, "not H x W"),
    ({3: np.zeros((2, 2)), 4: np.zeros((2, 3))}, "different sizes"), ({"cat": np.zeros((2, 2))}, "whole numbers"),
    ({-1: np.zeros((2, 2))}, "whole numbers"), ({True: np.zeros((2, 2))}, "whole numbers")])
def test_save_cams_refuses_maps_load_cams_would_refuse_and_writes_nothing(fmt, cams, said, tmp_path):
    from infercam.errors import DataError

    with pytest.raises(DataError, match=said):
        save_cams(tmp_path / "x.npy", cams, fmt)
    assert list(tmp_path.iterdir()) == []
    save_cams(tmp_path / "x.npy", {np.int64(4): np.ones((2, 3)), 1: np.zeros((2, 3))}, fmt)
    back = load_cams(tmp_path / "x.npy")
    assert list(back) == [1, 4] and back[4].dtype == np.float32 and back[4].shape == (2, 3)


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_or_stale_output_is_recomputed_on_resume(damage, tiny_voc, tiny_weights, tmp_path, capsys):
    clean, out = tmp_path / "clean", tmp_path / "out"
    assert run(capsys, argv(tiny_voc, tiny_weights, clean))[0] == 0
    assert run(capsys, argv(tiny_voc, tiny_weights, out))[0] == 0
    DAMAGE[damage](out / "img_b.npy")
    code, err = run(capsys, argv(tiny_voc, tiny_weights, out))
    assert code == 0 and "1 done (1 recomputed: earlier output unusable), 3 skipped, 0 failed" in err
    record = manifest(out)
    assert record["recomputed"] == 1
    assert [s["reason"] for s in record["images"] if s["name"] == "img_b"][0].startswith("recomputed: ")
    assert cam_bytes(out) == cam_bytes(clean) and not temp_files(tmp_path)


def test_damaged_or_missing_patches_and_heatmaps_are_redone_on_resume(tiny_voc, tiny_weights, tmp_path, capsys):
    out, heat, splits = tmp_path / "cams", tmp_path / "heat", tmp_path / "splits"
    args = argv(tiny_voc, tiny_weights, out, "--heatmap", heat, "--save-splits", splits, "--mode", "reference")
    assert run(capsys, args)[0] == 0

    def written():  # every output folder holds the run's record beside its files
        assert (heat / "infercam-run.json").is_file() and (splits / "infercam-run.json").is_file()
        return {p.name: p.read_bytes() for p in [*splits.iterdir(), *heat.iterdir()]
                if not p.name.startswith("infercam-run")}

    clean = written()
    (splits / "img_a_4.jpg").unlink()  # not written: simply to do
    cut = splits / "img_b_3.jpg"
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    picture = next(heat.glob("img_c_*.png"))
    picture.write_bytes(picture.read_bytes()[:100])
    code, err = run(capsys, args)
    assert code == 0 and "3 done (2 recomputed: earlier output unusable), 1 skipped, 0 failed" in err
    reasons = {s["name"]: s["reason"] for s in manifest(out)["images"]}
    assert "img_b_3.jpg does not decode" in reasons["img_b"] and picture.name in reasons["img_c"]
    assert written() == clean
    assert not temp_files(tmp_path)


@pytest.mark.parametrize("damage, said", [("random bytes", "(damaged or not a .npy file)"),
                                           ("maps that are text", "is not an array of numbers"),
                                           ("maps of NaN", "holds NaN or infinite values")])
def test_pseudo_and_eval_name_a_damaged_cam_file(damage, said, tiny_voc, tiny_weights, tmp_path, capsys):
    cams, labels = tmp_path / "cams", tmp_path / "labels"
    assert run(capsys, argv(tiny_voc, tiny_weights, cams, command="cam"))[0] == 0
    DAMAGE[damage](cams / "img_b.npy")
    code, err = run(capsys, ["pseudo", "--cam", cams, "--voc-root", tiny_voc, "--method", "threshold",
                             "--out", labels, "--no-progress"])
    assert code == 1 and "3 done, 0 skipped, 1 failed" in err
    assert f"{cams / 'img_b.npy'}" in err and said in err and "Traceback" not in err
    seg = tiny_voc / "SegmentationClass"
    seg.mkdir()
    for name in ("img_a", "img_b", "img_c", "img_d"):
        with Image.open(tiny_voc / "JPEGImages" / f"{name}.jpg") as img:
            Image.fromarray(np.zeros((img.height, img.width), np.uint8)).save(seg / f"{name}.png")
    list_path = list_file(tiny_voc, "img_a", "img_b", "img_c", "img_d")
    eval_args = ["eval", "--pred", cams, "--voc-root", tiny_voc, "--list", list_path, "--format", "cam"]
    code, err = run(capsys, eval_args)
    assert code == 2 and f"{cams / 'img_b.npy'}" in err and "--missing skip" in err
    code, err = run(capsys, [*eval_args, "--missing", "skip"])
    assert code == 0 and "img_b.npy" in err and "left out" in err


@pytest.mark.parametrize("second, differs", [
    (lambda a: ["infer", *a[1:]], "command: 'cam' -> 'infer'"),
    (lambda a: [*a, "--scales", "0.5"], "scales: [1.0, 0.5, 1.5, 2.0] -> [0.5]"),
    (lambda a: [*a, "--format", "irn"], "format: 'psa' -> 'irn'"),
])
def test_a_folder_written_with_other_options_is_refused_unless_overwrite(second, differs, tiny_voc, tiny_weights,
                                                                          tmp_path, capsys):
    out = tmp_path / "cams"
    first = argv(tiny_voc, tiny_weights, out, command="cam")
    assert run(capsys, first)[0] == 0
    before = cam_bytes(out)
    code, err = run(capsys, second(first))
    assert code == 2 and differs in err and "--overwrite" in err and cam_bytes(out) == before
    assert manifest(out)["config"]["command"] == "cam"  # the manifest still tells the truth
    code, err = run(capsys, [*second(first), "--overwrite"])
    assert code == 0 and "4 done" in err and manifest(out)["config"] != {}


def test_other_weights_are_refused_by_their_hash(tiny_voc, tiny_weights, tmp_path, capsys):
    from tiny import TinyCamNet

    out, other = tmp_path / "cams", tmp_path / "other.pth"
    torch.save(TinyCamNet(seed=5).state_dict(), other)
    assert run(capsys, argv(tiny_voc, tiny_weights, out))[0] == 0
    code, err = run(capsys, argv(tiny_voc, other, out))
    assert code == 2 and "weights (SHA-256)" in err


def test_an_unknown_class_name_in_an_annotation_fails_that_image(tiny_voc, tiny_weights, tmp_path, capsys):
    os.remove(tiny_voc / "cls_labels.npy")
    ann = tiny_voc / "Annotations"
    ann.mkdir()
    obj = "<object><name>{}</name><part><name>head</name></part></object>"
    (ann / "img_a.xml").write_text(f"<annotation>{obj.format('person')}{obj.format('dining table')}</annotation>")
    (ann / "img_b.xml").write_text(f"<annotation>{obj.format('person')}</annotation>")
    out = tmp_path / "cams"
    code, err = run(capsys, [*argv(tiny_voc, tiny_weights, out), "--list", list_file(tiny_voc, "img_a", "img_b")])
    assert code == 1 and "1 done, 0 skipped, 1 failed" in err
    assert f"annotation {ann / 'img_a.xml'} names 'dining table', no PASCAL VOC class" in err and "diningtable" in err
    assert sorted(load_cams(out / "img_b.npy")) == [14]  # a person's <part> names are not classes
    (ann / "img_a.xml").write_text(f"<annotation>{obj.format('person')}{obj.format('diningtable')}</annotation>")
    code, err = run(capsys, [*argv(tiny_voc, tiny_weights, out), "--list", tiny_voc / "run.txt"])
    assert code == 0 and "1 done, 1 skipped" in err and sorted(load_cams(out / "img_a.npy")) == [10, 14]


def test_a_list_line_with_spaces_names_the_image_when_it_exists(tiny_voc, tiny_weights, tmp_path, capsys):
    os.rename(tiny_voc / "JPEGImages" / "img_a.jpg", tiny_voc / "JPEGImages" / "my image.jpg")
    label(tiny_voc, "my image", (4,))
    lines = "my image\nJPEGImages/img_b.jpg SegmentationClass/img_b.png\n"  # a plain name, then psa's two columns
    out = tmp_path / "cams"
    code, err = run(capsys, [*argv(tiny_voc, tiny_weights, out), "--list", list_file(tiny_voc, text=lines)])
    assert code == 0 and "2 done" in err
    assert sorted(p.name for p in out.glob("*.npy")) == ["img_b.npy", "my image.npy"]


def test_one_image_out_of_memory_fails_alone(tiny_voc, tiny_weights, tmp_path, capsys):
    out = tmp_path / "cams"
    args = [a if a != "tiny:TinyCamNet" else "tiny:HungryCamNet" for a in argv(tiny_voc, tiny_weights, out)]
    code, err = run(capsys, [*args, "--scales", "1.0"])  # img_a is 56 px wide, over HungryCamNet's 54; the rest fit
    assert code == 1 and "3 done, 0 skipped, 1 failed" in err and "failed img_a: out of memory (RuntimeError: " \
        "[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator" in err
    assert "--max-side" in err and "Traceback" not in err
    assert sorted(p.name for p in out.glob("*.npy")) == ["img_b.npy", "img_c.npy", "img_d.npy"]


def test_a_checkpoint_that_fits_nowhere_is_refused_even_non_strict(tiny_voc, tmp_path, capsys):
    weights = tmp_path / "alien.pth"
    torch.save({"encoder.weight": torch.zeros(4, 4)}, weights)
    out = tmp_path / "cams"
    code, err = run(capsys, [*argv(tiny_voc, weights, out), "--no-strict"])
    assert code == 2 and "fits the network nowhere" in err and not out.exists()


def test_a_second_run_on_a_folder_in_use_is_refused_and_a_stale_lock_is_taken_over(tiny_voc, tiny_weights,
                                                                                    tmp_path, capsys):
    import socket

    out = tmp_path / "cams"
    out.mkdir()
    with live_lock(out / "infercam-run.json.lock") as pid:
        code, err = run(capsys, argv(tiny_voc, tiny_weights, out))
        assert code == 2 and f"another run (pid {pid} on {socket.gethostname()}" in err
        assert not list(out.glob("*.npy"))
    code, err = run(capsys, argv(tiny_voc, tiny_weights, out))  # its process is gone: the lock is stale
    assert code == 0 and "4 done" in err and not (out / "infercam-run.json.lock").exists()


def test_an_interrupted_overwrite_then_a_plain_resume_recomputes_what_the_replaced_run_wrote(
        tiny_voc, tiny_weights, tmp_path, capsys, monkeypatch, sigint_handler):
    import signal

    sigint_handler(signal.default_int_handler)

    import infercam.run.outputs

    out, clean = tmp_path / "cams", tmp_path / "clean"
    assert run(capsys, argv(tiny_voc, tiny_weights, clean))[0] == 0
    assert run(capsys, argv(tiny_voc, tiny_weights, out, command="cam"))[0] == 0  # baseline CAMs
    real, calls = infercam.run.outputs.save_cams, []

    def save_cams(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return real(*args, **kwargs)

    monkeypatch.setattr(infercam.run.outputs, "save_cams", save_cams)
    code, err = run(capsys, argv(tiny_voc, tiny_weights, out, "--overwrite"))  # infer over them, interrupted
    assert code == 130 and "2 done" in err
    monkeypatch.setattr(infercam.run.outputs, "save_cams", real)
    code, err = run(capsys, argv(tiny_voc, tiny_weights, out))  # the same infer, resumed without --overwrite
    assert code == 0 and "2 done (2 recomputed: earlier output unusable), 2 skipped, 0 failed" in err
    assert "written before the --overwrite run" in json.dumps(manifest(out)["images"])
    assert cam_bytes(out) == cam_bytes(clean)  # no baseline CAM is left under the infer run's record


def test_every_output_folder_records_its_run_before_the_first_output_and_unrecorded_files_are_refused(
        tiny_voc, tiny_weights, tmp_path, capsys, monkeypatch):
    import infercam.run.outputs

    out, heat = tmp_path / "cams", tmp_path / "heat"
    real, seen = infercam.run.outputs.save_cams, []

    def save_cams(*args, **kwargs):  # a run killed here (SIGKILL, power loss) leaves this record behind
        seen.append([manifest(folder)["status"] for folder in (out, heat)])
        lock = out / "infercam-run.json.lock"  # readable by another user's run, which must not call it stale
        assert lock.stat().st_mode & 0o044 == os.stat(out / "infercam-run.json").st_mode & 0o044 != 0
        return real(*args, **kwargs)

    monkeypatch.setattr(infercam.run.outputs, "save_cams", save_cams)
    assert run(capsys, argv(tiny_voc, tiny_weights, out, "--heatmap", heat, command="cam"))[0] == 0
    assert seen[0] == ["running", "running"] and manifest(heat)["status"] == "finished"
    # another computation into the heatmap folder alone is refused by that folder's own record
    code, err = run(capsys, argv(tiny_voc, tiny_weights, tmp_path / "other", "--heatmap", heat))
    assert code == 2 and f"{heat} holds the outputs of another run (command: 'cam' -> 'infer'" in err
    (heat / "infercam-run.json").unlink()  # a folder of pictures no record names: refused
    code, err = run(capsys, argv(tiny_voc, tiny_weights, out, "--heatmap", heat, command="cam"))
    assert code == 2 and f"{heat} holds files that no infercam run recorded" in err
    older = {k: v for k, v in manifest(out).items() if k != "outputs_since"}  # as an older infercam wrote it,
    (out / "infercam-run.json").write_text(json.dumps(older))  # naming its --heatmap folder, which had no record
    code, err = run(capsys, argv(tiny_voc, tiny_weights, out, "--heatmap", heat, command="cam"))
    assert code == 0 and "0 done, 4 skipped" in err and manifest(heat)["status"] == "finished"
    (out / "infercam-run.json").unlink()  # outputs without any record: their provenance is unknown
    (heat / "infercam-run.json").unlink()
    code, err = run(capsys, argv(tiny_voc, tiny_weights, out, "--heatmap", heat, command="cam"))
    assert code == 2 and f"{out} holds files that no infercam run recorded" in err
    assert run(capsys, argv(tiny_voc, tiny_weights, out, "--heatmap", heat, "--overwrite", command="cam"))[0] == 0


def test_one_folder_named_twice_or_holding_a_dotfile_is_an_ordinary_output_folder(tiny_voc, tiny_weights, tmp_path,
                                                                                     capsys, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / ".gitkeep").write_text("")
    monkeypatch.chdir(tmp_path)
    code, err = run(capsys, argv(tiny_voc, tiny_weights, "out", "--heatmap", out, command="cam"))
    assert code == 0 and "4 done" in err and len(list(out.glob("*.npy"))) == 4


def test_a_torchrun_ranks_record_counts_and_its_live_lock_excludes_a_plain_run(tiny_voc, tiny_weights, tmp_path,
                                                                              capsys):
    out = tmp_path / "cams"
    assert run(capsys, argv(tiny_voc, tiny_weights, out, command="cam"))[0] == 0
    (out / "infercam-run.json").rename(out / "infercam-run.rank0-of-2.json")  # as a 2-rank job leaves it
    code, err = run(capsys, argv(tiny_voc, tiny_weights, out))
    assert code == 2 and "holds the outputs of another run" in err and "rank0-of-2" in err
    with live_lock(out / "infercam-run.rank1-of-2.json.lock") as pid:
        code, err = run(capsys, argv(tiny_voc, tiny_weights, out, command="cam"))
        assert code == 2 and f"another run (pid {pid}" in err
    assert run(capsys, argv(tiny_voc, tiny_weights, out, command="cam"))[0] == 0  # the lock is stale now
    (out / "infercam-run.json").rename(out / "infercam-run.rank1-of-2.json")
    # an --overwrite run replaces every earlier record, so the folder can be resumed by its own options
    assert run(capsys, argv(tiny_voc, tiny_weights, out, "--overwrite", "--scales", "1.0", command="cam"))[0] == 0
    assert sorted(p.name for p in out.glob("infercam-run*.json")) == ["infercam-run.json"]
    code, err = run(capsys, argv(tiny_voc, tiny_weights, out, "--scales", "1.0", command="cam"))
    assert code == 0 and "0 done, 4 skipped" in err


def _contend(path, barrier, results):
    from infercam.errors import OutputError
    from infercam.io import folder_lock

    barrier.wait()
    try:
        with folder_lock(path):
            import time

            time.sleep(0.1)
        results.put("held")
    except OutputError:
        results.put("refused")


def test_two_runs_starting_at_the_same_moment_never_both_hold_the_lock(tmp_path):
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    for trial in range(10):  # with a lock file created empty and then written, both held it in most trials
        barrier, results = ctx.Barrier(2), ctx.Queue()
        procs = [ctx.Process(target=_contend, args=(tmp_path / f"{trial}.lock", barrier, results)) for _ in range(2)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=60)
        assert sorted(results.get(timeout=10) for _ in procs) == ["held", "refused"]
    assert not list(tmp_path.iterdir())  # no lock or temporary file left behind


def _contend_slowly(path, barrier, results):
    import time

    import infercam.io as io

    read = io.lock_holder

    def slow_read(lock):  # widens the window between finding the lock stale and replacing it
        holder = read(lock)
        time.sleep(0.05)
        return holder

    io.lock_holder = slow_read
    _contend(path, barrier, results)


def test_two_runs_finding_the_same_stale_lock_never_both_take_it_over(tmp_path):
    import multiprocessing
    import socket

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = json.dumps({"pid": dead.pid, "host": socket.gethostname(), "since": "2026-12-02T00:00:00+0000"})
    ctx = multiprocessing.get_context("fork")
    for trial in range(3):  # without the takeover guard both replaced the stale lock in every trial
        (tmp_path / f"{trial}.lock").write_text(stale)
        barrier, results = ctx.Barrier(2), ctx.Queue()
        procs = [ctx.Process(target=_contend_slowly, args=(tmp_path / f"{trial}.lock", barrier, results))
                 for _ in range(2)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=60)
        assert sorted(results.get(timeout=10) for _ in procs) == ["held", "refused"]
    assert not list(tmp_path.iterdir())  # no lock, guard or temporary file left behind


def test_a_takeover_guard_left_by_a_killed_run_does_not_block_later_runs(tmp_path):
    import socket

    from infercam.io import folder_lock

    lock = tmp_path / "infercam-run.json.lock"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock.write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "since": "x"}))
    (tmp_path / "infercam-run.json.lock.takeover").write_text("")
    with folder_lock(lock):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert not list(tmp_path.iterdir())


def test_another_data_set_into_the_same_folder_is_refused_another_list_is_not(tiny_voc, tiny_weights, tmp_path,
                                                                               capsys):
    import shutil

    out, other = tmp_path / "cams", tmp_path / "other_voc"
    shutil.copytree(tiny_voc, other)  # same names, sizes and labels: the kept CAMs would pass every check
    code, err = run(capsys, [*argv(tiny_voc, tiny_weights, out), "--list", list_file(tiny_voc, "img_a", "img_b")])
    assert code == 0 and "2 done" in err
    code, err = run(capsys, argv(tiny_voc, tiny_weights, out))  # the rest of the same data set
    assert code == 0 and "2 done, 2 skipped" in err
    code, err = run(capsys, argv(other, tiny_weights, out))
    assert code == 2 and f"holds the outputs of another run (voc_root: '{tiny_voc}' -> '{other}'" in err
