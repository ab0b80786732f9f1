"""The synthetic VOC-layout data set: files and layout, labels, determinism, class mix, part masks, CLI."""
from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from infercam.classes import NUM_CLASSES, VOC_CLASSES, voc_colormap
from infercam.cli import main
from infercam.data.scenes import CLASS_LOOKS, SceneDesign, image_rng, render_scene
from infercam.data.synthetic import make_synthetic
from infercam.data.voc import VOCDataset, labels_from_segmentation, read_image_list
from infercam.errors import OutputError

SIZE = 64


def tree_digest(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``root``."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small_set(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("syn") / "voc"
    summary = make_synthetic(root, n_train=6, n_val=4, size=SIZE, seed=1)
    assert (summary.n_train, summary.n_val, summary.size) == (6, 4, SIZE)
    assert sum(summary.classes_per_image.values()) == 10
    return root


def test_layout_every_file_present(small_set: Path) -> None:
    train = read_image_list(small_set / "ImageSets/Segmentation/train.txt")
    val = read_image_list(small_set / "ImageSets/Segmentation/val.txt")
    assert len(train) == 6 and len(val) == 4 and not set(train) & set(val)
    assert all(n.startswith("syn_") for n in train + val)
    for name in train + val:
        with Image.open(small_set / "JPEGImages" / f"{name}.jpg") as img:
            assert (img.format, img.mode, img.size) == ("JPEG", "RGB", (SIZE, SIZE))
        for folder in ("SegmentationClass", "SegmentationPart"):
            with Image.open(small_set / folder / f"{name}.png") as png:
                assert png.mode == "P" and png.size == (SIZE, SIZE)
                palette = np.array(png.getpalette()[: 256 * 3], dtype=np.uint8).reshape(-1, 3)
                assert np.array_equal(palette, voc_colormap())
        assert (small_set / "Annotations" / f"{name}.xml").is_file()


def test_labels_match_masks_and_annotations(small_set: Path) -> None:
    table = np.load(small_set / "cls_labels.npy", allow_pickle=True).item()
    dataset = VOCDataset.open(small_set, small_set / "ImageSets/Segmentation/train.txt")
    assert len(table) == 10
    for name, vector in table.items():
        assert vector.dtype == np.float32 and vector.shape == (NUM_CLASSES,)
        present = sorted(np.flatnonzero(vector).tolist())
        assert 1 <= len(present) <= 3
        assert present == labels_from_segmentation(small_set / "SegmentationClass" / f"{name}.png")
        objects = ET.parse(small_set / "Annotations" / f"{name}.xml").getroot().findall("object")
        assert sorted({VOC_CLASSES.index(o.findtext("name")) for o in objects}) == present
        for o in objects:
            box = [int(o.find("bndbox").findtext(t)) for t in ("xmin", "ymin", "xmax", "ymax")]
            assert 1 <= box[0] <= box[2] <= SIZE and 1 <= box[1] <= box[3] <= SIZE
    assert dataset.labels(dataset.names[0]) == sorted(np.flatnonzero(table[dataset.names[0]]).tolist())


def test_same_seed_same_bytes_whatever_the_workers(tmp_path: Path) -> None:
    make_synthetic(tmp_path / "a", 5, 3, SIZE, seed=7, workers=1)
    make_synthetic(tmp_path / "b", 5, 3, SIZE, seed=7, workers=2)
    make_synthetic(tmp_path / "c", 5, 3, SIZE, seed=8, workers=1)
    a, b, c = (tree_digest(tmp_path / k) for k in "abc")
    assert len(a) == 8 * 4 + 3 and a == b
    assert a.keys() == c.keys()
    assert all(a[k] != c[k] for k in a if k.startswith("JPEGImages"))


def test_refuses_a_folder_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("x")
    with pytest.raises(OutputError, match="not empty"):
        make_synthetic(tmp_path, 1, 0, SIZE)


@pytest.mark.parametrize("existed", [False, True])
def test_an_interrupted_run_leaves_no_half_made_data_set(tmp_path: Path, monkeypatch, existed: bool) -> None:
    import infercam.data.synthetic as synthetic

    root = tmp_path / "syn"
    if existed:
        root.mkdir()  # an empty folder the user made: kept, and empty again
    real, calls = synthetic._write_image, []

    def write_image(job):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(job)

    monkeypatch.setattr(synthetic, "_write_image", write_image)
    with pytest.raises(KeyboardInterrupt):
        make_synthetic(root, 4, 1, SIZE)
    assert (root.is_dir() and not any(root.iterdir())) if existed else not root.exists()
    monkeypatch.setattr(synthetic, "_write_image", real)
    assert make_synthetic(root, 4, 1, SIZE).n_train == 4  # the rerun is not refused


@pytest.mark.parametrize("args, said", [(["--seed", "-1"], "must be at least 0"),
                                        (["--size", "60000"], "must be 64 to 2048"),
                                        (["--n-train", "1000000000"], "must be 0 to 1000000")])
def test_cli_refuses_numbers_out_of_range(tmp_path: Path, capsys, args, said) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["make-synthetic", "--out", str(tmp_path / "x"), *args])
    assert exc.value.code == 2 and said in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_class_mix_follows_the_design() -> None:
    design = SceneDesign(class_mix=(0.6, 0.3, 0.1))
    counts = np.zeros(4, dtype=int)
    per_class = np.zeros(NUM_CLASSES, dtype=int)
    for i in range(300):
        labels = render_scene(image_rng(3, i), SIZE, design).labels()
        counts[int(labels.sum())] += 1
        per_class += labels.astype(int)
    share = counts[1:] / counts.sum()
    assert counts[0] == 0
    assert np.allclose(share, (0.6, 0.3, 0.1), atol=0.08), share
    assert per_class.min() >= 5, per_class


