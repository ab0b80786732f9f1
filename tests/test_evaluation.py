"""Evaluation: confusion matrix arithmetic, CAM-to-label thresholding, threshold sweeps, file formats, CLI."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from infercam.classes import VOC_CLASSES, voc_colormap
from infercam.cli import main
from infercam.errors import DataError
from infercam.io import load_cams
from infercam.evaluation import (
    CamSweep, ConfusionMatrix, cam_to_label, evaluate_cam_dicts, evaluate_cams, evaluate_labels,
    threshold_range,
)


def naive_label(cams: dict[int, np.ndarray], t: float, shape: tuple[int, int]) -> np.ndarray:
    """Reference, as psa/IRN: argmax over np.pad(maps, bg plane = t) (float32); class c -> c + 1."""
    keys = sorted(cams)
    maps = np.stack([cams[k] for k in keys]) if keys else np.zeros((0,) + shape, np.float32)
    stack = np.pad(maps, ((1, 0), (0, 0), (0, 0)), mode="constant", constant_values=t)
    return np.array([0] + [k + 1 for k in keys])[np.argmax(stack, axis=0)]


def random_image(rng: np.random.Generator, shape=(12, 9), levels: int | None = None):
    """A ground truth (with 255s) and a CAM dict of 0..3 classes; ``levels`` quantises maps to k/levels."""
    keys = sorted(rng.choice(20, size=rng.integers(0, 4), replace=False).tolist())
    gt = rng.choice([0, 255] + [k + 1 for k in keys] + [5], size=shape).astype(np.uint8)
    maps = rng.random((len(keys),) + shape)
    if levels:
        maps = np.round(maps * levels) / levels
    return gt, {k: m.astype(np.float32) for k, m in zip(keys, maps)}


def save_png(path: Path, labels: np.ndarray, palette: bool = True) -> None:
    img = Image.fromarray(labels.astype(np.uint8), mode="L")
    if palette:
        img = img.convert("P")
        img.putpalette(voc_colormap().reshape(-1).tolist())
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


def test_confusion_matrix_hand_example():
    gt = np.array([[0, 1, 1, 2], [2, 255, 0, 2]])
    pred = np.array([[0, 1, 2, 2], [2, 1, 255, 0]])  # the 1 on gt 255 is ignored; 255 on gt 0 is a miss
    cm = ConfusionMatrix(num_classes=4)  # class 3 absent everywhere
    cm.update(gt, pred)
    np.testing.assert_allclose(cm.iou(), [1 / 3, 1 / 2, 2 / 4, np.nan])
    assert cm.miou() == pytest.approx((1 / 3 + 1 / 2 + 1 / 2) / 3)
    np.testing.assert_allclose(cm.precision(), [1 / 2, 1, 2 / 3, np.nan])
    np.testing.assert_allclose(cm.recall(), [1 / 2, 1 / 2, 2 / 3, np.nan])
    # class-agnostic: the 1 predicted as 2 is a foreground hit; 255 counts as not foreground
    assert cm.foreground() == pytest.approx({"share": 4 / 7, "truth_share": 5 / 7, "recall": 4 / 5, "precision": 1})
    cm.update(gt, pred)  # accumulating the same image leaves ratios unchanged
    assert cm.miou() == pytest.approx(4 / 9)
    assert cm.counts.sum() == 14


def test_confusion_matrix_rejects_bad_input():
    cm = ConfusionMatrix()
    with pytest.raises(DataError, match="label 30"):
        cm.update(np.zeros((2, 2), np.uint8), np.full((2, 2), 30))
    with pytest.raises(DataError, match="2x3"):
        cm.update(np.zeros((3, 2)), np.zeros((2, 3)))


def test_cam_to_label_ties_go_to_background_and_lower_class():
    cams = {0: np.array([[0.5, 0.3]]), 2: np.array([[0.5, 0.6]])}
    np.testing.assert_array_equal(cam_to_label(cams, 0.5), [[0, 3]])
    np.testing.assert_array_equal(cam_to_label(cams, 0.3), [[1, 3]])
    np.testing.assert_array_equal(cam_to_label({}, 0.1, shape=(2, 2)), np.zeros((2, 2)))


@pytest.mark.parametrize("levels", [None, 8])
def test_cam_to_label_matches_naive_argmax(levels):
    rng = np.random.default_rng(levels or 0)
    for _ in range(10):
        gt, cams = random_image(rng, levels=levels)
        for t in np.arange(0, 1.001, 1 / 16):
            np.testing.assert_array_equal(cam_to_label(cams, t, gt.shape), naive_label(cams, t, gt.shape))


@pytest.mark.parametrize("levels", [None, 8])
def test_sweep_matches_per_threshold_confusion(levels):
    rng = np.random.default_rng(1)
    thresholds = np.arange(0, 1.001, 1 / 8) if levels else threshold_range(0, 0.95, 0.01)
    images = [random_image(rng, levels=levels) for _ in range(6)]
    sweep = CamSweep(thresholds[::-1])  # order does not matter
    for gt, cams in images:
        sweep.add(gt, cams)
    mious = sweep.mious()
    for i, t in enumerate(sweep.thresholds):
        reference = ConfusionMatrix()
        per_image = []
        for gt, cams in images:
            reference.update(gt, naive_label(cams, t, gt.shape))
            one = ConfusionMatrix()
            one.update(gt, naive_label(cams, t, gt.shape))
            per_image.append(one.counts)
        np.testing.assert_array_equal(sweep.confusion(t).counts, reference.counts)
        assert mious[i] == pytest.approx(reference.miou())
        inter, union = sweep.per_image(t)
        np.testing.assert_array_equal(inter, [np.diagonal(c) for c in per_image])
        np.testing.assert_array_equal(union, [c.sum(1) + c[:, :21].sum(0) - np.diagonal(c) for c in per_image])


def test_evaluate_cam_dicts_best_threshold():
    gt = np.array([[0, 0, 1, 1]], np.uint8)
    cams = {0: np.array([[0.1, 0.3, 0.6, 0.8]], np.float32)}
    result = evaluate_cam_dicts([("a", gt, cams)], thresholds=[0.0, 0.2, 0.3, 0.5, 0.7])
    assert result.best_threshold == 0.3  # 0.3 (a tie in float32) and 0.5 both perfect: the lower wins
    assert result.miou == pytest.approx(100.0)
    assert result.per_threshold[0.7] == pytest.approx(100 * (2 / 3 + 1 / 2) / 2)
    assert result.per_class["aeroplane"]["iou"] == pytest.approx(100.0)
    assert np.isnan(result.per_class["dog"]["iou"])
    assert result.names == ["a"] and result.per_image_union.shape == (1, 21)


def make_dataset(root: Path, shape=(6, 5)) -> tuple[Path, Path, dict]:
    """VOC root with three GT masks, and CAM predictions in both npy formats."""
    rng = np.random.default_rng(3)
    voc, pred = root / "voc", root / "pred"
    pred.mkdir(parents=True)
    truth = {}
    for i, name in enumerate(["a", "b", "c"]):
        gt, cams = random_image(rng, shape, levels=None)
        save_png(voc / "SegmentationClass" / f"{name}.png", gt)
        if i == 1:  # IRN format: 0-based foreground keys, one high_res map per key
            keys = np.array(sorted(cams), dtype=np.int64)
            maps = np.stack([cams[k] for k in keys]) if keys.size else np.zeros((0,) + shape, np.float32)
            np.save(pred / f"{name}.npy", {"keys": keys, "high_res": maps})
        else:  # psa format
            np.save(pred / f"{name}.npy", cams)
        truth[name] = (gt, cams)
    return voc, pred, truth


def test_both_npy_formats_read_and_score(tmp_path):
    voc, pred, truth = make_dataset(tmp_path)
    result = evaluate_cams(pred, voc, list(truth), thresholds=[0.4])
    reference = ConfusionMatrix()
    for gt, cams in truth.values():
        reference.update(gt, naive_label(cams, 0.4, gt.shape))
    np.testing.assert_array_equal(result.confusion.counts, reference.counts)
    assert result.miou == pytest.approx(100 * reference.miou())


def test_label_pngs_palette_and_grayscale(tmp_path):
    gt = np.array([[0, 0, 15], [15, 255, 0]], np.uint8)
    save_png(tmp_path / "voc" / "SegmentationClass" / "x.png", gt)
    save_png(tmp_path / "voc" / "SegmentationClass" / "y.png", gt)
    save_png(tmp_path / "pred" / "x.png", np.array([[0, 15, 15], [15, 15, 0]]), palette=True)
    save_png(tmp_path / "pred" / "y.png", np.array([[0, 0, 15], [255, 0, 0]]), palette=False)
    result = evaluate_labels(tmp_path / "pred", tmp_path / "voc", ["x", "y"])
    # background: TP 2+3, FN 1 (x); person: TP 2+1, FP 1 (x), FN 1 (the 255 predicted on y)
    assert result.per_class["background"]["iou"] == pytest.approx(100 * 5 / 6)
    assert result.per_class["person"]["iou"] == pytest.approx(100 * 3 / 5)
    assert result.best_threshold is None and result.per_threshold == {}
    np.testing.assert_array_equal(result.per_image_intersection[:, [0, 15]], [[2, 2], [3, 1]])


@pytest.mark.parametrize("which", ["truth", "prediction"])
@pytest.mark.parametrize("kind", ["gray JPEG", "RGB PNG", "16-bit PNG"])
def test_a_label_png_of_jpeg_data_or_colours_is_refused_naming_it(which, kind, tmp_path, capsys):
    """A .png label file that holds JPEG data (lossy values, not labels), RGB colours or 16-bit values (said as
    'mode I;16' only, before) is not scored."""
    gt = np.array([[0, 0, 15], [15, 255, 0]], np.uint8)
    save_png(tmp_path / "voc" / "SegmentationClass" / "x.png", gt)
    save_png(tmp_path / "pred" / "x.png", gt)
    bad = (tmp_path / "voc" / "SegmentationClass" if which == "truth" else tmp_path / "pred") / "x.png"
    if kind == "gray JPEG":
        Image.fromarray(gt, mode="L").save(bad, format="JPEG")
    elif kind == "RGB PNG":
        Image.fromarray(np.stack([gt] * 3, axis=-1)).save(bad, format="PNG")
    else:
        Image.fromarray(gt.astype(np.uint16)).save(bad, format="PNG")
    expected = {"gray JPEG": "JPEG data", "RGB PNG": r"a colour image \(mode RGB: colours, not class indices\)",
                "16-bit PNG": r"must be 8-bit palette or grayscale \(one class index per pixel\), got a 16-bit image"}
    with pytest.raises(DataError, match=expected[kind]):
        evaluate_labels(tmp_path / "pred", tmp_path / "voc", ["x"])
    (tmp_path / "l.txt").write_text("x\n")
    assert main(["eval", "--pred", str(tmp_path / "pred"), "--voc-root", str(tmp_path / "voc"),
                 "--list", str(tmp_path / "l.txt")]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and len(err.strip().splitlines()) == 1


def test_cli_end_to_end_with_json(tmp_path, capsys):
    voc, pred, _ = make_dataset(tmp_path)
    listing = tmp_path / "val.txt"
    listing.write_bytes(b"# val split\r\n/JPEGImages/a.jpg /SegmentationClassAug/a.png\r\n\r\nb\r\nc\r\n")
    out = tmp_path / "out" / "scores.json"
    rc = main(["eval", "--pred", str(pred), "--voc-root", str(voc), "--list", str(listing),
               "--thresholds", "0:0.9:0.1", "--json", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "best threshold" in text and "aeroplane" in text and "images: 3" in text
    data = json.loads(out.read_text())
    assert list(data["per_threshold"]) == [f"{t / 10:.2f}" for t in range(10)]
    assert data["miou"] == pytest.approx(max(data["per_threshold"].values()))
    assert data["per_threshold"][f"{data['best_threshold']:.2f}"] == data["miou"]
    assert data["num_images"] == 3 and len(data["per_class"]) == 21
    assert set(data["per_class"]["background"]) == {"iou", "precision", "recall"}
    assert set(data["foreground"]) == {"share", "truth_share", "recall", "precision"}
    assert "foreground (any class vs background):" in text
    assert list(out.parent.iterdir()) == [out]  # no temporary file left behind


@pytest.mark.parametrize("target", ["list", "prediction", "truth", "other json", "folder", "device", "pipe"])
def test_json_never_replaces_an_input_or_a_foreign_file(target, tmp_path, capsys):
    voc, pred, _ = make_dataset(tmp_path)
    listing = tmp_path / "val.txt"
    listing.write_text("a\nb\n")
    (tmp_path / "other.json").write_text('{"miou": 1}')
    if target == "pipe":
        os.mkfifo(tmp_path / "fifo")  # reading it would wait for a writer for ever
    path = {"list": listing, "prediction": pred / "a.npy", "truth": voc / "SegmentationClass" / "a.png",
            "other json": tmp_path / "other.json", "folder": pred, "device": Path(os.devnull),
            "pipe": tmp_path / "fifo"}[target]
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    args = ["eval", "--pred", str(pred), "--voc-root", str(voc), "--list", str(listing), "--json", str(path)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"--json {path} " + {"folder": "is a folder", "device": "is not a regular file", "pipe": "is not a regular "
                                "file"}.get(target, "exists and is not a file of infercam eval") in err
    assert Path(os.devnull).is_char_device()
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    scores = tmp_path / "scores.json"
    scores.write_bytes(b"")  # an empty file (mktemp's) is taken
    assert main([*args[:-1], str(scores)]) == 0 and main([*args[:-1], str(scores)]) == 0  # its own file: replaced


def test_a_missing_prediction_folder_a_piped_list_and_nothing_left_to_score(tmp_path, capsys):
    voc, pred, _ = make_dataset(tmp_path)
    listing = tmp_path / "val.txt"
    listing.write_text("a\nb\n")
    base = ["eval", "--voc-root", str(voc), "--list", str(listing)]
    assert main([*base, "--pred", str(tmp_path / "nope")]) == 2
    assert f"prediction folder not found: {tmp_path / 'nope'}" in capsys.readouterr().err
    assert main([*base, "--pred", str(listing)]) == 2
    assert f"--pred {listing} is a file" in capsys.readouterr().err
    every = [a for name in VOC_CLASSES for a in ("--ignore-class", name)]
    assert main([*base, "--pred", str(pred), *every[2:]]) == 0  # one class left: scored
    capsys.readouterr()
    assert main([*base, "--pred", str(pred), *every]) == 2
    assert "leave no class but background to score" in capsys.readouterr().err
    read, write = os.pipe()  # bash's --list <(...)
    os.write(write, b"a\n")
    os.close(write)
    try:
        assert main(["eval", "--voc-root", str(voc), "--list", f"/dev/fd/{read}", "--pred", str(pred)]) == 0
    finally:
        os.close(read)
    assert "images: 1" in capsys.readouterr().out


def test_missing_prediction_error_and_skip(tmp_path, capsys):
    voc, pred, _ = make_dataset(tmp_path)
    (pred / "b.npy").unlink()
    with pytest.raises(DataError, match="b.npy"):
        evaluate_cams(pred, voc, ["a", "b", "c"])
    assert evaluate_cams(pred, voc, ["a", "b", "c"], missing="skip").num_skipped == 1
    listing = tmp_path / "val.txt"
    listing.write_text("a\nb\n")
    assert main(["eval", "--pred", str(pred), "--voc-root", str(voc), "--list", str(listing)]) == 2
    assert "b.npy" in capsys.readouterr().err


def test_a_damaged_prediction_left_out_is_said_in_the_result_not_printed_by_the_library(tmp_path, capsys):
    voc, pred, _ = make_dataset(tmp_path)
    (pred / "b.npy").write_bytes(b"not a numpy file")
    result = evaluate_cams(pred, voc, ["a", "b", "c"], missing="skip")
    assert result.num_skipped == 1 and result.names == ["a", "c"]
    assert len(result.notes) == 1 and "b.npy" in result.notes[0]
    assert capsys.readouterr().err == ""  # the eval and report commands print the notes, the API does not
    assert result.to_dict()["notes"] == result.notes


def test_an_ignored_class_takes_no_part_in_the_scores(tmp_path):
    gt = np.array([[0, 15, 1, 1]], np.uint8)  # person (VOC index 14) is ignored
    save_png(tmp_path / "voc" / "SegmentationClass" / "x.png", gt)
    save_png(tmp_path / "labels" / "x.png", np.array([[15, 15, 1, 1]]), palette=True)
    result = evaluate_labels(tmp_path / "labels", tmp_path / "voc", ["x"], ignored=[14])
    # the person predicted on background is a miss for background, not a false positive for person
    assert result.per_class["background"]["iou"] == 0.0 and result.per_class["aeroplane"]["iou"] == 100.0
    assert np.isnan(result.per_class["person"]["iou"]) and result.miou == pytest.approx(50.0)
    (tmp_path / "cams").mkdir()
    np.save(tmp_path / "cams" / "x.npy", {14: np.array([[0.9, 0.9, 0.0, 0.0]], np.float32),
                                          0: np.array([[0.0, 0.0, 0.8, 0.8]], np.float32)})
    cams = evaluate_cams(tmp_path / "cams", tmp_path / "voc", ["x"], thresholds=[0.5], ignored=[14])
    # the person map is dropped: its pixels fall to background, which is right on the first pixel
    assert cams.miou == pytest.approx(100.0) and np.isnan(cams.per_class["person"]["iou"])


def test_a_cam_map_that_is_not_finite_is_refused_in_memory_too():
    gt = np.zeros((2, 2), np.uint8)
    bad = {3: np.array([[0.5, np.nan], [0.1, 0.2]], np.float32)}
    with pytest.raises(DataError, match="class 3 holds NaN"):
        cam_to_label(bad, 0.3)
    with pytest.raises(DataError, match="class 3 holds NaN"):
        evaluate_cam_dicts([("x", gt, bad)])


def test_a_threshold_that_is_not_a_finite_number_is_refused_not_taken_as_all_background():
    gt, cams = np.zeros((2, 2), np.uint8), {3: np.full((2, 2), 0.5, np.float32)}
    with pytest.raises(ValueError, match="finite number"):
        cam_to_label(cams, float("nan"))
    with pytest.raises(ValueError, match=r"finite numbers, got \[0.1, nan\]"):
        evaluate_cam_dicts([("x", gt, cams)], [0.1, float("nan")])


def test_shape_mismatch_names_the_file_and_skip_leaves_it_out_with_the_reason(tmp_path):
    voc, pred, _ = make_dataset(tmp_path)
    np.save(pred / "a.npy", {3: np.zeros((5, 6), np.float32)})
    with pytest.raises(DataError, match=r"a\.npy.*5x6.*6x5"):
        evaluate_cams(pred, voc, ["a"])
    result = evaluate_cams(pred, voc, ["a", "b"], missing="skip")
    assert result.names == ["b"] and result.num_skipped == 1
    assert len(result.notes) == 1 and "5x6" in result.notes[0]
    (voc / "SegmentationClass" / "b.png").write_bytes(b"not a png")  # a damaged ground truth: the same
    with pytest.raises(DataError, match="b.png"):
        evaluate_cams(pred, voc, ["c", "b"])
    result = evaluate_cams(pred, voc, ["a", "b", "c"], missing="skip")
    assert result.names == ["c"] and result.num_skipped == 2 and "b.png" in result.notes[1]


@pytest.mark.parametrize("args", [["--threshold", "nan"], ["--threshold", "1.5"], ["--threshold", "-0.1"],
                                  ["--threshold", "x"], ["--thresholds", "0:1.5:0.1"], ["--thresholds=-1:0.5:0.1"],
                                  ["--thresholds", "0:inf:0.1"]])
def test_eval_refuses_thresholds_outside_the_unit_interval(tmp_path, capsys, args):
    from infercam.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["eval", "--pred", str(tmp_path), "--voc-root", str(tmp_path), "--list", str(tmp_path / "l.txt"), *args])
    assert exc.value.code == 2 and "[0, 1]" in capsys.readouterr().err


def test_eval_refuses_a_sweep_too_fine_to_hold_before_allocating_it(tmp_path, capsys):
    from infercam.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["eval", "--pred", str(tmp_path), "--voc-root", str(tmp_path), "--list", str(tmp_path / "l.txt"),
              "--thresholds", "0:1:1e-9"])
    assert exc.value.code == 2 and "thresholds in 0.0:1.0:1e-09: at most 1001" in capsys.readouterr().err
    assert len(threshold_range(0, 1, 0.001)) == 1001  # the finest sweep taken


def test_paired_mean_bootstrap_resamples_whole_groups():
    from infercam.evaluation.stats import paired_mean_bootstrap

    a = np.array([0.5, 0.6, 0.7, 0.4])
    shifted = paired_mean_bootstrap(a, a + 0.1, groups=["p", "p", "q", "r"])
    assert shifted.difference == pytest.approx(0.1) and shifted.low == pytest.approx(0.1)
    assert shifted.high == pytest.approx(0.1)
    # one photo gains 0.2 on both its objects, another loses 0.2 on its one object, a third is equal: the mean
    # over the objects is +0.05, and resamples of the photos range from all-loss to all-gain (0 lies inside)
    b = a + np.array([0.2, 0.2, -0.2, 0.0])
    mixed = paired_mean_bootstrap(a, b, groups=[0, 0, 1, 2], samples=4000)
    assert mixed.difference == pytest.approx(0.05)
    assert mixed.low < 0 < mixed.high and -0.2 - 1e-9 <= mixed.low and mixed.high <= 0.2 + 1e-9
    # without groups every item is its own group; the interval is reproducible for a seed
    assert paired_mean_bootstrap(a, b) == paired_mean_bootstrap(a, b)
    with pytest.raises(ValueError, match="no items"):
        paired_mean_bootstrap([], [])
    with pytest.raises(ValueError, match="equal 1-d arrays"):
        paired_mean_bootstrap(a, a[:3])


@pytest.mark.parametrize("keys, problem", [
    (np.array(["a", "b"]), "got 'a'"), (np.array([0.0, 1.5]), "got 0.0"), (np.array([True, False]), "got True"),
    (np.array([-1, 2]), "got -1"), (np.array([2, 2]), "class 2 appears more than once")])
def test_irn_keys_that_are_not_distinct_class_indices_are_refused_naming_the_file(tmp_path, capsys, keys, problem):
    voc, pred, _ = make_dataset(tmp_path)
    np.save(pred / "b.npy", {"keys": keys, "high_res": np.zeros((2, 6, 5), np.float32)})
    listing = tmp_path / "val.txt"
    listing.write_text("a\nb\n")
    assert main(["eval", "--pred", str(pred), "--voc-root", str(voc), "--list", str(listing)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"infercam eval: error: {pred / 'b.npy'}: ") and problem in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("key", [True, -1])
def test_psa_classes_that_are_bools_or_negative_are_refused(tmp_path, key):
    np.save(tmp_path / "x.npy", {key: np.zeros((2, 2), np.float32)})
    with pytest.raises(DataError, match=f"x.npy: CAM classes must be whole numbers >= 0, got {key}"):
        load_cams(tmp_path / "x.npy")


def test_a_damaged_ground_truth_file_is_named_as_ground_truth(tmp_path):
    voc, pred, _ = make_dataset(tmp_path)
    (voc / "SegmentationClass" / "b.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"^ground truth: cannot read label PNG .*b\.png"):
        evaluate_cams(pred, voc, ["a", "b"])
    result = evaluate_cams(pred, voc, ["a", "b"], missing="skip")
    assert result.notes and result.notes[0].startswith("ground truth: ")


def test_eval_says_when_cams_are_not_normalised_to_the_thresholds_range(tmp_path, capsys):
    voc, pred, truth = make_dataset(tmp_path)
    listing = tmp_path / "val.txt"
    listing.write_text("a\nb\nc\n")
    args = ["eval", "--pred", str(pred), "--voc-root", str(voc), "--list", str(listing)]
    assert main(args) == 0 and "not normalised" not in capsys.readouterr().err
    for name, (_, cams) in truth.items():  # raw CAMs, as a tool that does not divide by the maximum writes them
        np.save(pred / f"{name}.npy", {c: 30 * m for c, m in cams.items()})
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "the CAMs reach" in err and "well above 1: they are not normalised" in err
    assert evaluate_cams(pred, voc, list(truth)).cam_peak > 1
    for name, (_, cams) in truth.items():  # normalised, then resized with cubic interpolation: a slight overshoot
        np.save(pred / f"{name}.npy", {c: 1.1 * m for c, m in cams.items()})
    assert main(args) == 0 and "not normalised" not in capsys.readouterr().err


def test_psas_crf_output_given_as_cams_is_refused_not_scored_one_class_off(tmp_path, capsys):
    voc, pred, truth = make_dataset(tmp_path)
    listing = tmp_path / "val.txt"
    listing.write_text("a\n")
    gt, _ = truth["a"]
    rng = np.random.default_rng(0)
    scores = rng.random((2,) + gt.shape).astype(np.float32)
    probs = scores / scores.sum(0)  # psa's _crf_with_alpha: {0: background, c + 1: class c}, per-pixel probabilities
    np.save(pred / "a.npy", {0: probs[0], 5: probs[1]})
    assert main(["eval", "--pred", str(pred), "--voc-root", str(voc), "--list", str(listing)]) == 2
    err = capsys.readouterr().err
    assert f"{pred / 'a.npy'} is psa's CRF output" in err and "give the --out_cam folder" in err
    np.save(pred / "a.npy", {0: scores[0], 5: scores[1]})  # CAMs of classes 0 and 5: scored
    assert main(["eval", "--pred", str(pred), "--voc-root", str(voc), "--list", str(listing)]) == 0


def test_a_voc_root_without_ground_truth_is_refused_as_such_not_image_by_image(tmp_path, capsys):
    voc, pred, _ = make_dataset(tmp_path)
    listing = tmp_path / "val.txt"
    listing.write_text("a\nb\n")
    for root, message in ((tmp_path / "nope", f"data set folder not found: {tmp_path / 'nope'}"),
                          (tmp_path, f"no SegmentationClass/ folder in {tmp_path}: eval needs its ground truth")):
        for missing in ("error", "skip"):
            assert main(["eval", "--pred", str(pred), "--voc-root", str(root), "--list", str(listing),
                         "--missing", missing]) == 2
            err = capsys.readouterr().err
            assert message in err and "--missing skip" not in err


@pytest.mark.parametrize("names, ignored, message", [
    ("val.txt", (), "not one string"), ("a", (), "not one string"),
    (["a"], ["person"], r"0..19 \(person: 14\), got \['person'\]"), (["a"], [20], r"got \[20\]"),
])
def test_the_file_scoring_api_refuses_names_given_as_one_string_and_classes_that_are_no_voc_index(
        names, ignored, message, tmp_path):
    voc, pred, _ = make_dataset(tmp_path)
    for score in (evaluate_cams, evaluate_labels):
        with pytest.raises(ValueError, match=message):
            score(pred, voc, names, ignored=ignored)


def test_ground_truth_that_is_all_ignore_is_refused_not_scored_as_nan(tmp_path, capsys):
    voc, pred, truth = make_dataset(tmp_path)
    for name, (gt, _) in truth.items():  # e.g. binary masks 0/255 of a tool's own: here all 255
        save_png(voc / "SegmentationClass" / f"{name}.png", np.full_like(gt, 255))
    listing = tmp_path / "val.txt"
    listing.write_text("a\nb\nc\n")
    for kind in ("cam", "label"):
        if kind == "label":
            for name, (gt, _) in truth.items():
                save_png(pred / f"{name}.png", gt)
        assert main(["eval", "--pred", str(pred), "--voc-root", str(voc), "--list", str(listing), "--format",
                     kind]) == 2
        assert ("infercam eval: error: ground truth: every pixel of the 3 images is 255 (ignore): nothing to score"
                in capsys.readouterr().err)


def test_when_missing_skip_leaves_every_image_out_the_error_says_why(tmp_path, capsys):
    voc, pred, truth = make_dataset(tmp_path)
    listing = tmp_path / "val.txt"
    listing.write_text("a\nb\n")
    (pred / "a.npy").write_bytes(b"")  # damaged
    np.save(pred / "b.npy", {0: np.zeros((3, 3), np.float32)})  # of another image size
    assert main(["eval", "--pred", str(pred), "--voc-root", str(voc), "--list", str(listing), "--missing", "skip"]) == 2
    err = capsys.readouterr().err
    assert "every image was skipped (2 images)" in err and f"(the first: cannot read CAM file {pred / 'a.npy'}" in err


def test_a_json_path_under_a_file_is_refused_before_scoring(tmp_path, capsys):
    voc, pred, _ = make_dataset(tmp_path)
    listing = tmp_path / "val.txt"
    listing.write_text("a\n")
    assert main(["eval", "--pred", str(pred), "--voc-root", str(voc), "--list", str(listing),
                 "--json", str(listing / "scores.json")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and f"JSON output folder {listing} exists and is not a folder" in err


def test_the_class_map_note_is_not_given_when_ignore_class_leaves_its_classes_out(tmp_path, capsys):
    """CAMs made with --class-map imagenet-voc, scored with --ignore-class person (what the class map leaves out),
    were still told to add --class-map to leave the classes it does not cover out of the scores."""
    voc, pred, _ = make_dataset(tmp_path)
    (pred / "infercam-run.json").write_text(json.dumps({"config": {"command": "cam", "class_map": "imagenet-voc"}}))
    listing = tmp_path / "val.txt"
    listing.write_text("a\nb\nc\n")
    args = ["eval", "--pred", str(pred), "--voc-root", str(voc), "--list", str(listing)]
    assert main(args) == 0
    assert "were made with --class-map imagenet-voc" in capsys.readouterr().err
    assert main([*args, "--ignore-class", "person"]) == 0
    assert "--class-map" not in capsys.readouterr().err


def test_missing_skip_names_the_images_left_out_for_a_missing_file(tmp_path, capsys):
    """Not only how many: the first few images without a prediction (then how many more), and those without ground
    truth, so that they can be found."""
    voc, pred, _ = make_dataset(tmp_path)
    (voc / "SegmentationClass" / "c.png").unlink()
    listing = tmp_path / "val.txt"
    listing.write_text("a\nb\nc\n" + "".join(f"x{i}\n" for i in range(1, 8)))
    assert main(["eval", "--pred", str(pred), "--voc-root", str(voc), "--list", str(listing), "--missing", "skip",
                 "--threshold", "0.3"]) == 0
    out, err = capsys.readouterr()
    assert "images: 2 (skipped 8)" in out
    assert ("infercam eval: note: prediction not found for 7 images: x1, x2, x3, x4, x5 and 2 more; left out"
            in err.splitlines())
    assert "infercam eval: note: ground truth not found for 1 image: c; left out" in err.splitlines()
    result = evaluate_cams(pred, voc, ["a", "x1", "c"], missing="skip")
    assert result.not_found == {"prediction": ["x1"], "ground truth": ["c"]} and result.num_skipped == 2
    assert result.to_dict()["not_found"] == result.not_found
