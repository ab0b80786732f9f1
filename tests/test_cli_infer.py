"""The cam / infer / split commands end to end on a small VOC-layout folder; files read back."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from infercam import InferCam
from infercam.cli import main
from infercam.data.images import load_image
from infercam.io import load_cams
from tiny import TinyCamNet


def common(voc, weights):
    return ["--voc-root", str(voc), "--list", str(voc / "ImageSets/Segmentation/train.txt"),
            "--network", "tiny:TinyCamNet", "--weights", str(weights), "--no-progress"]


def test_infer_writes_psa_files_equal_to_the_api(tiny_voc, tiny_weights, tmp_path):
    out = tmp_path / "cams"
    assert main(["infer", *common(tiny_voc, tiny_weights), "--out-cam", str(out)]) == 0
    engine = InferCam(TinyCamNet())
    for name, labels in (("img_a", [0]), ("img_b", [3, 7]), ("img_c", [1, 2, 5])):
        cams = np.load(out / f"{name}.npy", allow_pickle=True).item()
        assert sorted(cams) == labels
        expected = engine(load_image(tiny_voc / "JPEGImages" / f"{name}.jpg"), labels).cams
        for c in labels:
            assert cams[c].dtype == np.float32
            np.testing.assert_allclose(cams[c], expected[c], atol=1e-6)
    manifest = json.loads((out / "infercam-run.json").read_text())
    assert manifest["totals"] == {"done": 4, "skipped": 0, "failed": 0}
    assert manifest["config"]["mode"] == "default"
    assert not {"func", "sharded"} & set(manifest["config"])  # how the CLI dispatches is no option of the run


def test_irn_format_heatmaps_and_splits(tiny_voc, tiny_weights, tmp_path):
    out, heat, splits = tmp_path / "irn", tmp_path / "heat", tmp_path / "splits"
    args = ["infer", *common(tiny_voc, tiny_weights), "--out-cam", str(out), "--format", "irn",
            "--heatmap", str(heat), "--save-splits", str(splits), "--mode", "reference"]
    assert main(args) == 0
    obj = np.load(out / "img_b.npy", allow_pickle=True).item()
    assert list(obj["keys"]) == [3, 7] and obj["high_res"].shape == (2, 48, 52)
    assert sorted(load_cams(out / "img_b.npy")) == [3, 7]
    assert (heat / "img_b_boat.png").exists() and (heat / "img_b_cat.png").exists()
    boxes = json.loads((splits / "img_b.json").read_text())["boxes"]
    for k, (top, left, bottom, right) in enumerate(boxes, start=1):
        assert load_image(splits / f"img_b_{k}.jpg").shape == (bottom - top, right - left, 3)


def test_baseline_command(tiny_voc, tiny_weights, tmp_path):
    out = tmp_path / "base"
    assert main(["cam", *common(tiny_voc, tiny_weights), "--out-cam", str(out), "--scales", "1.0,0.5"]) == 0
    cams = load_cams(out / "img_d.npy")
    expected = InferCam(TinyCamNet(), scales=(1.0, 0.5)).baseline(load_image(tiny_voc / "JPEGImages/img_d.jpg"), [14])
    np.testing.assert_allclose(cams[14], expected[14], atol=1e-6)


def test_two_step_flow_equals_one_command_up_to_jpeg(tiny_voc, tiny_weights, tmp_path):
    splits, one, two = tmp_path / "splits", tmp_path / "one", tmp_path / "two"
    assert main(["split", *common(tiny_voc, tiny_weights), "--out", str(splits)]) == 0
    assert {p.name for p in splits.glob("img_a*")} == {f"img_a_{k}.jpg" for k in range(1, 5)} | {"img_a.json"}
    assert main(["infer", *common(tiny_voc, tiny_weights), "--split-path", str(splits), "--out-cam", str(two)]) == 0
    assert main(["infer", *common(tiny_voc, tiny_weights), "--out-cam", str(one)]) == 0
    for name in ("img_a", "img_b"):
        a, b = load_cams(one / f"{name}.npy"), load_cams(two / f"{name}.npy")
        for c in a:  # same geometry, patches differ only by JPEG re-encoding
            assert a[c].shape == b[c].shape
            assert np.corrcoef(a[c].ravel(), b[c].ravel())[0, 1] > 0.9


def test_split_help_says_which_modes_cut_corner_patches(tiny_voc, tiny_weights, tmp_path, capsys):
    """split's description promised "the four overlapping corner patches", but its default mode writes the whole
    image four times (the authors' flow is --mode fixed or reference)."""
    splits = tmp_path / "splits"
    assert main(["split", *common(tiny_voc, tiny_weights), "--out", str(splits)]) == 0
    boxes = json.loads((splits / "img_a.json").read_text())["boxes"]
    assert all(box == boxes[0] for box in boxes)  # the default does not cut
    with pytest.raises(SystemExit):
        main(["split", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "the overlapping corner patches with --mode fixed or reference" in text
    assert "the default and evidence modes do not cut, so each of their four patches is the whole image" in text


def test_split_path_patches_too_small_for_every_scale_fail_their_image_in_one_line(tiny_voc, tiny_weights, tmp_path,
                                                                                     capsys):
    splits = tmp_path / "splits"
    assert main(["split", *common(tiny_voc, tiny_weights), "--mode", "fixed", "--out", str(splits)]) == 0
    patch = splits / "img_a_1.jpg"
    Image.fromarray(load_image(patch)[:3, :3]).save(patch)  # a 3 px patch: 6 px at the largest scale, 2
    capsys.readouterr()
    assert main(["infer", *common(tiny_voc, tiny_weights), "--mode", "fixed", "--split-path", str(splits),
                 "--out-cam", str(tmp_path / "fixed")]) == 1
    err = capsys.readouterr().err
    assert "3 done, 0 skipped, 1 failed" in err and "Traceback" not in err
    assert ("failed img_a: every scale makes patch 1 (top-left, 3x3 px) of this 56x40 image under the networks' "
            "minimum input of 8 px (their output stride; scale 2 makes it 6x6 px)") in err
    (splits / "infercam-run.json").unlink()  # as a folder the authors' code cut: no record of the mode
    assert main(["infer", *common(tiny_voc, tiny_weights), "--mode", "reference", "--split-path", str(splits),
                 "--out-cam", str(tmp_path / "reference")]) == 0  # the authors' two-step flow runs any patch


def test_split_path_cut_by_another_mode_is_refused(tiny_voc, tiny_weights, tmp_path, capsys):
    """infer --split-path refined whatever patches it found: the fixed mode's corners under the default (which
    does not cut), or the default's four whole images as corners under --mode fixed, without a word."""
    splits, out = tmp_path / "splits", tmp_path / "cams"
    assert main(["split", *common(tiny_voc, tiny_weights), "--mode", "fixed", "--out", str(splits)]) == 0
    capsys.readouterr()
    for mode in ("default", "reference"):
        assert main(["infer", *common(tiny_voc, tiny_weights), "--mode", mode, "--split-path", str(splits),
                     "--out-cam", str(out)]) == 2
        assert capsys.readouterr().err.strip() == (
            f"infercam infer: error: the patches in {splits} were cut with --mode fixed, not {mode}: refine them "
            "with the --mode that cut them (or split again)")
        assert not out.exists()
    assert main(["infer", *common(tiny_voc, tiny_weights), "--mode", "fixed", "--split-path", str(splits),
                 "--out-cam", str(out)]) == 0


def test_split_path_cut_by_a_mode_that_cuts_alike_is_taken(tiny_voc, tiny_weights, tmp_path, capsys):
    """default and evidence both keep the whole image: split's default patches refined under --mode evidence were
    refused ('cut with --mode default, not evidence'), though they are the very patches evidence refines."""
    splits = tmp_path / "splits"
    assert main(["split", *common(tiny_voc, tiny_weights), "--out", str(splits)]) == 0
    assert main(["infer", *common(tiny_voc, tiny_weights), "--mode", "evidence", "--split-path", str(splits),
                 "--out-cam", str(tmp_path / "cams")]) == 0
    assert "error" not in capsys.readouterr().err


def test_split_path_saved_by_infer_with_another_mode_is_refused(tiny_voc, tiny_weights, tmp_path, capsys):
    """Patches written by infer --save-splits are a split folder too: its run's mode is checked as split's is."""
    splits, out = tmp_path / "splits", tmp_path / "cams"
    assert main(["infer", *common(tiny_voc, tiny_weights), "--mode", "fixed", "--save-splits", str(splits),
                 "--out-cam", str(tmp_path / "fixed")]) == 0
    capsys.readouterr()
    assert main(["infer", *common(tiny_voc, tiny_weights), "--split-path", str(splits), "--out-cam", str(out)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"infercam infer: error: the patches in {splits} were cut with --mode fixed, not default: refine them with "
        "the --mode that cut them (or split again)")
    assert not out.exists()
    # an infer run's own output folder given as --split-path is not taken for its patches' record
    assert main(["infer", *common(tiny_voc, tiny_weights), "--split-path", str(tmp_path / "fixed"),
                 "--out-cam", str(out)]) == 1


def test_rerun_resumes_and_overwrite_recomputes(tiny_voc, tiny_weights, tmp_path, capsys):
    out = tmp_path / "cams"
    args = ["infer", *common(tiny_voc, tiny_weights), "--out-cam", str(out)]
    assert main(args) == 0
    (out / "img_c.npy").unlink()
    capsys.readouterr()
    assert main(args) == 0
    assert "1 done, 3 skipped, 0 failed" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0
    assert "4 done, 0 skipped" in capsys.readouterr().err


def test_the_mode_s_own_stop_fraction_given_explicitly_resumes_the_same_run(tiny_voc, tiny_weights, tmp_path, capsys):
    """A run without --stop-fraction, rerun with the default mode's own value (0) given, was refused as another
    run ('stop_fraction: None -> 0.0'); another value still is."""
    out = tmp_path / "cams"
    args = ["infer", *common(tiny_voc, tiny_weights), "--out-cam", str(out)]
    assert main(args) == 0
    (out / "img_c.npy").unlink()
    capsys.readouterr()
    assert main([*args, "--stop-fraction", "0"]) == 0
    assert "1 done, 3 skipped, 0 failed" in capsys.readouterr().err
    assert main([*args, "--stop-fraction", "0.02"]) == 2
    assert "stop_fraction" in capsys.readouterr().err


def test_checkpoint_that_does_not_fit_lists_the_keys(tiny_voc, tmp_path, capsys):
    bad = tmp_path / "bad.pth"
    state = TinyCamNet().state_dict()
    state["fc.weight"] = torch.zeros(20, 8, 1, 1)
    state["extra.weight"] = torch.zeros(1)
    del state["conv.weight"]
    torch.save({"state_dict": state}, bad)
    code = main(["infer", *common(tiny_voc, bad), "--out-cam", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2
    assert "missing keys" in err and "conv.weight" in err
    assert "unexpected keys" in err and "extra.weight" in err
    assert "fc.weight: [20, 8, 1, 1] vs [20, 16, 1, 1]" in err
    assert not list((tmp_path / "o").glob("*.npy"))


def test_unknown_network_lists_the_known_ones(tiny_voc, tmp_path, capsys):
    code = main(["infer", "--voc-root", str(tiny_voc), "--network", "resnet1000", "--out-cam", str(tmp_path / "o")])
    assert code == 2
    assert "unknown network 'resnet1000'" in capsys.readouterr().err


@pytest.mark.parametrize("scales", ["", "1.0,-0.5", "0", "a,b"])
def test_invalid_scales_are_refused(tiny_voc, tiny_weights, scales, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["infer", *common(tiny_voc, tiny_weights), "--out-cam", "x", "--scales", scales])
    assert exc.value.code == 2
    assert "scales" in capsys.readouterr().err


def test_help_is_complete(capsys):
    for cmd in ("cam", "infer", "split"):
        with pytest.raises(SystemExit):
            main([cmd, "--help"])
        text = capsys.readouterr().out
        assert "--voc-root" in text and "--network" in text and "--device" in text


@pytest.mark.parametrize("spec", [":resnet50", ".models:x"])
def test_a_plug_in_spec_with_an_empty_or_relative_module_is_one_line(spec, tiny_voc, tmp_path, capsys):
    code = main(["infer", "--voc-root", str(tiny_voc), "--network", spec, "--out-cam", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "cannot import plug-in network module" in err and "Traceback" not in err


def _png_header_claiming(path, width, height):
    """A PNG whose header claims ``width`` x ``height`` (its data is a few bytes)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 10))
                     + chunk(b"IEND", b""))


@pytest.mark.parametrize("width, height", [(20000, 10000), (12000, 9000)])  # beyond PIL's error / warning bound
def test_an_image_claiming_a_huge_size_fails_alone_with_one_line(width, height, tiny_voc, tiny_weights, tmp_path,
                                                                 capsys):
    _png_header_claiming(tiny_voc / "JPEGImages" / "img_d.jpg", width, height)
    code = main(["cam", "--voc-root", str(tiny_voc), "--network", "tiny:TinyCamNet", "--weights", str(tiny_weights),
                 "--out-cam", str(tmp_path / "o"), "--no-progress", "--workers", "1"])
    err = capsys.readouterr().err
    assert code == 1 and "3 done, 0 skipped, 1 failed" in err and "image too large to decode safely" in err
    assert "Traceback" not in err and "DecompressionBombWarning" not in err


def test_a_class_map_the_network_does_not_fit_is_refused_before_any_image(tiny_voc, tiny_weights, tmp_path, capsys):
    out = tmp_path / "o"
    code = main(["cam", "--voc-root", str(tiny_voc), "--network", "tiny:TinyCamNet", "--weights", str(tiny_weights),
                 "--class-map", "imagenet-voc", "--out-cam", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "class map imagenet-voc needs an ImageNet-1k network (it uses classes up to 914), but the network has 20" in err
    assert not out.exists()


def test_a_record_of_the_mode_s_own_stop_fraction_still_resumes(tiny_voc, tiny_weights, tmp_path, capsys):
    """A run made with --stop-fraction 0 before the mode's own value counted as not given recorded 0.0: rerun with
    the same command, it was refused as another run ('stop_fraction: 0.0 -> None')."""
    out = tmp_path / "cams"
    args = ["infer", *common(tiny_voc, tiny_weights), "--out-cam", str(out), "--stop-fraction", "0"]
    assert main(args) == 0
    manifest = out / "infercam-run.json"
    record = json.loads(manifest.read_text())
    record["config"]["stop_fraction"] = 0.0  # as the earlier version recorded it
    manifest.write_text(json.dumps(record))
    (out / "img_c.npy").unlink()
    capsys.readouterr()
    assert main(args) == 0
    assert "1 done, 3 skipped, 0 failed" in capsys.readouterr().err
