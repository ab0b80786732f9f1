"""``infercam report``: two CAM runs and one label run on a tiny VOC folder; the page's files, its scores against
``infercam eval``'s, missing files, wrong folders, and the gallery's sorting and class filter in headless Chromium."""
import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from cli_run import argv, live_lock, run
from infercam.io import save_label_png

NAMES = ("img_a", "img_b", "img_c", "img_d")


@pytest.fixture()
def runs(tiny_voc, tiny_weights, tmp_path, capsys):
    """A tiny VOC folder with ground truth, and three runs: baseline CAMs, InferCam CAMs, thresholded labels."""
    seg = tiny_voc / "SegmentationClass"
    seg.mkdir()
    table = np.load(tiny_voc / "cls_labels.npy", allow_pickle=True).item()
    for name in NAMES:
        with Image.open(tiny_voc / "JPEGImages" / f"{name}.jpg") as img:
            gt = np.zeros((img.height, img.width), np.uint8)
        for k, c in enumerate(np.flatnonzero(table[name])):  # one band per labelled class
            gt[:, 8 * k + 4: 8 * k + 12] = c + 1
        save_label_png(seg / f"{name}.png", gt)
    base, ic, labels = tmp_path / "base", tmp_path / "ic", tmp_path / "labels"
    assert run(capsys, argv(tiny_voc, tiny_weights, base, command="cam"))[0] == 0
    assert run(capsys, argv(tiny_voc, tiny_weights, ic))[0] == 0
    assert run(capsys, ["pseudo", "--cam", base, "--voc-root", tiny_voc, "--method", "threshold", "--out", labels,
                        "--no-progress"])[0] == 0
    return tiny_voc, {"baseline": base, "infercam": ic, "labels": labels}


def report(capsys, voc, folders, out, *extra):
    specs = [a for name, folder in folders.items() for a in ("--run", f"{name}={folder}")]
    return run(capsys, ["report", "--voc-root", voc, *specs, "--out", out, "--no-progress", *extra])


def eval_miou(capsys, voc, folder, kind, tmp_path):
    (voc / "all.txt").write_text("\n".join(NAMES) + "\n")
    out = tmp_path / f"{folder.name}.json"
    assert run(capsys, ["eval", "--pred", folder, "--voc-root", voc, "--list", voc / "all.txt", "--format", kind,
                        "--json", out])[0] == 0
    return json.loads(out.read_text())["miou"]


def test_the_report_shows_every_run_and_scores_them_as_eval_does(runs, tmp_path, capsys):
    voc, folders = runs
    out = tmp_path / "report"
    assert report(capsys, voc, folders, out)[0] == 0
    page = (out / "index.html").read_text()
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert len(sources) == 4 * 5  # per image: photo, truth, three runs
    assert all(not s.startswith(("/", "http")) and (out / s).is_file() for s in sources)
    for name, kind in (("baseline", "cam"), ("infercam", "cam"), ("labels", "label")):
        shown = re.search(rf"<tr><td>{name}</td><td>{kind}</td><td>([0-9.]+)</td>", page)
        assert shown and float(shown.group(1)) == pytest.approx(eval_miou(capsys, voc, folders[name], kind, tmp_path),
                                                                abs=0.006)
    assert page.count("<polyline") == 2  # the two CAM runs have a threshold curve
    assert "★" in page and page.count('class="item"') == 4
    assert "<p>4 images, 3 runs;" in page
    assert report(capsys, voc, {"baseline": folders["baseline"]}, tmp_path / "one")[0] == 0
    assert "<p>4 images, 1 run;" in (tmp_path / "one" / "index.html").read_text()


