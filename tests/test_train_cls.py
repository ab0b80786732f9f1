"""train-cls: a few iterations on a tiny set, checkpoint layout, resume, metrics."""
import subprocess
import sys

import numpy as np
import pytest
import torch

from infercam.cli import main
from infercam.models import build_network
from infercam.train.classifier import average_precision, crop_or_pad, f1_score


def test_average_precision_by_hand():
    scores = np.array([[0.9], [0.8], [0.7], [0.1]])
    targets = np.array([[1], [0], [1], [0]])
    assert average_precision(scores, targets)[0] == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert np.isnan(average_precision(scores, np.zeros_like(targets))[0])


def test_f1_by_hand():
    scores = np.array([[5.0, -5.0], [5.0, 5.0]])
    targets = np.array([[1, 0], [0, 1]])
    assert f1_score(scores, targets) == pytest.approx(2 * 2 / (3 + 2))


def test_crop_or_pad_keeps_pixels_and_pads_with_fill():
    rng = np.random.default_rng(0)
    image = np.arange(5 * 9 * 3, dtype=np.float32).reshape(5, 9, 3)
    out = crop_or_pad(image, 7, rng, np.array([-1.0, -1.0, -1.0], np.float32))
    assert out.shape == (7, 7, 3)
    assert (out == -1).all(axis=2).sum() == 2 * 7  # 2 padded rows
    kept = out[(out != -1).all(axis=2)].reshape(5, 7, 3)
    starts = [s for s in range(3) if np.array_equal(kept, image[:, s:s + 7])]
    assert len(starts) == 1


def train_args(voc, out):
    lst = str(voc / "ImageSets/Segmentation/train.txt")
    return ["train-cls", "--voc-root", str(voc), "--train-list", lst, "--val-list", lst, "--out", str(out),
            "--arch-kwargs", '{"widths": [8, 8, 16, 16], "depths": [1, 1, 1, 1]}', "--epochs", "2",
            "--batch-size", "2", "--crop-size", "48", "--workers", "0", "--no-progress"]


def test_train_cls_writes_a_loadable_checkpoint(tiny_voc, tmp_path):
    out = tmp_path / "cls.pt"
    assert main(train_args(tiny_voc, out)) == 0
    ckpt = torch.load(out, weights_only=True)
    assert ckpt["config"]["arch"] == "small-resnet" and ckpt["config"]["num_classes"] == 20
    history = ckpt["config"]["history"]
    assert [h["epoch"] for h in history] == [1, 2] and all("mAP" in h and "F1" in h for h in history)
    model, report = build_network("small-resnet", out)
    assert report.ok
    with torch.no_grad():
        cam = model.forward_cam(torch.zeros(1, 3, 40, 56))
    assert cam.shape == (1, 20, 5, 7) and float(cam.min()) >= 0
    assert not out.with_name("cls.pt.partial").exists()


def test_interrupted_training_resumes_to_the_same_weights(tiny_voc, tmp_path, monkeypatch, capsys):
    import infercam.train.classifier as training

    whole = tmp_path / "whole.pt"
    assert main(train_args(tiny_voc, whole)) == 0
    calls = []
    real = training.evaluate_classifier

    def interrupt_second_epoch(model, loader):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(model, loader)

    monkeypatch.setattr(training, "evaluate_classifier", interrupt_second_epoch)
    cut = tmp_path / "cut.pt"
    assert main(train_args(tiny_voc, cut)) == 130
    assert cut.with_name("cut.pt.partial").exists() and not cut.exists()
    monkeypatch.setattr(training, "evaluate_classifier", real)
    capsys.readouterr()
    assert main(train_args(tiny_voc, cut)) == 0
    assert "resuming from epoch 1" in capsys.readouterr().err
    a, b = torch.load(whole, weights_only=True), torch.load(cut, weights_only=True)
    for key in a["state_dict"]:
        torch.testing.assert_close(a["state_dict"][key], b["state_dict"][key], rtol=1e-5, atol=1e-6)


