"""Pseudo labels: threshold, dense CRF (psa's parameters and confident labels), random walk; the CLI."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from infercam.cli import build_parser, main
from infercam.commands.pseudo import check_method_options
from infercam.data.voc import read_label_png
from infercam.evaluation import cam_to_label
from infercam.errors import InferCamError
from infercam.io import load_cams
from infercam.models.pixel_pairs import dense_affinity, pair_indices
from infercam.pseudo import (
    PSA_CRF, PSA_HIGH_ALPHA, PSA_LOW_ALPHA, PSA_RW, PSA_THRESHOLD, Background, RandomWalkParams, combine_confident,
    confident_labels, crf_labels, random_walk, rw_labels, threshold_labels, transition_matrix,
)
from seg_voc import make_seg_voc

needs_crf = pytest.mark.skipif(importlib.util.find_spec("pydensecrf") is None, reason="pydensecrf2 not installed")


def test_psa_defaults():
    assert (PSA_CRF.iterations, PSA_CRF.gaussian_sxy, PSA_CRF.gaussian_compat) == (10, 3, 3)
    assert (PSA_CRF.bilateral_sxy, PSA_CRF.bilateral_srgb, PSA_CRF.bilateral_compat) == (80, 13, 10)
    assert (PSA_LOW_ALPHA, PSA_HIGH_ALPHA) == (4, 32)
    assert (PSA_RW.beta, PSA_RW.logt, PSA_RW.alpha) == (8, 8, 16)
    assert PSA_THRESHOLD == 0.2
    args = build_parser().parse_args(["pseudo", "--cam", "c", "--voc-root", "v", "--method", "rw", "--out", "o"])
    check_method_options(args)  # the defaults, filled in once the method is known
    assert (args.beta, args.logt, args.low_alpha, args.high_alpha) == (8, 8, 4, 32)
    assert args.aff_network == "demo" and args.device == "cpu"


def test_threshold_fixed_and_alpha():
    cams = {2: np.array([[0.1, 0.5, 0.3]], np.float32), 5: np.array([[0.05, 0.2, 0.3]], np.float32)}
    # Fixed t: the top class above t, else background; a tie goes to background; class c -> c + 1.
    np.testing.assert_array_equal(threshold_labels(cams, (1, 3), Background(threshold=0.3)), [[0, 3, 0]])
    for t in (0.05, 0.25, 0.4):
        np.testing.assert_array_equal(threshold_labels(cams, (1, 3), Background(threshold=t)), cam_to_label(cams, t))
    # alpha: background (1 - max)^alpha = 0.9^2 = 0.81, 0.5^2 = 0.25, 0.7^2 = 0.49.
    np.testing.assert_array_equal(threshold_labels(cams, (1, 3), Background(alpha=2)), [[0, 3, 0]])
    np.testing.assert_array_equal(threshold_labels(cams, (1, 3), Background(alpha=8)), [[0, 3, 3]])
    with pytest.raises(Exception, match="exactly one"):
        Background(threshold=0.2, alpha=4)


def two_regions(h=32, w=48, edge=24):
    image = np.zeros((h, w, 3), np.uint8)
    image[:, :edge] = (40, 40, 40)
    image[:, edge:] = (200, 180, 60)
    return image


@needs_crf
def test_crf_snaps_a_bleeding_cam_to_the_colour_edge():
    image = two_regions()
    cam = np.zeros((32, 48), np.float32)
    cam[:, 30:] = 0.9
    cam[:, 18:30] = 0.6  # bleeds six pixels over the edge at column 24
    bg = Background(threshold=0.3)
    plain = threshold_labels({3: cam}, (32, 48), bg)
    assert (plain[:, 18:24] == 4).all()
    label = crf_labels(image, {3: cam}, bg)
    assert (label[:, :24] == 0).all() and (label[:, 24:] == 4).all()


def test_combine_confident_is_psas_rule():
    low = np.array([0, 1, 1, 0, 2, 2])
    high = np.array([0, 0, 1, 1, 2, 0])
    np.testing.assert_array_equal(combine_confident(low, high), [0, 0, 1, 255, 2, 0])


@needs_crf
def test_confident_labels_have_an_uncertain_band():
    yy, xx = np.mgrid[:64, :64]
    dist2 = (yy - 32) ** 2 + (xx - 32) ** 2
    disc = dist2 < 144
    image = np.full((64, 64, 3), 90, np.uint8)
    image[disc] = (220, 40, 40)
    cam = np.exp(-dist2 / (2 * 10.0 ** 2)).astype(np.float32)  # spreads well beyond the disc
    label = confident_labels(image, {6: cam})
    np.testing.assert_array_equal(label == 7, disc)  # confident foreground: the disc, snapped to its edge
    assert label[0, 0] == 0
    # Outwards: confident class, then the 255 band, then confident background.
    row = label[32, 32:]
    first_band, first_bg = np.argmax(row == 255), np.argmax(row == 0)
    assert (row[:first_band] == 7).all() and first_band < first_bg and (row[first_band:first_bg] == 255).all()
    assert (row[first_bg:] == 0).all()


def region_affinity(region: np.ndarray, radius: int = 5) -> torch.Tensor:
    """Dense affinity of a cell map: 1 between cells of one region, 0 across."""
    src, dst = pair_indices(*region.shape, radius)
    flat = region.reshape(-1)
    pair_aff = torch.from_numpy((flat[src][None] == flat[dst]).astype(np.float32))
    return dense_affinity(pair_aff, *region.shape, radius)


def test_transition_matrix_is_column_stochastic_power():
    aff = region_affinity(np.zeros((6, 9), int)) * 0.5 + 0.5 * torch.eye(54)
    t1 = transition_matrix(aff, beta=2, logt=0)
    np.testing.assert_allclose(t1.sum(0).numpy(), 1, atol=1e-6)
    np.testing.assert_allclose(transition_matrix(aff, beta=2, logt=3).numpy(),
                               torch.linalg.matrix_power(t1.double(), 8).numpy(), atol=1e-6)


def test_walk_spreads_a_seed_within_its_region_only():
    region = np.zeros((12, 12), int)
    region[:, 6:] = 1
    scores = torch.zeros(1, 12, 12)
    scores[0, 5, 2] = 1.0
    walked = random_walk(scores, region_affinity(region))[0].numpy()
    assert (walked[:, 6:] == 0).all()
    isolated = np.zeros((12, 12), bool)
    isolated[0, :4] = isolated[10, 0] = isolated[11, :2] = True  # psa's pair layout leaves these alone
    assert (walked[:, :6][~isolated[:, :6]] > 0).all()
    assert (walked[isolated] == 0).all()


class ColourAffinity(nn.Module):
    """An 'AffinityNet' whose features are the image colours at stride 8: regions of one colour are linked."""

    radius = 5

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return 10 * F.avg_pool2d(x, 8)


def test_rw_labels_fill_holes_and_cut_bleeding_at_the_region_edge():
    image = np.zeros((96, 96, 3), np.uint8)
    image[:, :48] = (200, 60, 60)
    image[:, 48:] = (60, 60, 200)
    cam = np.zeros((96, 96), np.float32)
    cam[:, :48] = 0.9
    cam[40:64, :48] = 0  # a hole in the object
    cam[:, 48:64] = 0.3  # bleeding into the other region
    plain = threshold_labels({0: cam}, (96, 96), Background(alpha=PSA_RW.alpha))
    assert (plain[40:64, :48] == 0).all() and (plain[:, 48:64] == 1).all()
    label = rw_labels(image, {0: cam}, ColourAffinity())
    assert (label[:, :44] == 1).all() and (label[:, 52:] == 0).all()


@pytest.fixture()
def voc(tmp_path):
    return make_seg_voc(tmp_path / "voc")


def pseudo_args(voc, method, out, *extra):
    return ["pseudo", "--cam", str(voc / "cams"), "--voc-root", str(voc), "--list",
            str(voc / "ImageSets/Segmentation/train.txt"), "--method", method, "--out", str(out), "--no-progress",
            *extra]


def eval_miou(voc, pred, tmp_path):
    report = tmp_path / "eval.json"
    assert main(["eval", "--pred", str(pred), "--voc-root", str(voc), "--list",
                 str(voc / "ImageSets/Segmentation/train.txt"), "--json", str(report)]) == 0
    return json.loads(report.read_text())["miou"]


def test_the_api_refuses_what_a_label_map_cannot_hold_and_images_the_engine_refuses():
    from infercam.errors import DataError, ImageError

    cams = {254: np.ones((4, 4), np.float32)}  # label value 255 would be "ignore"
    with pytest.raises(DataError, match="CAM class 254 cannot be a label value"):
        threshold_labels(cams, (4, 4), Background(threshold=0.5))
    assert threshold_labels({253: np.ones((4, 4), np.float32)}, (4, 4), Background(threshold=0.5)).max() == 254
    with pytest.raises(ImageError, match="uint8"):
        crf_labels(np.zeros((4, 4, 3), np.float32), {0: np.ones((4, 4), np.float32)}, Background(threshold=0.5))


@pytest.mark.parametrize("background", [{"threshold": float("nan")}, {"alpha": float("nan")}, {"alpha": float("inf")}])
def test_the_api_refuses_a_background_that_is_not_a_finite_number(background):
    with pytest.raises(InferCamError, match="must be a .*finite number"):
        Background(**background)


def test_the_api_refuses_a_map_that_is_not_finite():
    cams = {3: np.full((4, 4), np.nan, np.float32)}  # argmax picks NaN: class 3 everywhere
    with pytest.raises(InferCamError, match="class 3 holds NaN"):
        threshold_labels(cams, (4, 4), Background(threshold=0.2))


def test_a_walk_too_long_for_float32_is_refused_not_turned_into_all_background(tmp_path, capsys):
    aff = torch.rand(64, 64)
    aff = (aff + aff.T) / 2
    aff.fill_diagonal_(1)
    assert torch.allclose(transition_matrix(aff, 8, 16).sum(0), torch.ones(64), atol=1e-2)
    with pytest.raises(InferCamError, match="logt must be 0..16"):
        RandomWalkParams(logt=40)  # T's columns would sum to NaN: every pixel background
    with pytest.raises(SystemExit):
        main(["pseudo", "--cam", "c", "--voc-root", "v", "--method", "rw", "--out", str(tmp_path / "o"),
              "--logt", "40"])
    assert "argument --logt: must be 0 to 16, got 40" in capsys.readouterr().err


def test_cli_threshold_writes_palette_pngs_equal_to_the_api_and_resumes(voc, tmp_path, capsys):
    out = tmp_path / "thr"
    assert main(pseudo_args(voc, "threshold", out, "--bg-threshold", "0.3")) == 0
    from PIL import Image
    for i in range(4):
        with Image.open(out / f"img_{i}.png") as img:
            assert img.mode == "P"
        cams = load_cams(voc / "cams" / f"img_{i}.npy")
        expected = threshold_labels(cams, (96, 96), Background(threshold=0.3))
        np.testing.assert_array_equal(read_label_png(out / f"img_{i}.png"), expected)
    assert main(pseudo_args(voc, "threshold", out, "--bg-threshold", "0.3")) == 0
    assert "0 done, 4 skipped" in capsys.readouterr().err
    manifest = json.loads((out / "infercam-run.json").read_text())
    assert manifest["config"]["method"] == "threshold"


def test_a_rerun_recomputes_labels_whose_cam_file_or_image_labels_changed_since(voc, tmp_path, capsys):
    import os
    import time

    out = tmp_path / "thr"
    assert main(pseudo_args(voc, "threshold", out)) == 0
    later = time.time() + 10  # the CAM computed again after the labels were made
    os.utime(voc / "cams" / "img_0.npy", (later, later))
    table = np.load(voc / "cls_labels.npy", allow_pickle=True).item()
    two = next(n for n in ("img_1", "img_2", "img_3") if table[n].sum() == 2)
    dropped = int(np.flatnonzero(table[two])[1])
    assert dropped + 1 in np.unique(read_label_png(out / f"{two}.png"))
    table[two][dropped] = 0  # the label file changed: one class fewer
    np.save(voc / "cls_labels.npy", table)
    capsys.readouterr()
    assert main(pseudo_args(voc, "threshold", out)) == 0
    assert "2 done (2 recomputed: earlier output unusable), 2 skipped" in capsys.readouterr().err
    reasons = {i["name"]: i["reason"] for i in json.loads((out / "infercam-run.json").read_text())["images"]}
    assert "older than" in reasons["img_0"] and "not labelled with" in reasons[two]
    assert dropped + 1 not in np.unique(read_label_png(out / f"{two}.png"))


@needs_crf
def test_cli_crf_beats_threshold_and_affinity_labels_have_255(voc, tmp_path):
    assert main(pseudo_args(voc, "threshold", tmp_path / "thr")) == 0
    assert main(pseudo_args(voc, "crf", tmp_path / "crf")) == 0
    assert eval_miou(voc, tmp_path / "crf", tmp_path) > max(85.0, eval_miou(voc, tmp_path / "thr", tmp_path))
    assert main(pseudo_args(voc, "crf", tmp_path / "aff", "--affinity-labels")) == 0
    for i in range(4):
        label = read_label_png(tmp_path / "aff" / f"img_{i}.png")
        gt = read_label_png(voc / "SegmentationClass" / f"img_{i}.png")
        assert 255 in label and 0 in label
        sure = label != 255
        assert (label[sure] == gt[sure]).mean() > 0.95


@pytest.mark.parametrize("extra, message", [
    (["--method", "threshold", "--affinity-labels"], "needs --method crf"),
    (["--method", "rw", "--affinity-labels", "--low-alpha", "2"], "--affinity-labels needs --method crf"),
    (["--method", "rw", "--bg-threshold", "0.2"], "not --bg-threshold"),
    (["--method", "crf", "--affinity-labels", "--alpha", "4"], "--low-alpha"),
    (["--method", "crf", "--affinity-labels", "--low-alpha", "32", "--high-alpha", "4"],
     "--low-alpha (32) must be below --high-alpha (4)"),
    (["--method", "rw", "--device", "cuda:99"], "device 'cuda:99'"),
    (["--method", "rw", "--device", "foo"], "unknown device 'foo'"),
    (["--method", "rw", "--aff-network", "resnet38"], "give a checkpoint with --aff-weights"),
    (["--method", "crf", "--low-alpha", "2"], "--low-alpha applies only with --method crf --affinity-labels"),
    (["--method", "threshold", "--high-alpha", "2"], "--high-alpha applies only with --method crf --affinity-labels"),
    (["--method", "crf", "--beta", "4"], "--beta applies only with --method rw; this run would ignore it"),
    (["--method", "threshold", "--logt", "2"], "--logt applies only with --method rw"),
    (["--method", "crf", "--affinity-labels", "--aff-weights", "x.pth"], "--aff-weights applies only with --method rw"),
    (["--method", "threshold", "--device", "cuda"], "--device applies only with --method rw; this run would ignore it"),
    (["--method", "crf", "--device", "cpu"], "--device applies only with --method rw"),  # even its default value
])
def test_cli_rejects_option_mixes(voc, tmp_path, capsys, extra, message):
    args = pseudo_args(voc, "crf", tmp_path / "x")
    i = args.index("--method")
    del args[i:i + 2]
    assert main(args + extra) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "x").exists()  # before anything is written


@pytest.mark.parametrize("where, message", [("absent", "CAM folder not found: "),
                                            ("a file", "is a file, not a folder"),
                                            ("empty", "holds no <name>.npy CAM files")])
def test_cli_refuses_a_cam_folder_that_is_not_there_before_writing(voc, tmp_path, capsys, where, message):
    cams = tmp_path / "cams"
    if where == "a file":
        cams.write_text("x")
    elif where == "empty":
        cams.mkdir()
    args = pseudo_args(voc, "threshold", tmp_path / "out")
    args[args.index("--cam") + 1] = str(cams)
    assert main(args) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_cli_drops_cam_classes_the_image_is_not_labelled_with(voc, tmp_path, capsys):
    from infercam.data.voc import VOCDataset

    labels = VOCDataset.open(voc).labels("img_0")
    cams = load_cams(voc / "cams" / "img_0.npy")
    extra = next(c for c in range(20) if c not in labels)
    cams[extra] = np.ones((96, 96), np.float32)  # a stale map of a class the image does not have
    np.save(voc / "cams" / "img_0.npy", cams)
    out = tmp_path / "thr"
    assert main(pseudo_args(voc, "threshold", out)) == 0
    assert extra + 1 not in np.unique(read_label_png(out / "img_0.png"))
    assert ("note: 1 CAM map of classes the images are not labelled with was dropped (1 image, e.g. img_0)"
            in capsys.readouterr().err)


def test_cli_notes_labelled_classes_without_a_map(voc, tmp_path, capsys):
    from infercam.data.voc import VOCDataset

    name = next(n for n in VOCDataset.open(voc).names if len(VOCDataset.open(voc).labels(n)) > 1)
    cams = load_cams(voc / "cams" / f"{name}.npy")
    missing = min(cams)
    del cams[missing]  # CAMs made with labels that lacked this class
    np.save(voc / "cams" / f"{name}.npy", cams)
    out = tmp_path / "thr"
    assert main(pseudo_args(voc, "threshold", out)) == 0
    assert missing + 1 not in np.unique(read_label_png(out / f"{name}.png"))
    assert (f"note: 1 labelled class has no map in its CAM file and got no pixels (1 image, e.g. {name})"
            in capsys.readouterr().err)


def test_cli_notes_cams_that_are_not_normalised(voc, tmp_path, capsys):
    assert main(pseudo_args(voc, "threshold", tmp_path / "normalised")) == 0
    assert "not normalised" not in capsys.readouterr().err
    for path in sorted((voc / "cams").glob("*.npy")):
        np.save(path, {c: 30 * m for c, m in load_cams(path).items()})  # raw maps, as some tools write them
    assert main(pseudo_args(voc, "threshold", tmp_path / "raw")) == 0
    err = capsys.readouterr().err
    count = len(list((voc / "cams").glob("*.npy")))
    assert f"note: the CAMs of {count} images reach well above 1" in err and "not normalised" in err
    for path in sorted((voc / "cams").glob("*.npy")):  # normalised, then resized with cubic interpolation
        np.save(path, {c: m / 30 * 1.1 for c, m in load_cams(path).items()})
    assert main(pseudo_args(voc, "threshold", tmp_path / "resized")) == 0
    assert "not normalised" not in capsys.readouterr().err


def test_the_default_background_given_explicitly_resumes_the_run_it_equals(voc, tmp_path, capsys):
    out = tmp_path / "thr"
    assert main(pseudo_args(voc, "threshold", out)) == 0
    capsys.readouterr()
    assert main(pseudo_args(voc, "threshold", out, "--bg-threshold", str(PSA_THRESHOLD))) == 0
    assert "0 done" in capsys.readouterr().err
    assert main(pseudo_args(voc, "threshold", out, "--bg-threshold", "0.3")) == 2  # another computation
    assert "bg_threshold: None -> 0.3" in capsys.readouterr().err


def test_a_record_of_the_default_background_given_explicitly_still_resumes(voc, tmp_path, capsys):
    """A run made with --bg-threshold 0.2 before the default counted as not given recorded 0.2: rerun with the same
    command, it was refused as another run ('bg_threshold: 0.2 -> None')."""
    out = tmp_path / "thr"
    args = pseudo_args(voc, "threshold", out, "--bg-threshold", str(PSA_THRESHOLD))
    assert main(args) == 0
    manifest = out / "infercam-run.json"
    record = json.loads(manifest.read_text())
    record["config"]["bg_threshold"] = PSA_THRESHOLD  # as the earlier version recorded it
    manifest.write_text(json.dumps(record))
    capsys.readouterr()
    assert main(args) == 0
    assert "0 done" in capsys.readouterr().err
    assert main(pseudo_args(voc, "threshold", out, "--bg-threshold", "0.3")) == 2  # another computation


def labels_with_background(voc: Path, folder: Path) -> Path:
    """The data set's label file rewritten with a background entry first (21 entries), as some tools write it."""
    table = np.load(voc / "cls_labels.npy", allow_pickle=True).item()
    path = folder / "cls_labels_bg.npy"
    np.save(path, {n: np.concatenate([[1.0], v]).astype(np.float32) for n, v in table.items()})
    return path