@pytest.mark.parametrize("target", ["data set", "run folder", "web page", "file"])
def test_the_report_refuses_a_folder_of_other_files_and_replaces_its_own(target, runs, tmp_path, capsys):
    voc, folders = runs
    page = tmp_path / "site"
    page.mkdir()
    (page / "index.html").write_text("<html>my page</html>")
    out = {"data set": voc, "run folder": folders["baseline"], "web page": page, "file": voc / "cls_labels.npy"}[target]
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    code, err = report(capsys, voc, folders, out)
    assert code == 2 and f"report folder {out} " in err
    assert ("an index.html that no infercam report wrote" if target == "web page" else
            "is a file" if target == "file" else "holds other files") in err
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    mine = tmp_path / "mine"
    assert report(capsys, voc, folders, mine)[0] == 0 and report(capsys, voc, folders, mine)[0] == 0
    (mine / "index.html").unlink()  # interrupted after its pictures, before its page
    assert report(capsys, voc, folders, mine)[0] == 0 and (mine / "index.html").is_file()


def test_missing_files_stop_the_report_or_are_shown_with_skip(runs, tmp_path, capsys):
    voc, folders = runs
    (folders["infercam"] / "img_c.npy").unlink()
    code, err = report(capsys, voc, folders, tmp_path / "r1")
    assert code == 2 and "run 'infercam' has no .npy file for 1 of the 4 images" in err and "--missing skip" in err
    code, err = report(capsys, voc, folders, tmp_path / "r2", "--missing", "skip")
    page = (tmp_path / "r2" / "index.html").read_text()
    assert code == 0 and "infercam: 1 missing (img_c)" in page and "infercam: missing" in page
    # said on stderr too, as eval says it, for the run that lacks the file only
    assert ("infercam report: note: run 'infercam': prediction not found for 1 image: img_c; left out"
            in err.splitlines())
    assert err.count("not found") == 1


def test_a_long_list_of_missing_files_says_how_many_more_it_does_not_name(runs, tmp_path, capsys):
    voc, folders = runs
    extra = [f"x{i:02d}" for i in range(1, 13)]  # photos no run has a file of (and without ground truth)
    for name in extra:
        shutil.copy(voc / "JPEGImages" / "img_a.jpg", voc / "JPEGImages" / f"{name}.jpg")
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join([*NAMES, *extra]) + "\n")
    code, err = run(capsys, ["report", "--voc-root", voc, "--list", listing, "--run", f"labels={folders['labels']}",
                             "--out", tmp_path / "r", "--missing", "skip", "--no-progress"])
    page = (tmp_path / "r" / "index.html").read_text()
    assert code == 0 and f"labels: 12 missing ({', '.join(extra[:10])} and 2 more)" in page
    assert ("infercam report: note: run 'labels': prediction not found for 12 images: x01, x02, x03, x04, x05 and 7 "
            "more; left out") in err.splitlines()


def test_a_damaged_file_is_named_by_the_report_and_left_out_of_its_scores(runs, tmp_path, capsys):
    voc, folders = runs
    (folders["infercam"] / "img_c.npy").write_bytes(b"damaged")
    code, err = report(capsys, voc, folders, tmp_path / "r")  # as eval: a damaged file stops it by default
    assert code == 2 and "run 'infercam': cannot read CAM file" in err and "use --missing skip" in err
    assert not (tmp_path / "r").exists()
    code, err = report(capsys, voc, folders, tmp_path / "r", "--missing", "skip")
    assert "infercam report: note: run 'infercam':" in err and "img_c.npy" in err and "left out" in err
    assert code == 0 and "infercam eval" not in err
    assert "infercam: unreadable" in (tmp_path / "r" / "index.html").read_text()