def test_a_finished_run_is_reused_and_one_with_other_options_is_not_replaced(tiny_voc, tmp_path, capsys):
    out = tmp_path / "cls.pt"
    assert main(train_args(tiny_voc, out)) == 0
    written = out.read_bytes()
    capsys.readouterr()
    assert main(train_args(tiny_voc, out)) == 0  # the same run again: the checkpoint is reused, not retrained
    captured = capsys.readouterr()
    assert "reused" in captured.err and "epoch 1" not in captured.err and out.read_bytes() == written
    assert "mAP" in captured.out  # the finished run's last metrics
    assert main(train_args(tiny_voc, out) + ["--lr", "0.01"]) == 2  # other options: refused, the model kept
    assert "lr" in capsys.readouterr().err and out.read_bytes() == written
    assert main(train_args(tiny_voc, out) + ["--lr", "0.01", "--overwrite"]) == 0
    assert out.read_bytes() != written


def test_a_checkpoint_path_without_an_extension_is_written(tmp_path):
    from infercam.train.loop import save_checkpoint

    model = torch.nn.Linear(2, 3)
    save_checkpoint(tmp_path / "segmodel", model, {"network": "linear"})  # torch.save refused ".tmp-xxxx"
    saved = torch.load(tmp_path / "segmodel", weights_only=True)
    assert saved["config"] == {"network": "linear"} and [p.name for p in tmp_path.iterdir()] == ["segmodel"]


def test_labels_changed_in_the_annotations_are_other_data_and_an_older_record_says_so(tiny_voc, tmp_path, capsys):
    from infercam.train.resume import load_partial, save_partial

    (tiny_voc / "cls_labels.npy").unlink()  # labels from the annotations: no label file to hash
    ann = tiny_voc / "Annotations"
    ann.mkdir()
    for name, cls in (("img_a", "aeroplane"), ("img_b", "cat"), ("img_c", "dog"), ("img_d", "person")):
        (ann / f"{name}.xml").write_text(f"<annotation><object><name>{cls}</name></object></annotation>")
    out = tmp_path / "cls.pt"
    assert main(train_args(tiny_voc, out)) == 0
    (ann / "img_b.xml").write_text("<annotation><object><name>cow</name></object></annotation>")
    capsys.readouterr()
    assert main(train_args(tiny_voc, out)) == 2
    assert "trained with other options (labels_sha256)" in capsys.readouterr().err
    save_partial(tmp_path / "old.partial", {"lr": 0.1}, {})  # as an infercam before labels_sha256 wrote it
    with pytest.raises(Exception, match=r"other options \(labels_sha256; labels_sha256 not recorded by the older "
                                        r"infercam that wrote it\)"):
        load_partial(tmp_path / "old.partial", {"lr": 0.1, "labels_sha256": "abc"})


