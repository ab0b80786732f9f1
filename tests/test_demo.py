"""The demo end to end on a very small split, its report (files, and a real headless-Chromium render)."""
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from infercam.cli import main
from infercam.models import create

TINY = {"widths": [8, 8, 16, 16], "depths": [1, 1, 1, 1]}


def tiny_weights(folder: Path) -> Path:
    """A checkpoint of a tiny small-resnet with seeded random weights (the plumbing, not the quality)."""
    torch.manual_seed(0)
    weights = folder / "tiny.pt"
    torch.save({"state_dict": create("small-resnet", **TINY).state_dict(),
                "config": {"arch": "small-resnet", "arch_kwargs": TINY, "num_classes": 20}}, weights)
    return weights


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """`infercam demo` on 3 images with a tiny small-resnet (random weights: the plumbing, not the quality)."""
    folder = tmp_path_factory.mktemp("demo")
    weights = tiny_weights(folder)
    out = folder / "out"
    code = main(["demo", "--out", str(out), "--images", "3", "--network", "small-resnet", "--weights", str(weights),
                 "--json", str(folder / "summary.json"), "--photos", "1", "--no-progress"])
    assert code == 0
    return out, json.loads((folder / "summary.json").read_text())


def test_demo_summary(demo_run):
    out, summary = demo_run
    assert summary["images"] == 3
    assert set(summary["methods"]) == {"baseline", "infercam-default", "infercam-evidence", "infercam-fixed",
                                          "infercam-reference"}
    for method in summary["methods"].values():
        assert 0 <= method["miou"] <= 100 and 0 <= method["best_threshold"] <= 0.95
        assert abs(sum(method["mass"].values()) - 1) < 1e-3
        assert len(method["per_threshold"]) == 96
    for diff in summary["differences"].values():
        assert diff["low"] <= diff["difference"] <= diff["high"]
    assert json.loads((out / "summary.json").read_text()) == summary
    photo_methods = {p["method"] for p in summary["photos"]}
    assert photo_methods in (set(), {"baseline", "infercam-default", "infercam-evidence", "infercam-fixed"})
    assert all(0 <= p["share"] <= 1 and 0 <= p["iou"] <= 1 for p in summary["photos"])
    assert summary["photos"] or summary["photo_notes"]  # run, or said why not


def test_report_references_only_files_that_exist(demo_run):
    out, _ = demo_run
    page = (out / "report" / "index.html").read_text()
    sources = re.findall(r'<img src="([^"]+)"', page)
    photos = [s for s in sources if s.startswith("img/photo_")]
    assert len(sources) - len(photos) == 3 * 12  # 3 images x (image, truth, 5 CAMs, 5 label maps)
    assert len(photos) in (0, 5)  # one real photo: photo + boxes, 4 maps
    for src in sources:
        assert not src.startswith(("/", "http")) and (out / "report" / src).is_file()
    assert page.count("<polyline") == 5  # one mIoU curve per method


def test_report_renders_in_headless_chromium(demo_run, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium not installed (.ci/run installs it)")
    out, _ = demo_run
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
             "--virtual-time-budget=5000", "--allow-file-access-from-files"]
    url = (out / "report" / "index.html").as_uri()
    dom = subprocess.run([browser, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    loaded = re.search(r'data-images-loaded="(\d+)/(\d+)"', dom)
    assert loaded and loaded.group(1) == loaded.group(2) and int(loaded.group(2)) >= 24
    shot = tmp_path / "report.png"
    subprocess.run([browser, *flags, f"--screenshot={shot}", "--window-size=1400,900", url],
                   capture_output=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 10_000


def test_demo_with_grad_cam_and_a_wrong_layer(tmp_path, capsys):
    """--cam-method gradcam gives every method's maps from Grad-CAM; a layer the network lacks is a clear error."""
    weights = tiny_weights(tmp_path)
    args = ["demo", "--images", "2", "--network", "small-resnet", "--weights", str(weights), "--photos", "0",
            "--report-images", "0", "--no-progress", "--cam-method", "gradcam"]
    out = ["--out", str(tmp_path / "a"), "--json", str(tmp_path / "s.json"), "--target-layer", "stages"]
    assert main(args + out) == 0
    summary = json.loads((tmp_path / "s.json").read_text())
    assert all(0 <= m["miou"] <= 100 for m in summary["methods"].values())
    assert main(args + ["--out", str(tmp_path / "b"), "--target-layer", "no_such_layer"]) == 2
    assert "no_such_layer" in capsys.readouterr().err
    assert main(args + ["--out", str(tmp_path / "c"), "--json", str(tmp_path)]) == 2  # refused before the run
    assert f"--json {tmp_path} is a folder" in capsys.readouterr().err and not (tmp_path / "c").exists()
    weights_before = weights.read_bytes()
    assert main(args + ["--out", str(tmp_path / "c"), "--json", str(weights)]) == 2  # not a summary: kept
    assert "exists and is not a file of infercam demo" in capsys.readouterr().err and not (tmp_path / "c").exists()
    assert weights.read_bytes() == weights_before
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "summary.json").write_text("my own")  # a folder of other files: the demo would replace them
    assert main(args + ["--out", str(mine)]) == 2
    assert "holds files no demo wrote" in capsys.readouterr().err and (mine / "summary.json").read_text() == "my own"
    assert main(args + ["--out", str(tmp_path / "a"), "--target-layer", "stages"]) == 0  # an earlier demo's: rerun


def test_a_report_folder_of_other_files_stops_the_demo_before_its_work(tmp_path, capsys):
    out = tmp_path / "d"
    (out / "report").mkdir(parents=True)
    (out / ".infercam-demo").touch()  # an earlier demo's folder, whose report/ someone replaced
    (out / "report" / "index.html").write_text("<html>my page</html>")
    assert main(["demo", "--out", str(out), "--images", "2", "--photos", "0", "--no-progress"]) == 2
    assert "an index.html that no infercam report wrote" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == [".infercam-demo", "report"]  # no data set made