def test_a_wrong_size_file_is_shown_as_such_and_a_run_scored_on_nothing_still_gives_a_page(runs, tmp_path, capsys):
    from infercam.io import load_cams, save_cams

    voc, folders = runs
    cams = load_cams(folders["infercam"] / "img_c.npy")
    save_cams(folders["infercam"] / "img_c.npy", {c: m[:-2] for c, m in cams.items()})
    code, err = report(capsys, voc, folders, tmp_path / "r", "--missing", "skip")
    assert code == 0 and "img_c.npy" in err
    assert "infercam: wrong size" in (tmp_path / "r" / "index.html").read_text()
    for name in NAMES:  # every map of the run the wrong size: nothing of it can be scored
        cams = load_cams(folders["baseline"] / f"{name}.npy")
        save_cams(folders["baseline"] / f"{name}.npy", {c: m[:, :-1] for c, m in cams.items()})
    code, err = report(capsys, voc, {"baseline": folders["baseline"]}, tmp_path / "r2", "--missing", "skip")
    page = (tmp_path / "r2" / "index.html").read_text()
    assert code == 0 and "run 'baseline' not scored" in err and "No run could be scored" in page
    assert page.count("baseline: wrong size") == 2 * 4  # each image's panel: its caption and its alt text


@pytest.mark.parametrize("content, message", [
    (lambda d: None, "holds no CAM .npy files and no label .png files"),
    (lambda d: (d / "x.npy").write_bytes(b"") or (d / "x.png").write_bytes(b""), "holds both CAM .npy files"),
])
def test_a_run_folder_of_no_or_both_kinds_is_refused(content, message, runs, tmp_path, capsys):
    voc, folders = runs
    odd = tmp_path / "odd"
    odd.mkdir()
    content(odd)
    code, err = report(capsys, voc, {**folders, "odd": odd}, tmp_path / "r")
    assert code == 2 and f"run 'odd': {odd} {message}" in err


def test_a_cam_folder_with_its_heatmaps_beside_the_cams_is_a_cam_run(runs, tiny_weights, tmp_path, capsys):
    voc, folders = runs
    both = tmp_path / "both"  # the baseline's command again, its heatmaps written into the CAM folder
    assert run(capsys, argv(voc, tiny_weights, both, "--heatmap", both, command="cam"))[0] == 0
    assert any(both.glob("*_*.png")) and any(both.glob("*.npy"))
    assert report(capsys, voc, {"baseline": folders["baseline"], "both": both}, tmp_path / "r")[0] == 0
    page = (tmp_path / "r" / "index.html").read_text()
    shown = [re.search(rf"<tr><td>{name}</td><td>cam</td><td>([0-9.]+)</td>", page) for name in ("baseline", "both")]
    assert all(shown) and shown[0].group(1) == shown[1].group(1)


def test_without_ground_truth_the_maps_are_shown_unscored_and_images_picks_the_most_informative(runs, tmp_path,
                                                                                                 capsys):
    voc, folders = runs
    code, _ = report(capsys, voc, folders, tmp_path / "some", "--images", "2")
    page = (tmp_path / "some" / "index.html").read_text()
    assert code == 0 and page.count('class="item"') == 2
    shutil.rmtree(voc / "SegmentationClass")
    code, _ = report(capsys, voc, folders, tmp_path / "bare")
    page = (tmp_path / "bare" / "index.html").read_text()
    assert code == 0 and "without scores" in page and " data-iou0=" not in page and page.count('class="item"') == 4


def test_a_rerun_with_fewer_images_leaves_only_the_pictures_its_page_shows(runs, tmp_path, capsys):
    voc, folders = runs
    out = tmp_path / "report"
    assert report(capsys, voc, folders, out)[0] == 0
    (out / "img" / "mine.png").write_bytes(b"a user's file")
    assert report(capsys, voc, folders, out, "--images", "2")[0] == 0
    shown = set(re.findall(r'<img src="img/([^"]+)"', (out / "index.html").read_text()))
    assert len(shown) == 2 * 5 and {p.name for p in (out / "img").iterdir()} == shown | {"mine.png"}