def test_a_diverging_run_stops_with_one_line_and_leaves_no_checkpoint(tiny_voc, tmp_path, capsys):
    out = tmp_path / "cls.pt"
    assert main(train_args(tiny_voc, out) + ["--lr", "1e30"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("infercam train-cls: error: training diverged at step") and "lower --lr" in err[-1]
    assert not out.exists()


def test_weights_that_are_not_finite_are_never_saved_as_the_checkpoint(tmp_path):
    """The last step may diverge after the last loss was checked: its NaN weights are not the final model."""
    from infercam.errors import InferCamError
    from infercam.train.loop import save_checkpoint

    model = torch.nn.Linear(2, 3)
    with torch.no_grad():
        model.bias[1] = float("nan")
    with pytest.raises(InferCamError, match=r"NaN or infinite values \(bias\).*lower `lr`"):
        save_checkpoint(tmp_path / "model.pt", model, {})
    assert list(tmp_path.iterdir()) == []


def test_a_training_set_where_no_image_has_a_class_is_refused(tiny_voc, tmp_path, capsys):
    table = np.load(tiny_voc / "cls_labels.npy", allow_pickle=True).item()
    np.save(tiny_voc / "cls_labels.npy", {name: np.zeros_like(vec) for name, vec in table.items()})
    out = tmp_path / "cls.pt"
    assert main(train_args(tiny_voc, out)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["infercam train-cls: error: none of the 4 training images has a class label (check --labels): "
                   "nothing to learn"]
    assert not out.exists() and not out.with_name("cls.pt.partial").exists()


@pytest.mark.parametrize("vector, message", [
    (np.array(["0", "1"] * 10), "label vector of img_b is not numeric (dtype <U1)"),
    (np.eye(4, 5, dtype=np.float32), "label vector of img_b is an array of shape (4, 5), expected a vector of 20"),
    (np.zeros(40, np.float32), "label vector of img_b has 40 entries, expected 20"),
    (np.zeros(1, np.float32), "label vector of img_b has 1 entry, expected 20"),
])
def test_a_label_vector_that_is_no_numeric_20_vector_is_refused(tiny_voc, tmp_path, capsys, vector, message):
    table = np.load(tiny_voc / "cls_labels.npy", allow_pickle=True).item()
    table["img_b"] = vector
    np.save(tiny_voc / "cls_labels.npy", table)
    out = tmp_path / "cls.pt"
    assert main(train_args(tiny_voc, out)) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"infercam train-cls: error: {message}") and len(err.splitlines()) == 1
    assert not out.exists()


def test_label_vectors_all_of_another_length_are_refused_before_training(tiny_voc, tmp_path, capsys):
    table = np.load(tiny_voc / "cls_labels.npy", allow_pickle=True).item()
    np.save(tiny_voc / "cls_labels.npy", {name: np.concatenate([v, v]) for name, v in table.items()})
    out = tmp_path / "cls.pt"
    assert main(train_args(tiny_voc, out)) == 2
    err = capsys.readouterr().err
    assert err.strip() == (f"infercam train-cls: error: the label vectors of {tiny_voc / 'cls_labels.npy'} have 40 "
                           "entries, but the network to train (--num-classes) has 20 classes")
    assert not out.exists() and not out.with_name("cls.pt.partial").exists()


@pytest.mark.parametrize("args, message", [
    (["--scale-range", "2", "1"], "argument --scale-range: MIN must not exceed MAX, got 2 and 1"),
    (["--arch-kwargs", "[1, 2]"], "argument --arch-kwargs: expected a JSON object such as '{\"widths\": "),
    (["--arch-kwargs", "null"], "argument --arch-kwargs: expected a JSON object"),
    (["--arch-kwargs", "{widths: 1}"], "argument --arch-kwargs: not valid JSON (Expecting property name"),
])
def test_options_are_checked_at_parse_time(tiny_voc, tmp_path, capsys, args, message):
    out = tmp_path / "new" / "cls.pt"
    with pytest.raises(SystemExit) as exc:
        main([*train_args(tiny_voc, out), *args])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and f"infercam train-cls: error: {message}" in err and "Traceback" not in err
    assert not out.parent.exists()


@pytest.mark.parametrize("args, message", [
    (["--arch-kwargs", '{"widths": [8, 8, 16, 16], "width": 3}'],
     "--arch-kwargs: network 'small-resnet' has no option width (it takes depths, dilations, widths)"),
    (["--arch-kwargs", '{"widths": -1}'], "--arch-kwargs {\"widths\": -1}: network 'small-resnet' cannot be built "
                                          "with them: widths must be a list of whole numbers >= 1 (one per stage), "
                                          "got -1"),
    (["--arch-kwargs", '{"widths": [0, 0, 0, 0]}'], "widths must be a list of whole numbers >= 1"),
    (["--arch-kwargs", '{"depths": [1, 1]}'], "widths, depths and dilations need one entry per stage"),
    (["--arch", "resnet38", "--arch-kwargs", '{"widths": [8, 8]}'],
     "--arch-kwargs: network 'resnet38' has no option widths (it takes none)"),
    (["--arch", "demo-seg", "--arch-kwargs", "{}"],
     "network 'demo-seg' gives scores of shape [20, 48, 48] per image, not one per class: train-cls trains a "
     "classifier, one of demo, efficientnet-lite0"),
    (["--arch", "demo-aff", "--arch-kwargs", "{}", "--crop-size", "96"],
     "network 'demo-aff' gives scores of shape [34, 32] per image, not one per class"),
])
def test_a_network_or_options_train_cls_cannot_train_are_one_line(tiny_voc, tmp_path, capsys, args, message):
    out = tmp_path / "cls.pt"
    assert main([*train_args(tiny_voc, out), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("infercam train-cls: error: ") and message in err and len(err.splitlines()) == 1
    assert "small-resnet, timm:<name>, torchvision:<name>" in err or "gives scores" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["voc"]


def test_a_checkpoint_write_cut_short_by_a_full_disk_keeps_the_earlier_checkpoint(tiny_voc, tmp_path, capsys,
                                                                                 monkeypatch):
    import shutil

    out = tmp_path / "cls.pt"
    assert main(train_args(tiny_voc, out)) == 0
    written, real_save = out.read_bytes(), torch.save

    def save(obj, path, *args, **kwargs):
        if "config" not in obj:  # the partial state: written
            return real_save(obj, path, *args, **kwargs)
        with open(path, "wb") as f:
            f.write(b"PK half a checkpoint")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")

    monkeypatch.setattr(torch, "save", save)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(2**30, 2**30, 0))
    capsys.readouterr()
    assert main([*train_args(tiny_voc, out), "--lr", "0.01", "--overwrite"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"infercam train-cls: error: disk full while writing {out}"
    assert out.read_bytes() == written and not list(tmp_path.glob(".tmp-*"))
    assert out.with_name("cls.pt.partial").exists()  # the last epoch's state, to resume from once there is room


def test_a_file_size_limit_stops_training_with_one_line_and_no_partial_file(tiny_voc, tmp_path):
    import resource
    import signal
    import subprocess
    import sys
    from pathlib import Path

    def limit() -> None:  # checkpoints are far larger than 4 kB; the lock file is smaller
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of killing the process
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    src = Path(__file__).resolve().parents[1] / "src"
    out = tmp_path / "cls.pt"
    env = {"PYTHONPATH": str(src), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin",
           "PYTHONDONTWRITEBYTECODE": "1"}  # under the limit Python would leave truncated .pyc files behind
    proc = subprocess.run([sys.executable, "-m", "infercam", *train_args(tiny_voc, out)], capture_output=True,
                          text=True, timeout=300, preexec_fn=limit, env=env)
    partial = out.with_name("cls.pt.partial")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines()[-1] == (f"infercam train-cls: error: cannot write {partial}: the write stopped "
                                            "short (a quota or file size limit?)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["voc"]


def test_a_full_disk_met_anywhere_is_one_line(tiny_voc, tmp_path, capsys, monkeypatch):
    import errno

    import infercam.commands.train_cls as command

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "somewhere.log"))

    monkeypatch.setattr(command, "train_classifier", full)
    assert main(train_args(tiny_voc, tmp_path / "cls.pt")) == 2
    written = tmp_path / "somewhere.log"
    assert capsys.readouterr().err == f"infercam train-cls: error: disk full while writing {written}\n"


def test_narrow_widths_train_without_crashing_the_process(tiny_voc, tmp_path):
    """torch 2.14.1's oneDNN backward of a strided 1x1 convolution with under 16 input channels in channels_last
    kills the process (double free / segmentation fault); such networks train in the contiguous layout. A
    subprocess, so that a crash fails this test instead of the whole run."""
    from infercam.train.classifier import training_layout
    from infercam.models.small import SmallResNet

    assert training_layout(SmallResNet()) == torch.channels_last  # the default widths keep the faster layout
    assert training_layout(SmallResNet(widths=[8, 8, 16, 16])) == torch.contiguous_format
    args = train_args(tiny_voc, tmp_path / "cls.pt")
    args[args.index("--crop-size") + 1] = "128"
    args[args.index("--arch-kwargs") + 1] = '{"widths": [4, 8, 16, 16]}'
    done = subprocess.run([sys.executable, "-m", "infercam", *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "cls.pt").is_file()