def test_label_vectors_with_a_background_entry_are_refused_before_any_image(voc, tmp_path, capsys):
    """21 entries, the background first (as some tools write), for CAMs of the 20 VOC classes: read as they are,
    every class would be one too high (some images failing, others labelled with the wrong classes)."""
    with_bg = labels_with_background(voc, tmp_path)
    out = tmp_path / "thr"
    assert main(pseudo_args(voc, "threshold", out, "--labels", str(with_bg))) == 2
    err = capsys.readouterr().err
    assert f"the label vectors of {with_bg} have 21 entries, but the CAMs in {voc / 'cams'}" in err
    assert "have 20 classes" in err and "a background entry first?" in err and len(err.splitlines()) == 1
    assert not out.exists()  # refused before the output folder, its manifest or any label is written


def test_label_vectors_are_checked_against_the_class_count_the_cam_run_recorded(tiny_voc, tmp_path, capsys):
    """CAMs of a 5-class network (`cam --num-classes 5`): pseudo takes 5-entry label vectors and refuses VOC's 20."""
    from tiny import TinyCamNet

    weights = tmp_path / "tiny5.pth"
    torch.save(TinyCamNet(num_classes=5).state_dict(), weights)
    table = {n: v[:5] for n, v in np.load(tiny_voc / "cls_labels.npy", allow_pickle=True).item().items()}
    table["img_d"][0] = 1  # it was labelled person (14) only
    five = tmp_path / "cls_labels5.npy"
    np.save(five, table)
    cams = tmp_path / "cams"
    assert main(["cam", "--voc-root", str(tiny_voc), "--labels", str(five), "--network", "tiny:TinyCamNet",
                 "--num-classes", "5", "--weights", str(weights), "--out-cam", str(cams), "--no-progress"]) == 0
    base = ["pseudo", "--cam", str(cams), "--voc-root", str(tiny_voc), "--method", "threshold", "--no-progress"]
    assert main([*base, "--labels", str(five), "--out", str(tmp_path / "ok")]) == 0
    capsys.readouterr()
    assert main([*base, "--out", str(tmp_path / "refused")]) == 2  # the data set's cls_labels.npy: 20 entries
    err = capsys.readouterr().err
    assert "have 20 entries, but the CAMs in" in err and "have 5 classes" in err
    assert not (tmp_path / "refused").exists()
    bare = tmp_path / "bare"  # the same CAMs without infercam's record (as psa or IRN write them): any count but
    bare.mkdir()  # VOC's plus a background entry is taken, as CAMs of another data set may have any number
    for f in cams.glob("*.npy"):
        (bare / f.name).write_bytes(f.read_bytes())
    assert main([*base[:2], str(bare), *base[3:], "--labels", str(five), "--out", str(tmp_path / "bare_ok")]) == 0


def test_a_class_count_only_assumed_or_damaged_in_a_record_is_not_trusted(voc, tmp_path, capsys):
    """Without a usable record of the CAMs' class count (none, or a damaged value such as a list), pseudo assumes
    VOC's 20 for its label check, says so, and does not write the assumption into its own record as a fact."""
    cams = tmp_path / "cams"
    cams.mkdir()
    for f in (voc / "cams").glob("*.npy"):
        (cams / f.name).write_bytes(f.read_bytes())
    (cams / "infercam-run.json").write_text(json.dumps({"config": {}, "classes": ["a", "b"]}))
    with_bg = labels_with_background(voc, tmp_path)
    args = [*pseudo_args(voc, "threshold", tmp_path / "refused", "--labels", str(with_bg))]
    args[args.index("--cam") + 1] = str(cams)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "no infercam run record there gives a class count" in err and "Traceback" not in err
    out = tmp_path / "thr"
    args = pseudo_args(voc, "threshold", out)
    args[args.index("--cam") + 1] = str(cams)
    assert main(args) == 0
    assert "classes" not in json.loads((out / "infercam-run.json").read_text())