def test_a_rerun_interrupted_while_drawing_leaves_the_earlier_page_showing_its_own_pictures(runs, tmp_path, capsys,
                                                                                            monkeypatch):
    from infercam.report import gallery

    voc, folders = runs
    out = tmp_path / "report"
    assert report(capsys, voc, folders, out)[0] == 0
    before = {p.name: p.read_bytes() for p in (out / "img").iterdir()}
    page = (out / "index.html").read_text()
    real, saved = gallery.save_image, []

    def save_then_interrupt(path, picture):
        if len(saved) == 8:
            raise KeyboardInterrupt
        saved.append(path)
        real(path, picture)

    monkeypatch.setattr(gallery, "save_image", save_then_interrupt)
    reordered = {name: folders[name] for name in ("labels", "infercam", "baseline")}  # other pictures at each place
    assert report(capsys, voc, reordered, out)[0] == 130
    assert (out / "index.html").read_text() == page
    shown = re.findall(r'<img src="img/([^"]+)"', page)
    assert all((out / "img" / name).read_bytes() == before[name] for name in shown)
    monkeypatch.setattr(gallery, "save_image", real)
    assert report(capsys, voc, reordered, out)[0] == 0  # the rerun's page, and no picture of neither
    shown = set(re.findall(r'<img src="img/([^"]+)"', (out / "index.html").read_text()))
    assert {p.name for p in (out / "img").iterdir()} == shown


def test_an_unreadable_photo_is_left_out_with_missing_skip_and_stops_the_report_before_any_file_otherwise(
        runs, tmp_path, capsys):
    voc, folders = runs
    photo = voc / "JPEGImages" / "img_c.jpg"
    photo.write_bytes(photo.read_bytes()[:200])  # truncated
    code, err = report(capsys, voc, folders, tmp_path / "strict")
    assert code == 2 and "img_c" in err and not (tmp_path / "strict").exists()
    code, err = report(capsys, voc, folders, tmp_path / "lenient", "--missing", "skip")
    page = (tmp_path / "lenient" / "index.html").read_text()
    assert code == 0 and "img_c left out" in err and page.count('class="item"') == 3
    assert "Left out, the image does not load: img_c" in page


@pytest.mark.parametrize("missing", ["error", "skip"])
def test_a_wrong_data_set_folder_is_named_even_with_a_list(missing, runs, tmp_path, capsys):
    voc, folders = runs
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(NAMES) + "\n")
    for root, message in ((tmp_path / "nope", f"data set folder not found: {tmp_path / 'nope'}"),
                          (voc / "SegmentationClass", "no JPEGImages/ folder in")):
        code, err = run(capsys, ["report", "--voc-root", root, "--list", listing, "--run", folders["baseline"],
                                 "--out", tmp_path / "r", "--missing", missing, "--no-progress"])
        assert code == 2 and message in err and not (tmp_path / "r").exists()


def test_a_list_of_which_no_image_loads_is_refused_not_written_as_an_empty_page(runs, tmp_path, capsys):
    voc, folders = runs
    listing = tmp_path / "other.txt"
    listing.write_text("2007_000032\n2007_000039\n")  # another data set's names
    code, err = run(capsys, ["report", "--voc-root", voc, "--list", listing, "--run", folders["baseline"],
                             "--out", tmp_path / "r", "--missing", "skip", "--no-progress"])
    assert code == 2 and "every image was left out (2 images" in err and not (tmp_path / "r").exists()


def test_a_run_of_cams_that_are_not_normalised_is_noted(runs, tmp_path, capsys):
    voc, folders = runs
    raw = tmp_path / "raw"
    raw.mkdir()
    for name in NAMES:
        cams = np.load(folders["baseline"] / f"{name}.npy", allow_pickle=True).item()
        np.save(raw / f"{name}.npy", {c: 30 * m for c, m in cams.items()})
    code, err = report(capsys, voc, {"raw": raw, "baseline": folders["baseline"]}, tmp_path / "r")
    assert code == 0 and "note: run 'raw': the CAMs reach" in err and "not normalised" in err
    assert "run 'baseline'" not in err


def test_a_run_folder_whose_name_holds_an_equals_sign_is_a_folder_not_name_and_folder(runs, tmp_path, capsys,
                                                                                      monkeypatch):
    voc, folders = runs
    monkeypatch.chdir(tmp_path)
    shutil.copytree(folders["baseline"], tmp_path / "cams_t=0.2")
    code, err = run(capsys, ["report", "--voc-root", voc, "--run", "cams_t=0.2",
                             "--run", f"ic={folders['infercam']}", "--out", tmp_path / "r", "--no-progress"])
    assert code == 0, err
    assert "<tr><td>cams_t=0.2</td><td>cam</td>" in (tmp_path / "r" / "index.html").read_text()


