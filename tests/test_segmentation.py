"""Segmentation training on pseudo labels, predictions scored by eval, and the whole chain through the CLI."""
import importlib.util
import json
import re
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision.models.segmentation import deeplabv3_mobilenet_v3_large

from infercam.cli import main
from infercam.data.images import load_image
from infercam.data.voc import VOCDataset, read_label_png
from infercam.io import save_label_png
from infercam.models import IMAGENET_MEAN, IMAGENET_STD, build_network, create, read_checkpoint
from infercam.run.manifest import file_sha256
from infercam.train.loop import TrainConfig, random_crop
from infercam.train.segmentation import predict, segmentation_loss, train_segmentation
from seg_voc import make_seg_voc


def test_loss_ignores_255_and_is_zero_without_labelled_pixels():
    logits = torch.tensor([[[[2.0, -1.0]], [[0.0, 3.0]]]])  # (1, 2 classes, 1, 2)
    label = torch.tensor([[[0, 255]]], dtype=torch.uint8)
    expected = F.cross_entropy(logits[:, :, :, :1], torch.tensor([[[0]]]))
    assert torch.isclose(segmentation_loss(logits, label), expected)
    assert segmentation_loss(logits, torch.full((1, 1, 2), 255, dtype=torch.uint8)).item() == 0


def test_random_crop_pads_small_images_and_windows_large_ones():
    image = torch.arange(2 * 3 * 4, dtype=torch.float32).view(2, 3, 4) + 1
    label = torch.arange(12, dtype=torch.uint8).view(3, 4)
    big_image, big_label = random_crop(image, label, 6)
    assert big_image.shape == (2, 6, 6) and (big_label != 255).sum() == 12 and (big_image[0] != 0).sum() == 12
    assert torch.equal(big_label[big_label != 255], label.flatten())
    small_image, small_label = random_crop(image, label, 2)
    rows, cols = np.argwhere(label.numpy() == int(small_label[0, 0]))[0]
    assert torch.equal(small_label, label[rows:rows + 2, cols:cols + 2])
    assert torch.equal(small_image, image[:, rows:rows + 2, cols:cols + 2])


def test_torchvision_deeplab_keeps_torchvision_keys_and_returns_logits_at_input_size():
    net = create("deeplabv3-mobilenet", num_classes=21).eval()
    reference = deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=21, aux_loss=False)
    assert list(net.state_dict()) == list(reference.state_dict())
    with torch.no_grad():
        assert net(torch.randn(1, 3, 50, 70)).shape == (1, 21, 50, 70)


@pytest.fixture()
def voc(tmp_path):
    return make_seg_voc(tmp_path / "voc")


def data_args(voc):
    return ["--voc-root", str(voc), "--list", str(voc / "ImageSets/Segmentation/train.txt"), "--no-progress"]


def miou(voc, pred, tmp_path):
    out = tmp_path / "scores.json"
    assert main(["eval", "--pred", str(pred), "--voc-root", str(voc), "--list",
                 str(voc / "ImageSets/Segmentation/train.txt"), "--json", str(out)]) == 0
    return json.loads(out.read_text())["miou"]


def train_seg_args(voc, pseudo, tmp_path, steps=3):
    return ["train-seg", *data_args(voc), "--pseudo", str(pseudo), "--out", str(tmp_path / "seg.pth"),
            "--network", "demo-seg", "--crop-size", "64", "--batch-size", "2", "--max-steps", str(steps),
            "--out-pred", str(tmp_path / "pred")]


def test_train_seg_saves_a_checkpoint_and_predictions_that_eval_scores(voc, tmp_path):
    assert main(train_seg_args(voc, voc / "SegmentationClass", tmp_path)) == 0
    state, config = read_checkpoint(tmp_path / "seg.pth")
    assert config["arch"] == "demo-seg" and config["num_classes"] == 21 and config["task"] == "segmentation"
    assert config["train"]["max_steps"] == 3 and config["train"]["crop_size"] == 64
    model, report = build_network("demo-seg", tmp_path / "seg.pth")
    assert report.ok
    image = load_image(voc / "JPEGImages" / "img_0.jpg")
    np.testing.assert_array_equal(predict(model, image), read_label_png(tmp_path / "pred" / "img_0.png"))
    assert 0 <= miou(voc, tmp_path / "pred", tmp_path) <= 100