def test_parts_lie_inside_objects_with_small_heads() -> None:
    head = body = 0
    for i in range(40):
        scene = render_scene(image_rng(5, i), 128)
        cls, parts = scene.classes, scene.parts
        assert set(np.unique(parts).tolist()) <= {0, 1, 2, 255}
        assert np.array_equal(cls == 255, parts == 255)
        objects = (cls >= 1) & (cls <= NUM_CLASSES)
        assert np.array_equal(objects, (parts == 1) | (parts == 2))
        head += int((parts == 2).sum())
        body += int((parts == 1).sum())
    assert 0.04 < head / (head + body) < 0.2


def test_no_border_band_when_disabled() -> None:
    scene = render_scene(image_rng(0, 0), SIZE, SceneDesign(border_width=0))
    assert 255 not in scene.classes and 255 not in scene.parts
    assert scene.labels().sum() >= 1


def test_heads_are_unique_colour_pairs() -> None:
    pairs = {frozenset(look.head_colours) for look in CLASS_LOOKS}
    assert all(len(set(look.head_colours)) == 2 for look in CLASS_LOOKS)
    bodies = {(look.family, look.pattern) for look in CLASS_LOOKS}
    assert len(CLASS_LOOKS) == NUM_CLASSES and len(pairs) == NUM_CLASSES and len(bodies) == NUM_CLASSES


@pytest.mark.parametrize("bad", [dict(class_mix=(0.5, 0.4)), dict(decoy_prob=1.5), dict(head_fraction=(0.2, 0.1))])
def test_design_rejects_bad_values(bad: dict) -> None:
    with pytest.raises(ValueError):
        SceneDesign(**bad)


def test_cli_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "syn"
    argv = ["make-synthetic", "--out", str(out), "--n-train", "3", "--n-val", "2", "--size", str(SIZE),
            "--seed", "4", "--workers", "2", "--no-progress"]
    assert main(argv) == 0
    assert capsys.readouterr().out == f"wrote 3 train + 2 val images (8 objects; 1 class: 4, 2 classes: 1) to {out}\n"
    assert len(list((out / "JPEGImages").glob("*.jpg"))) == 5
    assert len(np.load(out / "cls_labels.npy", allow_pickle=True).item()) == 5
    assert main(argv) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["make-synthetic", "--out", str(tmp_path / "none"), "--n-train", "0", "--n-val", "0"]) == 2