def test_a_report_folder_under_a_file_is_refused_before_anything_is_computed(runs, tmp_path, capsys, monkeypatch):
    from infercam.report import runs as report_runs

    voc, folders = runs
    monkeypatch.setattr(report_runs, "score_run", lambda *a, **k: pytest.fail("scored before the folder was checked"))
    code, err = report(capsys, voc, folders, voc / "cls_labels.npy" / "report")
    assert code == 2 and f"cannot create report folder {voc / 'cls_labels.npy' / 'report'}" in err


def test_a_run_that_cannot_be_scored_is_named_when_it_stops_the_report(runs, tmp_path, capsys):
    voc, folders = runs
    imagenet = tmp_path / "imagenet"
    imagenet.mkdir()
    for name in NAMES:  # an ImageNet network's CAMs, made without --class-map
        shape = next(iter(np.load(folders["baseline"] / f"{name}.npy", allow_pickle=True).item().values())).shape
        np.save(imagenet / f"{name}.npy", {281: np.ones(shape, np.float32)})
    code, err = report(capsys, voc, {"baseline": folders["baseline"], "imagenet": imagenet}, tmp_path / "r")
    assert code == 2 and "error: run 'imagenet' not scored: img_a: CAM class indices must be 0..19" in err
    for name in NAMES:  # ground truth that is all 255: no run's fault, and not said as one run's
        path = voc / "SegmentationClass" / f"{name}.png"
        save_label_png(path, np.full_like(np.asarray(Image.open(path)), 255))
    code, err = report(capsys, voc, {"baseline": folders["baseline"]}, tmp_path / "r")
    assert code == 2 and "report: error: ground truth: every pixel of the 4 images is 255 (ignore)" in err, err
    # with --missing skip, each run is left unscored: the ground truth's problem is said once, not once per run
    code, err = report(capsys, voc, folders, tmp_path / "r", "--missing", "skip")
    assert err.count("ground truth: every pixel of the 4 images is 255") == 1, err


def test_a_damaged_label_file_the_report_does_not_need_does_not_stop_it(runs, tmp_path, capsys):
    voc, folders = runs
    (voc / "cls_labels.npy").write_text("junk")
    assert report(capsys, voc, folders, tmp_path / "report")[0] == 0


def _visible(dom: str) -> list[str]:
    """The names of the gallery's shown items, in page order."""
    tags = re.findall(r'<div class="item"[^>]*>', dom)
    return [re.search(r'data-name="([^"]+)"', tag).group(1) for tag in tags if " hidden" not in tag]


