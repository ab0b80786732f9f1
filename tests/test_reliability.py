"""Bad input through the CLI: a clear one-line message, the documented exit status, and no partial output
(no half-written file, no stray temp file; a run-level error creates no output folder at all).

Exit statuses: 0 all done (or skipped), 1 an image failed (recorded; the run goes on), 2 a user error
that stops the command before or during the run.
"""
import argparse
import errno
import hashlib
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from infercam import InferCam
from infercam.cli import main
from infercam.io import load_cams
from infercam.models import registry
from cli_run import argv, label, list_file, manifest, noise, run, temp_files
from tiny import TinyCamNet

TESTS = Path(__file__).resolve().parent


# ---- image files -------------------------------------------------------------------------------------------

def truncated_jpeg(folder: Path) -> None:
    buffer = io.BytesIO()
    Image.fromarray(noise(40, 56)).save(buffer, format="JPEG")
    (folder / "bad.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])


BAD_IMAGES = {  # case: (writer, message, extra options)
    "missing": (lambda d: None, "image not found: ", ()),
    "zero bytes": (lambda d: (d / "bad.jpg").write_bytes(b""), "image file is empty (0 bytes): ", ()),
    "truncated jpeg": (truncated_jpeg, "cannot decode image (corrupt or truncated?): ", ()),
    "text named .jpg": (lambda d: (d / "bad.jpg").write_text("not a picture\n"),
                        "not an image file (format not recognised): ", ()),
    "below 8 px": (lambda d: Image.fromarray(noise(5, 40)).save(d / "bad.png"),
                   "image too small (40x5 px): the shorter side is under the minimum of 8 px", ()),
    "over --max-side": (lambda d: Image.fromarray(noise(40, 300)).save(d / "bad.png"),
                        "image too large (300x40 px): the longer side is over the limit of 256 px (--max-side",
                        ("--max-side", "256")),
}


@pytest.mark.parametrize("case", list(BAD_IMAGES))
def test_a_bad_image_fails_alone_with_a_clear_reason(case, tiny_voc, tiny_weights, tmp_path, capsys):
    write, message, extra = BAD_IMAGES[case]
    write(tiny_voc / "JPEGImages")
    label(tiny_voc, "bad")
    out = tmp_path / "cams"
    code, err = run(capsys, argv(tiny_voc, tiny_weights, out, "--list", list_file(tiny_voc, "img_a", "bad"), *extra))
    assert code == 1
    assert "1 done, 0 skipped, 1 failed" in err and f"failed bad: {message}" in err
    assert sorted(p.name for p in out.iterdir()) == ["img_a.npy", "infercam-run.json"]
    record = manifest(out)
    assert record["status"] == "finished" and record["totals"] == {"done": 1, "skipped": 0, "failed": 1}
    assert record["images"][1]["name"] == "bad" and message in record["images"][1]["reason"]
    assert not temp_files(tmp_path)


def test_a_listed_name_with_neither_image_nor_labels_is_reported_as_a_missing_image(tiny_voc, tiny_weights, tmp_path,
                                                                                      capsys):
    out = tmp_path / "cams"
    code, err = run(capsys, argv(tiny_voc, tiny_weights, out, "--list", list_file(tiny_voc, "img_a", "typo")))
    assert code == 1 and "failed typo: image not found: " in err and "labels" not in err.split("failed typo:")[1]


def grayscale(image: np.ndarray, path: Path) -> np.ndarray:
    Image.fromarray(image[..., 0]).save(path.with_suffix(".png"))
    return np.repeat(image[..., :1], 3, axis=2)


def palette(image: np.ndarray, path: Path) -> np.ndarray:
    pal = Image.fromarray(image).quantize(16)
    pal.save(path.with_suffix(".png"))
    return np.asarray(pal.convert("RGB"))


def rgba(image: np.ndarray, path: Path) -> np.ndarray:
    alpha = noise(*image.shape[:2], seed=2)[..., :1]
    Image.fromarray(np.concatenate([image, alpha], axis=2)).save(path.with_suffix(".png"))
    return image  # alpha is dropped, not composited


def cmyk(image: np.ndarray, path: Path) -> np.ndarray:
    Image.fromarray(image).convert("CMYK").save(path.with_suffix(".jpg"), quality=95)
    with Image.open(path.with_suffix(".jpg")) as img:
        assert img.mode == "CMYK"
        return np.asarray(img.convert("RGB"))


def sixteen_bit(image: np.ndarray, path: Path) -> np.ndarray:
    Image.fromarray(image[..., 1].astype(np.uint16) * 257).save(path.with_suffix(".png"))  # 0..255 -> 0..65535
    with Image.open(path.with_suffix(".png")) as img:
        assert img.mode == "I;16"
    return np.repeat(image[..., 1:2], 3, axis=2)


@pytest.mark.parametrize("write", [grayscale, palette, rgba, cmyk, sixteen_bit])
def test_other_modes_give_the_maps_of_their_rgb_conversion(write, tiny_voc, tiny_weights, tmp_path, capsys):
    expected_rgb = write(noise(40, 56), tiny_voc / "JPEGImages" / "odd")
    label(tiny_voc, "odd", (3, 7))
    out = tmp_path / "cams"
    code, err = run(capsys, argv(tiny_voc, tiny_weights, out, "--list", list_file(tiny_voc, "odd")))
    assert code == 0, err
    cams = load_cams(out / "odd.npy")
    expected = InferCam(TinyCamNet())(expected_rgb, [3, 7]).cams
    assert sorted(cams) == [3, 7]
    for c in cams:
        assert cams[c].shape == (40, 56) and cams[c].max() > 0.5
        np.testing.assert_allclose(cams[c], expected[c], atol=1e-6)


def test_exif_orientation_is_not_applied(tiny_voc, tiny_weights, tmp_path, capsys):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = tiny_voc / "JPEGImages" / "rotated.jpg"
    Image.fromarray(noise(40, 56)).save(path, exif=exif.tobytes())
    with Image.open(path) as img:
        assert img.getexif()[0x0112] == 6 and img.size == (56, 40)
        stored = np.asarray(img.convert("RGB"))
    label(tiny_voc, "rotated", (14,))
    out = tmp_path / "cams"
    assert run(capsys, argv(tiny_voc, tiny_weights, out, "--list", list_file(tiny_voc, "rotated")))[0] == 0
    cam = load_cams(out / "rotated.npy")[14]
    assert cam.shape == (40, 56)  # the stored pixel grid, not the displayed 56 x 40
    np.testing.assert_allclose(cam, InferCam(TinyCamNet())(stored, [14]).cams[14], atol=1e-6)


@pytest.mark.parametrize("suffix", [".jfif", ".JPE", ".jpeg"])
def test_jpegs_under_their_other_suffixes_are_found(suffix, tiny_voc, tiny_weights, tmp_path, capsys):
    # A photo a browser saved as .jfif was "image not found"; without a list, a name with two files runs once
    images = tiny_voc / "JPEGImages"
    (images / "img_a.jpg").rename(images / f"img_a{suffix}")
    shutil.copy(images / "img_c.jpg", images / "img_c.png")
    (tiny_voc / "ImageSets" / "Segmentation" / "train.txt").unlink()
    out = tmp_path / "cams"
    code, err = run(capsys, argv(tiny_voc, tiny_weights, out))
    assert code == 0 and "4 done, 0 skipped, 0 failed" in err, err
    assert sorted(p.name for p in out.glob("*.npy")) == ["img_a.npy", "img_b.npy", "img_c.npy", "img_d.npy"]


# ---- labels and list files ---------------------------------------------------------------------------------

def test_an_image_without_labels_is_skipped_with_a_reason(tiny_voc, tiny_weights, tmp_path, capsys):
    label(tiny_voc, "img_a", ())
    out = tmp_path / "cams"
    code, err = run(capsys, argv(tiny_voc, tiny_weights, out, "--list", list_file(tiny_voc, "img_a", "img_b")))
    assert code == 0 and "1 done, 1 skipped, 0 failed" in err
    status = manifest(out)["images"][0]
    assert status["status"] == "skipped" and "no labelled class" in status["reason"]
    assert not (out / "img_a.npy").exists()


@pytest.mark.parametrize("command", ["cam", "pseudo"])
def test_a_run_where_every_image_has_no_label_says_so(command, tiny_voc, tiny_weights, tmp_path, capsys):
    cams, out = tmp_path / "cams", tmp_path / "out"
    assert run(capsys, argv(tiny_voc, tiny_weights, cams, command="cam"))[0] == 0
    note = "note: every image was skipped: none has a class label (check --labels)"
    assert note not in capsys.readouterr().err
    table = np.load(tiny_voc / "cls_labels.npy", allow_pickle=True).item()
    np.save(tiny_voc / "cls_labels.npy", {name: np.zeros_like(vec) for name, vec in table.items()})
    args = {"cam": argv(tiny_voc, tiny_weights, out, command="cam"),
            "pseudo": ["pseudo", "--cam", cams, "--voc-root", tiny_voc, "--method", "threshold", "--out", out,
                       "--no-progress"]}[command]
    code, err = run(capsys, args)
    assert code == 0 and err.strip().splitlines()[-2:] == ["0 done, 4 skipped, 0 failed", note]
    label(tiny_voc, "img_a", (0,))  # one image with its label: no note
    code, err = run(capsys, [*args, "--overwrite"])
    assert code == 0 and "1 done, 3 skipped, 0 failed" in err and note not in err


def test_a_label_file_that_does_not_fit_the_network_stops_before_anything_is_written(tiny_voc, tiny_weights, tmp_path,
                                                                                   capsys):
    weights = tmp_path / "five.pth"
    torch.save(TinyCamNet(num_classes=5).state_dict(), weights)
    out = tmp_path / "cams"
    code, err = run(capsys, argv(tiny_voc, weights, out, "--num-classes", "5"))
    assert code == 2 and "have 20 entries, but the network has 5 classes" in err and not out.exists()
    table = np.load(tiny_voc / "cls_labels.npy", allow_pickle=True).item()  # background first: 21 entries
    np.save(tiny_voc / "bg_first.npy", {name: np.concatenate([[0.0], v]) for name, v in table.items()})
    code, err = run(capsys, argv(tiny_voc, tiny_weights, out, "--labels", tiny_voc / "bg_first.npy"))
    assert code == 2 and "have 21 entries, but the network has 20 classes (a background entry first?" in err
    assert not out.exists() and "Traceback" not in err


def test_class_indices_from_annotations_out_of_range_for_the_network_fail_each_image(tiny_voc, tmp_path, capsys):
    weights = tmp_path / "five.pth"
    torch.save(TinyCamNet(num_classes=5).state_dict(), weights)
    (tiny_voc / "cls_labels.npy").unlink()  # labels from each image's annotation: the class count is not known ahead
    annotations = tiny_voc / "Annotations"
    annotations.mkdir(exist_ok=True)
    for name, cls in (("img_a", "bicycle"), ("img_b", "tvmonitor")):
        (annotations / f"{name}.xml").write_text(f"<annotation><object><name>{cls}</name></object></annotation>")
    out = tmp_path / "cams"
    code, err = run(capsys, argv(tiny_voc, weights, out, "--num-classes", "5", "--list",
                                 list_file(tiny_voc, "img_a", "img_b")))
    assert code == 1 and "1 done, 0 skipped, 1 failed" in err
    assert "failed img_b: class index 19 out of range: the network has 5 classes" in err
    assert sorted(p.name for p in out.glob("*.npy")) == ["img_a.npy"] and not temp_files(tmp_path)


def test_a_name_missing_from_the_label_file(tiny_voc, tiny_weights, tmp_path, capsys):
    Image.fromarray(noise(40, 56)).save(tiny_voc / "JPEGImages" / "stray.jpg")
    out = tmp_path / "cams"
    code, err = run(capsys, argv(tiny_voc, tiny_weights, out, "--list", list_file(tiny_voc, "img_a", "stray")))
    assert code == 1
    assert "failed stray: image 'stray' is not in the label file" in err
    assert not (out / "stray.npy").exists() and (out / "img_a.npy").exists()


def test_list_file_with_blank_lines_comments_and_windows_line_endings(tiny_voc, tiny_weights, tmp_path, capsys):
    text = "# my images\r\n\r\nimg_a\r\n  img_b   # two classes\r\n\r\nJPEGImages/img_c.jpg\r\n"
    out = tmp_path / "cams"
    code, err = run(capsys, argv(tiny_voc, tiny_weights, out, "--list", list_file(tiny_voc, text=text)))
    assert code == 0 and "3 done, 0 skipped, 0 failed" in err
    assert sorted(p.name for p in out.glob("*.npy")) == ["img_a.npy", "img_b.npy", "img_c.npy"]


def test_a_hash_inside_a_name_is_not_a_comment(tmp_path):
    from infercam.data.voc import read_image_list

    listing = tmp_path / "list.txt"
    listing.write_text("#header\npic#1\nimg_a\t# tab comment\nimg_b #x\n")
    assert read_image_list(listing) == ["pic#1", "img_a", "img_b"]


def test_duplicate_names_in_the_list_file(tiny_voc, tiny_weights, tmp_path, capsys):
    out = tmp_path / "cams"
    code, err = run(capsys, argv(tiny_voc, tiny_weights, out, "--list", list_file(tiny_voc, "img_a", "img_b", "img_a")))
    assert code == 2 and "infercam infer: error: list file names an image twice: img_a" in err
    assert not out.exists()


def test_a_list_file_that_is_a_folder(tiny_voc, tiny_weights, tmp_path, capsys):
    out = tmp_path / "cams"
    code, err = run(capsys, argv(tiny_voc, tiny_weights, out, "--list", tiny_voc))
    assert code == 2 and f"list file {tiny_voc} is a folder" in err and not out.exists()


# ---- checkpoints -------------------------------------------------------------------------------------------

def truncated_checkpoint() -> bytes:
    buffer = io.BytesIO()
    torch.save(TinyCamNet().state_dict(), buffer)
    return buffer.getvalue()[: len(buffer.getvalue()) // 2]


CHECKPOINTS = {  # case: (file contents, messages)
    "missing": (None, ["checkpoint not found: "]),
    "not a checkpoint": ("hello\n", ["not a PyTorch checkpoint: "]),
    "truncated checkpoint": (truncated_checkpoint(), ["damaged PyTorch checkpoint: ", "failed finding central"]),
    "wrong architecture": ({"conv.weight": torch.zeros(8, 3, 3, 3), "head.weight": torch.zeros(20, 8, 1, 1)},
                           ["does not fit the network", "missing keys (in the network, not in the checkpoint) (1):",
                            "  fc.weight", "unexpected keys (in the checkpoint, not in the network) (1):",
                            "  head.weight", "conv.weight: [8, 3, 3, 3] vs [16, 3, 3, 3]"]),
    "python objects besides tensors": ({"state_dict": TinyCamNet().state_dict(), "args": argparse.Namespace(lr=1)},
                                       ["holds Python objects besides tensors", "argparse Namespace",
                                        "torch.load(FILE, weights_only=False)", "obj.state_dict()"]),
    "no tensors": ({"epoch": 3, "weights": [1, 2]},
                   ["no state_dict of tensors found", "its top-level keys: epoch, weights", "'model_state_dict'"]),
    "an empty model entry": ({"model": {}, "step": 3},
                             ["no state_dict of tensors found", "its top-level keys: model, step"]),
    "21 classes for 20": (TinyCamNet(num_classes=21).state_dict(),
                          ["has a 21-class classifier (fc.weight) but the network was built for 20 classes: "
                           "give --num-classes 21 if that is intended"]),
}


def test_pytorch_tutorials_checkpoint_layout_loads(tmp_path):
    from infercam.models import read_checkpoint

    net = TinyCamNet()
    torch.save({"epoch": 5, "model_state_dict": net.state_dict(), "optimizer_state_dict": {}, "loss": 0.1},
               tmp_path / "tutorial.pth")
    state, _ = read_checkpoint(tmp_path / "tutorial.pth")
    assert state.keys() == net.state_dict().keys()


@pytest.mark.parametrize("case", list(CHECKPOINTS))
def test_checkpoint_problems(case, tiny_voc, tmp_path, capsys):
    contents, messages = CHECKPOINTS[case]
    weights = tmp_path / "ckpt.pth"
    if isinstance(contents, str):
        weights.write_text(contents)
    elif isinstance(contents, bytes):
        weights.write_bytes(contents)
    elif contents is not None:
        torch.save(contents, weights)
    out = tmp_path / "cams"
    code, err = run(capsys, argv(tiny_voc, weights, out))
    assert code == 2 and err.startswith("infercam infer: error: ")
    for message in messages:
        assert message in err
    assert not out.exists()


# ---- outputs -----------------------------------------------------------------------------------------------

def test_output_folder_under_a_regular_file(tiny_voc, tiny_weights, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    out = tmp_path / "file" / "cams"
    code, err = run(capsys, argv(tiny_voc, tiny_weights, out))
    assert code == 2
    assert f"infercam infer: error: cannot create CAM folder {out}: {tmp_path / 'file'} is a file, not a folder" in err
    assert not temp_files(tmp_path)


def test_output_path_that_is_a_file(tiny_voc, tiny_weights, tmp_path, capsys):
    out = tmp_path / "cams"
    out.write_text("x")
    code, err = run(capsys, argv(tiny_voc, tiny_weights, out))
    assert code == 2 and f"infercam infer: error: CAM folder {out} exists and is not a folder" in err
    assert out.read_text() == "x"


def test_output_on_a_read_only_file_system(tiny_voc, tiny_weights, tmp_path):
    """Root ignores permission bits, so a read-only tmpfs is mounted in a private mount namespace."""
    ro = tmp_path / "ro"
    ro.mkdir()
    unshare = shutil.which("unshare")
    if unshare is None or subprocess.run([unshare, "-m", "true"], capture_output=True).returncode != 0:
        pytest.skip("unshare -m (a private mount namespace) is not available")
    cmd = [unshare, "-m", "sh", "-c", 'mount -t tmpfs -o ro tmpfs "$1" || exit 99; shift; exec "$@"', "sh", str(ro),
           sys.executable, "-m", "infercam", *map(str, argv(tiny_voc, tiny_weights, ro / "cams"))]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(TESTS), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    if proc.returncode == 99:
        pytest.skip("cannot mount a tmpfs here")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == f"infercam infer: error: CAM folder {ro / 'cams'} is not writable (in {ro})"
    assert list(ro.iterdir()) == []


def test_disk_full_mid_run(tiny_voc, tiny_weights, tmp_path, capsys, monkeypatch):
    real_save, calls = np.save, []

    def save(file, arr, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            file.write(b"\x93NUMPY half a file")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(file, arr, *args, **kwargs)

    monkeypatch.setattr(np, "save", save)
    out = tmp_path / "cams"
    code, err = run(capsys, argv(tiny_voc, tiny_weights, out))
    assert code == 2 and err.strip() == f"infercam infer: error: disk full while writing {out / 'img_c.npy'}"
    assert sorted(p.name for p in out.iterdir()) == ["img_a.npy", "img_b.npy", "infercam-run.json"]
    assert sorted(load_cams(out / "img_b.npy")) == [3, 7] and not temp_files(tmp_path)
    record = manifest(out)
    assert record["status"] == "stopped" and "disk full" in record["error"] and record["remaining"] == 1
    assert [s["status"] for s in record["images"]] == ["done", "done", "failed"]


# ---- options -----------------------------------------------------------------------------------------------

def test_unknown_network_lists_the_known_ones(tiny_voc, tmp_path, capsys):
    out = tmp_path / "cams"
    code, err = run(capsys, ["infer", "--voc-root", tiny_voc, "--network", "resnet1000", "--out-cam", out])
    assert code == 2 and "infercam infer: error: unknown network 'resnet1000'; known networks: " in err
    assert "resnet38," in err and "torchvision:<name>" in err and not out.exists()


@pytest.mark.parametrize("scales", ["", "1.0,-0.5", "0", "1.0,0"])
def test_invalid_scales(scales, tiny_voc, tiny_weights, tmp_path, capsys):
    out = tmp_path / "cams"
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in argv(tiny_voc, tiny_weights, out, "--scales", scales)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "argument --scales: " in err and ("no scales given" in err or "every scale must be a positive" in err)
    assert not out.exists()


@pytest.mark.parametrize("device, message", [
    ("cuda:3", "device 'cuda:3' "),
    ("tpu", "unknown device 'tpu': use cpu, cuda, cuda:N or mps"),
])
def test_a_device_that_does_not_exist(device, message, tiny_voc, tiny_weights, tmp_path, capsys):
    if device == "cuda:3" and torch.cuda.device_count() > 3:
        pytest.skip("this machine has a cuda:3")
    out = tmp_path / "cams"
    code, err = run(capsys, argv(tiny_voc, tiny_weights, out, "--device", device))
    assert code == 2 and err.startswith(f"infercam infer: error: {message}") and not out.exists()


# ---- manifest and the other writing commands ---------------------------------------------------------------

def test_manifest_records_the_run(tiny_voc, tiny_weights, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(registry._DEFAULT_WEIGHTS, "tiny:TinyCamNet", lambda: str(tiny_weights))
    out = tmp_path / "cams"
    args = ["infer", "--voc-root", tiny_voc, "--network", "tiny:TinyCamNet", "--no-progress", "--out-cam", out]
    assert run(capsys, args)[0] == 0
    record = manifest(out)
    assert record["command"] == f"infercam infer --voc-root {tiny_voc} --network tiny:TinyCamNet --no-progress " \
                                f"--out-cam {out}"
    sha = hashlib.sha256(tiny_weights.read_bytes()).hexdigest()
    assert record["checkpoints"] == {"weights": {"path": str(tiny_weights), "sha256": sha}}  # the bundled file
    assert record["config"]["weights"] == str(tiny_weights) and record["config"]["mode"] == "default"
    assert record["device"]["requested"] == "cpu" and record["device"]["used"] == "cpu"
    assert record["versions"]["torch"] == torch.__version__ and "infercam" in record["versions"]
    assert record["started"] <= record["ended"] and record["status"] == "finished" and record["signal"] is None
    assert record["totals"] == {"done": 4, "skipped": 0, "failed": 0} and record["remaining"] == 0
    assert [s["name"] for s in record["images"]] == ["img_a", "img_b", "img_c", "img_d"]


@pytest.mark.parametrize("command", ["cam", "split", "pseudo"])
def test_every_writing_command_resumes_refuses_bad_images_and_keeps_a_manifest(command, tiny_voc, tiny_weights,
                                                                                tmp_path, capsys):
    truncated_jpeg(tiny_voc / "JPEGImages")
    label(tiny_voc, "bad")
    cams, out = tmp_path / "cams", tmp_path / "out"
    assert run(capsys, argv(tiny_voc, tiny_weights, cams, command="cam"))[0] == 1
    args = {"cam": argv(tiny_voc, tiny_weights, out, command="cam"),
            "split": ["split", *argv(tiny_voc, tiny_weights, out)[1:-2], "--out", out],
            "pseudo": ["pseudo", "--cam", cams, "--voc-root", tiny_voc, "--method", "threshold", "--out", out,
                       "--no-progress"]}[command]
    first, marker = {"cam": (".npy", "img_b.npy"), "split": (".json", "img_b.json"), "pseudo": (".png", "img_b.png")}[
        command]
    code, err = run(capsys, args)
    assert code == 1 and "4 done, 0 skipped, 1 failed" in err and "failed bad: " in err
    assert manifest(out)["status"] == "finished" and not list(out.glob(f"bad*{first}"))
    (out / marker).unlink()
    code, err = run(capsys, args)
    assert code == 1 and "1 done, 3 skipped, 1 failed" in err and (out / marker).exists()
    assert not temp_files(tmp_path)


def test_outputs_get_the_usual_file_permissions(tiny_voc, tiny_weights, tmp_path, capsys):
    """Atomic writes must not leave the private 0600 mode of a temporary file on the outputs."""
    out = tmp_path / "cams"
    code, _ = run(capsys, argv(tiny_voc, tiny_weights, out))
    mask = os.umask(0o022)
    os.umask(mask)
    assert code == 0
    for path in [*out.glob("*.npy"), out / "infercam-run.json"]:
        assert path.stat().st_mode & 0o777 == 0o666 & ~mask, path


@pytest.mark.parametrize("value", [2.0, -1.0, float("nan"), 0.5])
def test_label_values_other_than_0_and_1_are_refused_naming_the_image(tmp_path, value):
    from infercam.data.voc import load_cls_labels
    from infercam.errors import LabelError

    vec = np.zeros(20, np.float32)
    vec[3] = value
    np.save(tmp_path / "cls_labels.npy", {"img_x": vec, "img_y": np.eye(20, dtype=np.float32)[1]})
    with pytest.raises(LabelError, match="img_x.*0 or 1"):
        load_cls_labels(tmp_path / "cls_labels.npy")


def test_manifest_paths_are_absolute_on_a_first_run(tiny_voc, tiny_weights, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(registry._DEFAULT_WEIGHTS, "tiny:TinyCamNet", lambda: str(tiny_weights))
    monkeypatch.chdir(tmp_path)
    assert run(capsys, ["cam", "--voc-root", tiny_voc, "--network", "tiny:TinyCamNet", "--no-progress",
                        "--out-cam", "rel_cams", "--heatmap", "rel_heat"])[0] == 0
    config = manifest(tmp_path / "rel_cams")["config"]
    assert config["out_cam"] == str(tmp_path / "rel_cams") and config["heatmap"] == str(tmp_path / "rel_heat")


def test_scales_too_small_for_the_images_fail_them_with_the_reason(tiny_voc, tiny_weights, tmp_path, capsys):
    out = tmp_path / "cams"
    code, err = run(capsys, argv(tiny_voc, tiny_weights, out, "--scales", "1,0.01", command="cam"))
    assert code == 1 and "0 done, 0 skipped, 4 failed" in err
    assert "failed img_a: scale 0.01 makes this 56x40 image 1x1 px, under the networks' minimum input of 8 px" in err
    assert not list(out.glob("*.npy"))


@pytest.mark.parametrize("option, value", [("--batch-size", "0"), ("--batch-size", "-3"), ("--workers", "-1"),
                                           ("--erase-threshold", "1.5"), ("--erase-threshold", "-1"),
                                           ("--erase-threshold", "0"), ("--stop-fraction", "-1"),
                                           ("--stop-fraction", "2"), ("--max-rounds", "0"), ("--scales", "1e9"),
                                           ("--scales", "nan")])
def test_numeric_options_are_checked_at_parse_time(tiny_voc, tmp_path, capsys, option, value):
    with pytest.raises(SystemExit) as exc:
        main(["infer", "--voc-root", str(tiny_voc), "--network", "tiny:TinyCamNet", "--out-cam", str(tmp_path / "o"),
              f"{option}={value}"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and option in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("command, option, value", [
    ("train-cls", "--epochs", "0"), ("train-cls", "--lr", "-0.1"), ("train-cls", "--lr", "nan"),
    ("train-cls", "--weight-decay", "-1"), ("train-cls", "--crop-size", "-5"), ("train-seg", "--batch-size", "0"),
    ("train-aff", "--crop-size", "0"), ("train-aff", "--max-steps", "0"), ("pseudo", "--bg-threshold", "1.5"),
    ("pseudo", "--beta", "0"), ("pseudo", "--logt", "-1"), ("pseudo", "--alpha", "1e308"), ("pseudo", "--beta", "1e9"),
    ("demo", "--images", "0"), ("cam", "--num-classes", "0"),
    ("train-cls", "--seed", "-1"), ("train-cls", "--seed", str(2**70)), ("train-aff", "--seed", str(2**70)),
    ("train-seg", "--seed", "-1"), ("train-cls", "--crop-size", "100000"), ("train-aff", "--crop-size", "100000"),
    ("train-seg", "--crop-size", "2049")])
def test_training_pseudo_and_demo_numbers_are_checked_at_parse_time(command, option, value, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, f"{option}={value}"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and f"argument {option}" in err and "must be" in err and "Traceback" not in err


def refused_at_parse_time(command: str, args: list[str], message: str, folder: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main([command, *args])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and f"infercam {command}: error: {message}" in err and "Traceback" not in err
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("command", ["train-cls", "train-aff", "train-seg"])
@pytest.mark.parametrize("out, message", [
    ("", "expected a file path, got an empty one"), ("  ", "expected a file path, got a blank one"),
    ("{tmp}/", "'{tmp}/' is a folder: give the path of a file in it, e.g. '{tmp}/model.pth'"),
    ("{tmp}", "'{tmp}' is a folder: give the path of a file in it, e.g. '{tmp}/model.pth'"),
    ("/dev/null", "'/dev/null' exists and is not a regular file"),
])
def test_a_checkpoint_path_that_is_blank_or_a_folder_is_refused_at_parse_time(command, out, message, tmp_path, capsys):
    refused_at_parse_time(command, [f"--out={out.format(tmp=tmp_path)}"],
                          f"argument --out: {message.format(tmp=tmp_path)}", tmp_path, capsys)


@pytest.mark.parametrize("command", ["train-aff", "train-seg"])
@pytest.mark.parametrize("device, message", [
    ("tpu", "unknown device 'tpu': use cpu, cuda, cuda:N or mps"), ("cuda:7", "device 'cuda:7' "),
])
def test_a_training_device_that_does_not_exist_is_refused_at_parse_time(command, device, message, tmp_path, capsys):
    if device == "cuda:7" and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    refused_at_parse_time(command, ["--out", str(tmp_path / "m.pth"), "--device", device],
                          f"argument --device: {message}", tmp_path, capsys)