def test_a_rerun_reuses_the_finished_checkpoint_and_writes_only_missing_predictions(voc, tmp_path, capsys):
    args = train_seg_args(voc, voc / "SegmentationClass", tmp_path)
    assert main(args) == 0
    checkpoint = (tmp_path / "seg.pth").read_bytes()
    kept = (tmp_path / "pred" / "img_1.png").stat().st_mtime_ns
    (tmp_path / "pred" / "img_0.png").unlink()  # as if stopped while predicting
    capsys.readouterr()
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "holds a finished run with these options: reused" in captured.err
    assert "wrote 1 predictions" in captured.out and "3 kept from the earlier run" in captured.out
    assert (tmp_path / "seg.pth").read_bytes() == checkpoint
    assert (tmp_path / "pred" / "img_1.png").stat().st_mtime_ns == kept
    model, _ = build_network("demo-seg", tmp_path / "seg.pth")
    image = load_image(voc / "JPEGImages" / "img_0.jpg")
    np.testing.assert_array_equal(predict(model, image), read_label_png(tmp_path / "pred" / "img_0.png"))


def test_a_rerun_with_other_options_refuses_to_replace_the_checkpoint_unless_overwrite(voc, tmp_path, capsys):
    args = train_seg_args(voc, voc / "SegmentationClass", tmp_path)
    assert main(args) == 0
    checkpoint = (tmp_path / "seg.pth").read_bytes()
    capsys.readouterr()
    assert main([*args, "--lr", "0.5"]) == 2
    assert "seg.pth exists, trained with other options (lr): use --overwrite" in capsys.readouterr().err
    assert (tmp_path / "seg.pth").read_bytes() == checkpoint
    assert main([*args, "--lr", "0.5", "--overwrite"]) == 0
    assert "wrote 4 predictions" in capsys.readouterr().out
    assert read_checkpoint(tmp_path / "seg.pth")[1]["train"]["lr"] == 0.5


def test_a_rerun_on_other_labels_or_classes_is_refused_and_a_new_out_folder_is_made(voc, tmp_path, capsys):
    args = train_seg_args(voc, voc / "SegmentationClass", tmp_path)
    args[args.index("--out") + 1] = str(tmp_path / "new" / "seg.pth")  # a folder not there yet, and 2 epochs
    assert main(args) == 0 and (tmp_path / "new" / "seg.pth").is_file()
    other = tmp_path / "other_labels"
    shutil.copytree(voc / "SegmentationClass", other)
    capsys.readouterr()
    assert main([a if a != str(voc / "SegmentationClass") else str(other) for a in args]) == 2
    assert "trained with other options (labels): use --overwrite" in capsys.readouterr().err
    assert main([*args, "--num-classes", "5"]) == 2
    assert "trained with other options (num_classes): use --overwrite" in capsys.readouterr().err


def test_a_pred_list_naming_a_missing_image_stops_before_training(voc, tmp_path, capsys):
    listing = tmp_path / "pred.txt"
    listing.write_text("img_0\nno_such_image\n")
    assert main([*train_seg_args(voc, voc / "SegmentationClass", tmp_path), "--pred-list", str(listing)]) == 2
    err = capsys.readouterr().err
    assert "--pred-list names 1 image not in" in err and "no_such_image" in err
    assert not (tmp_path / "seg.pth").exists()