def test_the_gallery_sorts_and_filters_in_a_real_browser(runs, tmp_path, capsys):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium not installed (.ci/run installs it)")
    voc, folders = runs
    out = tmp_path / "report"
    assert report(capsys, voc, {"baseline": folders["baseline"], "infercam": folders["infercam"]}, out)[0] == 0
    page = (out / "index.html").read_text()
    ious = {m.group(1): (float(m.group(2)), float(m.group(3))) for m in
            re.finditer(r'data-name="([^"]+)" data-classes="[^"]*" data-iou0="([0-9.]+)" data-iou1="([0-9.]+)"', page)}
    assert sorted(ious) == list(NAMES)
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
             "--virtual-time-budget=5000", "--allow-file-access-from-files"]

    def dom(state: str) -> str:
        url = (out / "index.html").as_uri() + state
        return subprocess.run([browser, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout

    by_gain = dom("#sort=diff:1:0")
    loaded = re.search(r'data-images-loaded="(\d+)/(\d+)"', by_gain)
    assert loaded and loaded.group(1) == loaded.group(2) == "16"
    gain = sorted(NAMES, key=lambda n: (-(ious[n][1] - ious[n][0]), n))
    assert _visible(by_gain) == gain
    assert _visible(dom("#sort=diff:0:1")) == sorted(NAMES, key=lambda n: (-(ious[n][0] - ious[n][1]), n))
    assert _visible(dom("#sort=name&class=cat")) == ["img_b"]  # img_b alone is labelled cat (and boat)
    assert _visible(dom("#sort=name&class=")) == list(NAMES)
    shot = tmp_path / "report.png"
    subprocess.run([browser, *flags, f"--screenshot={shot}", "--window-size=1400,900", (out / "index.html").as_uri()],
                   capture_output=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 10_000


def test_a_damaged_ground_truth_file_is_named_as_such_not_blamed_on_a_run(runs, tmp_path, capsys):
    voc, folders = runs
    truth = voc / "SegmentationClass" / "img_c.png"
    truth.write_bytes(b"damaged")
    code, err = report(capsys, voc, folders, tmp_path / "r")
    assert code == 2 and "infercam report: error: ground truth: cannot read label PNG" in err and str(truth) in err
    assert "run '" not in err and "--missing skip" in err and not (tmp_path / "r").exists()
    code, err = report(capsys, voc, folders, tmp_path / "r", "--missing", "skip")
    notes = [line for line in err.splitlines() if "img_c.png" in line]
    assert code == 0 and len(notes) == 1 and notes[0].startswith("infercam report: note: ground truth: ")
    assert "run '" not in notes[0] and notes[0].endswith("left out")
    page = (tmp_path / "r" / "index.html").read_text()
    assert "ground truth: unreadable" in page and page.count('class="item"') == 4


def test_a_run_given_as_a_folder_alone_is_named_by_it_and_names_must_differ(runs, tmp_path, capsys):
    voc, folders = runs
    out = tmp_path / "report"
    code, err = run(capsys, ["report", "--voc-root", voc, "--run", folders["baseline"], "--run",
                             f"ic={folders['infercam']}", "--out", out, "--no-progress"])
    assert code == 0, err
    page = (out / "index.html").read_text()
    assert "<tr><td>base</td><td>cam</td>" in page and "<tr><td>ic</td><td>cam</td>" in page
    code, err = run(capsys, ["report", "--voc-root", voc, "--run", folders["baseline"], "--run",
                             f"base={folders['infercam']}", "--out", tmp_path / "r2", "--no-progress"])
    assert code == 2 and "two --run arguments have the same name" in err


def test_a_report_being_written_by_another_run_is_refused_and_a_stale_lock_taken_over(runs, tmp_path, capsys):
    """Two reports into one folder each removed the pictures their own page does not show, so each could delete
    the other's: the second now refuses while the first writes (its lock names it), and a lock left by a run that
    has ended is taken over."""
    voc, folders = runs
    out = tmp_path / "r"
    out.mkdir()
    with live_lock(out / ".infercam-report.lock") as pid:
        code, err = report(capsys, voc, folders, out)
        assert code == 2 and f"another run (pid {pid}" in err and not (out / "index.html").exists()
    assert report(capsys, voc, folders, out)[0] == 0  # the holder has ended: its lock is stale
    assert (out / "index.html").is_file() and not (out / ".infercam-report.lock").exists()


def test_a_threshold_for_label_runs_only_is_said_to_be_unused(runs, tmp_path, capsys):
    """--threshold applies to CAM runs: with label runs only it would be ignored silently."""
    voc, folders = runs
    note = "infercam report: note: --threshold 0.3 not used: it applies to CAM runs, and every run here is a label run"
    code, err = report(capsys, voc, {"labels": folders["labels"]}, tmp_path / "r", "--threshold", "0.3")
    assert code == 0 and note in err.splitlines()
    code, err = report(capsys, voc, {"labels": folders["labels"], "baseline": folders["baseline"]}, tmp_path / "r",
                       "--threshold", "0.3")
    assert code == 0 and "--threshold" not in err