def test_a_bad_image_in_a_loader_worker_is_one_error_line(voc, tmp_path, capsys):
    (voc / "JPEGImages" / "img_1.jpg").write_bytes(b"not a picture")
    assert main([*train_seg_args(voc, voc / "SegmentationClass", tmp_path), "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert "infercam train-seg: error: not an image file (format not recognised): " in err
    assert "Traceback" not in err and "DataLoader worker" not in err


@pytest.mark.parametrize("extra, message", [
    (["--network", "demo"], "train-seg needs a segmentation network"),
    (["--network", "demo-aff"], "network 'demo-aff' is an AffinityNet: train-seg needs a segmentation network"),
    (["--num-classes", "3"], "img_0.png holds value 8: labels of 3 classes are 0-2"),
    (["--network", "deeplabv3-mobilenet", "--batch-size", "1"], "needs at least 2 images per batch"),
])
def test_a_network_or_labels_that_do_not_fit_segmentation_training_are_one_line(extra, message, voc, tmp_path,
                                                                                 capsys):
    assert main([*train_seg_args(voc, voc / "SegmentationClass", tmp_path, steps=1), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and not (tmp_path / "seg.pth").exists()


def test_train_seg_refuses_to_replace_an_out_file_that_is_no_training_checkpoint(voc, tmp_path, capsys):
    args = train_seg_args(voc, voc / "SegmentationClass", tmp_path)
    (tmp_path / "seg.pth").write_text("my notes")
    assert main(args) == 2
    assert "seg.pth exists but is not a usable checkpoint (not a PyTorch checkpoint" in capsys.readouterr().err
    torch.save({"weight": torch.zeros(1)}, tmp_path / "seg.pth")
    assert main(args) == 2
    assert "seg.pth exists but was not written by an infercam training run" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0


def full_image_loss(model, voc):
    model.eval()
    losses = []
    for i in range(4):
        x = torch.from_numpy(load_image(voc / "JPEGImages" / f"img_{i}.jpg")).permute(2, 0, 1).float() / 255
        x = (x - torch.tensor(IMAGENET_MEAN).view(3, 1, 1)) / torch.tensor(IMAGENET_STD).view(3, 1, 1)
        label = torch.from_numpy(read_label_png(voc / "SegmentationClass" / f"img_{i}.png"))[None]
        with torch.no_grad():
            losses.append(segmentation_loss(model(x[None]), label).item())
    return float(np.mean(losses))


def test_training_on_labels_lowers_the_loss(voc, tmp_path):
    torch.manual_seed(0)
    model = create("demo-seg", num_classes=21)
    before = full_image_loss(model, voc)
    config = TrainConfig(epochs=10, batch_size=2, lr=0.05, weight_decay=1e-4, crop_size=64, max_steps=6)
    train_segmentation(model, "demo-seg", 21, VOCDataset.open(voc), voc / "SegmentationClass", tmp_path / "s.pth",
                       config, progress=False)
    assert full_image_loss(model, voc) < 0.5 * before


def test_a_diverging_training_stops_with_one_line_and_leaves_no_checkpoint(voc, tmp_path, capsys):
    assert main(train_seg_args(voc, voc / "SegmentationClass", tmp_path) + ["--lr", "1e30"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("infercam train-seg: error: training diverged at step") and "lower --lr" in err[-1]
    assert not (tmp_path / "seg.pth").exists()


@pytest.mark.parametrize("value, message", [
    (50, r"img_3\.png holds value 50: labels of 21 classes are 0-20"),
    (255, r"every pixel of the 4 label PNGs checked in .* is 255"),
])
def test_train_seg_checks_every_label_before_training(value, message, voc, tmp_path, capsys):
    """A stray value in one pixel that no crop may reach, or labels that are all ignored (loss 0), stop the run."""
    pseudo = tmp_path / "pseudo"
    shutil.copytree(voc / "SegmentationClass", pseudo)
    for i in range(4):
        label = read_label_png(pseudo / f"img_{i}.png")
        if value == 255:
            label[:] = 255
        elif i == 3:
            label[-1, -1] = value
        save_label_png(pseudo / f"img_{i}.png", label)
    assert main(train_seg_args(voc, pseudo, tmp_path, steps=1)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.search(message, err[0]) and not (tmp_path / "seg.pth").exists()
    assert not (tmp_path / "pred").exists() or not any((tmp_path / "pred").iterdir())  # the folder is not claimed


def test_train_seg_reports_missing_pseudo_labels(voc, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(train_seg_args(voc, tmp_path / "empty", tmp_path)) == 2
    assert "4 label PNGs missing" in capsys.readouterr().err
    (tmp_path / "three").mkdir()
    for label in sorted((voc / "SegmentationClass").glob("*.png"))[1:]:
        shutil.copy(label, tmp_path / "three")
    assert main(train_seg_args(voc, tmp_path / "three", tmp_path)) == 2
    assert "1 label PNG missing" in capsys.readouterr().err  # not '1 label PNGs'


@pytest.mark.skipif(importlib.util.find_spec("pydensecrf") is None, reason="pydensecrf2 not installed")
def test_full_chain_crf_affinity_walk_segmentation_eval(voc, tmp_path):
    cams = ["--cam", str(voc / "cams")]
    assert main(["pseudo", *data_args(voc), *cams, "--method", "crf", "--affinity-labels",
                 "--out", str(tmp_path / "conf")]) == 0
    assert main(["train-aff", *data_args(voc), "--aff-labels", str(tmp_path / "conf"),
                 "--out", str(tmp_path / "aff.pth"), "--network", "demo-aff", "--crop-size", "96",
                 "--batch-size", "2", "--max-steps", "3"]) == 0
    assert main(["pseudo", *data_args(voc), *cams, "--method", "rw", "--aff-network", "demo-aff",
                 "--aff-weights", str(tmp_path / "aff.pth"), "--out", str(tmp_path / "rw")]) == 0
    assert main(train_seg_args(voc, tmp_path / "rw", tmp_path)) == 0
    assert 0 <= miou(voc, tmp_path / "pred", tmp_path) <= 100
    manifest = json.loads((tmp_path / "rw" / "infercam-run.json").read_text())
    assert manifest["totals"]["done"] == 4 and manifest["config"]["aff_network"] == "demo-aff"


def test_random_walk_defaults_to_the_bundled_affinitynet(voc, tmp_path):
    out = tmp_path / "rw"
    assert main(["pseudo", *data_args(voc), "--cam", str(voc / "cams"), "--method", "rw", "--out", str(out)]) == 0
    manifest = json.loads((out / "infercam-run.json").read_text())
    assert manifest["config"]["aff_network"] == "demo-aff"
    assert manifest["config"]["aff_weights"].endswith("weights/demo_aff.pt")
    assert len(list(out.glob("*.png"))) == manifest["totals"]["done"] == 4


def test_small_resnet_seg_starts_from_a_small_resnet_classifier(voc, tmp_path, capsys):
    """Its backbone keys are the classifier's, so --init-weights takes every backbone tensor and only the head is new."""
    classifier = create("small-resnet", num_classes=20)
    torch.save({"state_dict": classifier.state_dict()}, tmp_path / "cls.pt")
    seg = create("small-resnet-seg", num_classes=21)
    assert seg(torch.zeros(1, 3, 40, 52)).shape == (1, 21, 40, 52)
    assert main(train_seg_args(voc, voc / "SegmentationClass", tmp_path)[:-2] + [
        "--network", "small-resnet-seg", "--init-weights", str(tmp_path / "cls.pt"), "--max-steps", "1"]) == 0
    out = capsys.readouterr().out
    backbone = sum(1 for k in seg.state_dict() if k.startswith(("stem.", "stages.")))
    assert f"init: {backbone} tensors from" in out and "1 checkpoint tensors unused, 0 of another shape" in out


def test_small_resnet_seg_takes_the_backbone_shape_of_a_train_cls_checkpoint(voc, tmp_path, capsys):
    """A classifier trained with train-cls --arch-kwargs (other widths): small-resnet-seg was built with the default
    widths, so its backbone got 60 tensors "of another shape" and trained from scratch; it is built as the
    classifier was, and its checkpoint records how (build_network loads it)."""
    kwargs = {"widths": [8, 16, 16, 32], "depths": [1, 1, 1, 1], "dilations": [1, 1, 1, 2]}
    classifier = create("small-resnet", num_classes=20, **kwargs)
    torch.save({"state_dict": classifier.state_dict(), "config": {"arch": "small-resnet", "arch_kwargs": kwargs}},
               tmp_path / "cls.pt")
    assert main(train_seg_args(voc, voc / "SegmentationClass", tmp_path)[:-2] + [
        "--network", "small-resnet-seg", "--init-weights", str(tmp_path / "cls.pt"), "--max-steps", "1"]) == 0
    assert "1 checkpoint tensors unused, 0 of another shape" in capsys.readouterr().out
    model, loaded = build_network("small-resnet-seg", tmp_path / "seg.pth")
    assert loaded.ok and model.stem[0].out_channels == 8
    # the prediction folder's record holds the command's options only: one more key would make a folder written
    # by an earlier infercam "the outputs of another run"
    assert main(train_seg_args(voc, voc / "SegmentationClass", tmp_path) + [
        "--network", "small-resnet-seg", "--init-weights", str(tmp_path / "cls.pt"), "--max-steps", "1"]) == 0
    config = json.loads((tmp_path / "pred" / "infercam-run.json").read_text())["config"]
    assert "arch_kwargs" not in config
    # a checkpoint from before, trained with the default widths from the same classifier, is refused in one line
    # (it was torch's traceback of mismatched sizes), and so is its unfinished state
    capsys.readouterr()
    old = torch.load(tmp_path / "seg.pth", weights_only=False)
    old["state_dict"] = create("small-resnet-seg", num_classes=21).state_dict()
    torch.save(old, tmp_path / "seg.pth")
    assert main(train_seg_args(voc, voc / "SegmentationClass", tmp_path)[:-2] + [
        "--network", "small-resnet-seg", "--init-weights", str(tmp_path / "cls.pt"), "--max-steps", "1"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"infercam train-seg: error: {tmp_path / 'seg.pth'} holds weights of another shape than the network built "
        "now (e.g. a small-resnet-seg that an older infercam built with its default widths): use --overwrite to "
        "train again, or another --out"]


def test_a_second_training_run_on_the_same_checkpoint_is_refused(voc, tmp_path, capsys):
    from infercam.io import folder_lock

    with folder_lock(tmp_path / "seg.pth.lock"):  # another run is training into seg.pth
        assert main(train_seg_args(voc, voc / "SegmentationClass", tmp_path, steps=1)) == 2
    err = capsys.readouterr().err
    assert "another run (pid" in err and not (tmp_path / "seg.pth").exists()
    # the checkpoint it writes, not its folder (under torchrun, a rank said "is writing to .:")
    assert f"is writing to {tmp_path / 'seg.pth'}: wait for it to end" in err
    assert main(train_seg_args(voc, voc / "SegmentationClass", tmp_path, steps=1)) == 0  # once it has ended
    assert not (tmp_path / "seg.pth.lock").exists()


def test_labels_written_again_since_the_checkpoint_are_other_data(voc, tmp_path, capsys):
    labels = tmp_path / "labels"
    shutil.copytree(voc / "SegmentationClass", labels)
    args = train_seg_args(voc, labels, tmp_path)
    assert main(args) == 0
    mask = read_label_png(labels / "img_2.png")
    mask[:8] = 255  # e.g. pseudo labels made again from other CAMs, in the same folder
    save_label_png(labels / "img_2.png", mask)
    capsys.readouterr()
    assert main(args) == 2
    assert "trained with other options (labels_sha256): use --overwrite" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0


@pytest.mark.parametrize("folder", ["pseudo", "SegmentationClass", "JPEGImages"])
def test_predictions_never_replace_an_input_folder(folder, voc, tmp_path, capsys):
    pseudo = tmp_path / "pseudo"
    shutil.copytree(voc / "SegmentationClass", pseudo)
    target = pseudo if folder == "pseudo" else voc / folder
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    args = train_seg_args(voc, pseudo, tmp_path)
    args[args.index("--out-pred") + 1] = str(target)
    assert main([*args, "--overwrite"]) == 2
    err = capsys.readouterr().err
    what = "the --pseudo folder" if folder == "pseudo" else f"the data set's {folder}/ folder"
    assert f"--out-pred {target} is {what}, which this run reads: writing there would replace" in err
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before and not (tmp_path / "seg.pth").exists()


def test_a_prediction_folder_of_other_files_or_another_checkpoint_is_refused_before_training(voc, tmp_path, capsys,
                                                                                             monkeypatch):
    import infercam.commands.train_seg

    args = train_seg_args(voc, voc / "SegmentationClass", tmp_path)
    (tmp_path / "pred").mkdir()
    (tmp_path / "pred" / "img_0.png").write_bytes(b"someone else's file")
    assert main(args) == 2
    assert "holds files that no infercam run recorded" in capsys.readouterr().err
    assert not (tmp_path / "seg.pth").exists()
    shutil.rmtree(tmp_path / "pred")
    assert main(args) == 0
    predicted = {p.name: p.read_bytes() for p in (tmp_path / "pred").glob("*.png")}
    other = [a if a != str(tmp_path / "seg.pth") else str(tmp_path / "other.pth") for a in args]
    capsys.readouterr()
    assert main(other) == 2  # another checkpoint's predictions would replace these
    err = capsys.readouterr().err
    assert f"pred holds the outputs of another run (checkpoint: '{tmp_path / 'seg.pth'}' -> " \
           f"'{tmp_path / 'other.pth'}'" in err and "here --overwrite also trains --out again" in err
    assert not (tmp_path / "other.pth").exists()
    assert {p.name: p.read_bytes() for p in (tmp_path / "pred").glob("*.png")} == predicted

    def stopped(*a, **k):  # interrupted while training: the folder is already claimed for other.pth
        raise KeyboardInterrupt

    monkeypatch.setattr(infercam.commands.train_seg, "train_segmentation", stopped)
    assert main([*other, "--overwrite"]) == 130
    assert main(args) == 2  # so seg.pth's run may not write there now
    assert "(checkpoint: " in capsys.readouterr().err
    monkeypatch.undo()
    assert main(other) == 0  # the interrupted run, resumed without --overwrite
    manifest = json.loads((tmp_path / "pred" / "infercam-run.json").read_text())
    assert manifest["totals"] == {"done": 4, "skipped": 0, "failed": 0}
    assert manifest["model_sha256"] == file_sha256(tmp_path / "other.pth")


def test_no_other_run_writes_to_the_prediction_folder_while_this_one_trains(voc, tmp_path, capsys, monkeypatch):
    import infercam.commands.train_seg

    args = train_seg_args(voc, voc / "SegmentationClass", tmp_path)
    other = [a if a != str(tmp_path / "seg.pth") else str(tmp_path / "other.pth") for a in args]
    train, seen = infercam.commands.train_seg.train_segmentation, []

    def train_while_another_run_starts(*a, **k):
        seen.append(main([*other, "--overwrite"]))  # would replace this run's claim and, later, its predictions
        seen.append(capsys.readouterr().err)
        return train(*a, **k)

    monkeypatch.setattr(infercam.commands.train_seg, "train_segmentation", train_while_another_run_starts)
    assert main(args) == 0
    assert seen[0] == 2 and "another run (pid" in seen[1] and f"is writing to {tmp_path / 'pred'}" in seen[1]
    assert not (tmp_path / "other.pth").exists()
    manifest = json.loads((tmp_path / "pred" / "infercam-run.json").read_text())
    assert manifest["config"]["checkpoint"] == str(tmp_path / "seg.pth") and manifest["totals"]["done"] == 4
    assert not list((tmp_path / "pred").glob("*.lock"))


def test_predictions_follow_their_checkpoint_beside_it_and_are_made_anew_when_it_is_trained_again(voc, tmp_path,
                                                                                                capsys):
    run = tmp_path / "run"
    args = train_seg_args(voc, voc / "SegmentationClass", run)
    args[args.index("--out-pred") + 1] = str(run)  # the checkpoint's own folder
    assert main(args) == 0
    assert main(args) == 0 and "wrote 0 predictions" in capsys.readouterr().out
    (run / "seg.pth").unlink()  # trained again with the same options: predictions of the new weights
    assert main(args) == 0
    assert "wrote 4 predictions" in capsys.readouterr().out
    manifest = json.loads((run / "infercam-run.json").read_text())
    assert manifest["model_sha256"] == file_sha256(run / "seg.pth") and manifest["outputs_since"] is not None


def test_predictions_need_no_image_labels_and_an_unreadable_image_fails_alone(voc, tmp_path, capsys):
    shutil.copy(voc / "JPEGImages" / "img_0.jpg", voc / "JPEGImages" / "unlabelled.jpg")
    (voc / "JPEGImages" / "broken.jpg").write_bytes(b"not a picture")
    listing = tmp_path / "pred.txt"
    listing.write_text("unlabelled\nbroken\nimg_1\n")
    assert main([*train_seg_args(voc, voc / "SegmentationClass", tmp_path), "--pred-list", str(listing)]) == 1
    captured = capsys.readouterr()
    assert "wrote 2 predictions" in captured.out and "failed broken: not an image file" in captured.err
    assert sorted(p.name for p in (tmp_path / "pred").glob("*.png")) == ["img_1.png", "unlabelled.png"]
    manifest = json.loads((tmp_path / "pred" / "infercam-run.json").read_text())
    assert manifest["totals"] == {"done": 2, "skipped": 0, "failed": 1}


def test_an_out_pred_that_is_a_file_is_refused_before_training(voc, tmp_path, capsys):
    args = train_seg_args(voc, voc / "SegmentationClass", tmp_path)
    (tmp_path / "pred").write_text("notes")
    assert main(args) == 2
    assert f"--out-pred folder {tmp_path / 'pred'} exists and is not a folder" in capsys.readouterr().err
    assert not (tmp_path / "seg.pth").exists()


@pytest.mark.parametrize("command, listed, unlisted", [
    ("infer", ["demo", "resnet38", "timm:<name>"], ["demo-seg", "demo-aff", "deeplabv3-resnet50", "resnet38-aff"]),
    ("train-aff", ["demo (= demo-aff)", "resnet38-aff"], ["demo-seg", "deeplabv3-resnet50", "efficientnet-lite0"]),
    ("train-seg", ["deeplabv3-resnet50", "demo-seg", "small-resnet-seg"], ["demo-aff", "efficientnet-lite0",
                                                                        "resnet38,", "timm:<name>"]),
])
def test_the_network_help_lists_the_networks_the_command_takes(command, listed, unlisted, capsys):
    """--help's "known" networks were every registered name, AffinityNets and segmentation networks in infer's
    list and classifiers in train-seg's, though each command refuses them."""
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    known = text.rsplit("--network NETWORK", 1)[1].split(" --", 1)[0].replace("- ", "-")  # argparse's wrapping
    assert all(name in known for name in listed), known
    assert not any(name in known for name in unlisted), known


def test_training_under_torchrun_is_refused_on_every_rank(voc, tmp_path, capsys, monkeypatch):
    """torchrun --nproc_per_node=2 train-aff ...: one rank trained while the other was refused by its lock with
    'another run ... is writing to .', and torchrun reported the job failed. Each rank now says why at once."""
    for rank in ("0", "1"):
        monkeypatch.setenv("RANK", rank)
        monkeypatch.setenv("LOCAL_RANK", rank)
        monkeypatch.setenv("WORLD_SIZE", "2")
        assert main(train_seg_args(voc, voc / "SegmentationClass", tmp_path, steps=1)) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == ["infercam train-seg: error: train-seg runs in one process: run it without torchrun "
                       "(torchrun shares the images of cam, infer, split and pseudo out among its processes)"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["voc"]
