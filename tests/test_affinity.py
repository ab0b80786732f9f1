"""AffinityNet: psa's pair layout and labels, the loss, the networks (psa's keys), train-aff through the CLI."""
import re

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from infercam.cli import main
from infercam.data.voc import read_label_png
from infercam.io import save_label_png
from infercam.models import build_network, create, list_models, read_checkpoint
from infercam.models.pixel_pairs import affinity_labels, dense_affinity, pair_affinity, pair_indices, search_offsets
from infercam.train.affinity import affinity_loss, downsample_label
from seg_voc import make_seg_voc


def test_search_offsets_are_psas_half_disc():
    assert search_offsets(2) == [(0, 1), (1, -1), (1, 0), (1, 1)]
    offsets = search_offsets(5)
    assert len(offsets) == 34 and offsets[:4] == [(0, 1), (0, 2), (0, 3), (0, 4)]
    assert [sum(1 for dy, _ in offsets if dy == row) for row in range(1, 5)] == [9, 9, 7, 5]


def test_pair_indices_by_hand():
    src, dst = pair_indices(3, 4, 2)  # cells 0..11 row-major; sources: rows 0-1, columns 1-2
    np.testing.assert_array_equal(src, [1, 2, 5, 6])
    np.testing.assert_array_equal(dst, [[2, 3, 6, 7], [4, 5, 8, 9], [5, 6, 9, 10], [6, 7, 10, 11]])
    with pytest.raises(Exception, match="too small"):
        pair_indices(8, 8, 5)


def test_affinity_labels_by_hand():
    label = np.array([[0, 0, 1, 1],
                      [0, 255, 1, 1],
                      [0, 0, 0, 2]], np.uint8)
    bg, fg, neg = affinity_labels(label, 2)
    # Pairs (source, destination) per offset, as in test_pair_indices_by_hand; (5, x) touch 255.
    # bg: (1,4).  fg: (2,3) (6,7) (2,6) (2,7).  neg: (1,2) (6,9) (6,10) (1,6) (6,11).
    np.testing.assert_array_equal(bg, [[0, 0, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(fg, [[0, 1, 0, 1], [0, 0, 0, 0], [0, 1, 0, 0], [0, 1, 0, 0]])
    np.testing.assert_array_equal(neg, [[1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 0, 1], [1, 0, 0, 1]])


def test_pair_affinity_and_dense_matrix():
    feats = torch.rand(2, 3, 6, 9)
    aff = pair_affinity(feats, 3)
    src, dst = pair_indices(6, 9, 3)
    flat = feats.flatten(2)
    for n in range(2):
        for d in range(dst.shape[0]):
            for f in (0, 5, len(src) - 1):
                expected = torch.exp(-(flat[n, :, src[f]] - flat[n, :, dst[d, f]]).abs().mean())
                assert torch.isclose(aff[n, d, f], expected)
    dense = dense_affinity(aff[0], 6, 9, 3)
    assert torch.equal(dense, dense.T) and torch.equal(dense.diagonal(), torch.ones(54))
    assert dense[src[0], dst[2, 0]] == aff[0, 2, 0]
    assert int((dense > 0).sum()) == 54 + 2 * aff[0].numel()


def test_downsample_label_takes_the_block_majority():
    label = np.array([[0, 0, 1, 1, 255],
                      [0, 1, 255, 255, 255],
                      [2, 2, 255, 255, 3]], np.uint8)
    # Blocks 2x2 (padded with 255): [0 0 0 1] -> 0; [1 1 255 255] -> tie, lower value 1; [255 x4] -> 255;
    # [2 2 255 255] -> 2; [255 255 255 255] -> 255; [3 255 255 255] -> 255.
    np.testing.assert_array_equal(downsample_label(label, 2), [[0, 1, 255], [2, 255, 255]])


def test_loss_is_zero_for_perfect_affinities_and_log2_for_a_half():
    bg = torch.tensor([[1.0, 0, 0, 0]])
    fg = torch.tensor([[0, 1.0, 0, 0]])
    neg = torch.tensor([[0, 0, 1.0, 1.0]])
    perfect = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    loss, parts = affinity_loss(perfect, bg, fg, neg)
    assert abs(loss.item()) < 1e-4 and set(parts) == {"loss", "bg", "fg", "neg"}
    loss, _ = affinity_loss(torch.full((1, 4), 0.5), bg, fg, neg)
    assert loss.item() == pytest.approx(np.log(2), abs=1e-4)  # bg/4 + fg/4 + neg/2 with each log 2
    loss, parts = affinity_loss(torch.full((1, 4), 0.5), torch.zeros(1, 4), fg, neg)  # no bg pair: its term is 0
    assert loss.item() == pytest.approx(0.75 * np.log(2), abs=1e-4)
    # printed as "bg 0.0000", not "-0.0000" (train-aff's summary on a few tiny crops without a negative pair)
    assert f"{parts['bg']:.4f}" == "0.0000"


def psa_resnet38_aff_shapes() -> dict[str, tuple[int, ...]]:
    """Keys and shapes of psa's network/resnet38_aff.py Net, written out from psa's resnet38d.py."""
    shapes: dict[str, tuple[int, ...]] = {"conv1a.weight": (64, 3, 3, 3)}

    def bn(name, c):
        shapes.update({f"{name}.{k}": (c,) for k in ("weight", "bias", "running_mean", "running_var")})

    basic = [("b2", 64, 128, 128, 2)] + [(f"b2_{i}", 128, 128, 128, 1) for i in (1, 2)]
    basic += [("b3", 128, 256, 256, 2)] + [(f"b3_{i}", 256, 256, 256, 1) for i in (1, 2)]
    basic += [("b4", 256, 512, 512, 2)] + [(f"b4_{i}", 512, 512, 512, 1) for i in range(1, 6)]
    basic += [("b5", 512, 512, 1024, 1)] + [(f"b5_{i}", 1024, 512, 1024, 1) for i in (1, 2)]
    for name, cin, mid, cout, stride in basic:  # ResBlock
        bn(f"{name}.bn_branch2a", cin)
        shapes[f"{name}.conv_branch2a.weight"] = (mid, cin, 3, 3)
        bn(f"{name}.bn_branch2b1", mid)
        shapes[f"{name}.conv_branch2b1.weight"] = (cout, mid, 3, 3)
        if cin != cout or stride != 1:
            shapes[f"{name}.conv_branch1.weight"] = (cout, cin, 1, 1)
    for name, cin, cout in (("b6", 1024, 2048), ("b7", 2048, 4096)):  # ResBlock_bot
        bn(f"{name}.bn_branch2a", cin)
        shapes[f"{name}.conv_branch2a.weight"] = (cout // 4, cin, 1, 1)
        bn(f"{name}.bn_branch2b1", cout // 4)
        shapes[f"{name}.conv_branch2b1.weight"] = (cout // 2, cout // 4, 3, 3)
        bn(f"{name}.bn_branch2b2", cout // 2)
        shapes[f"{name}.conv_branch2b2.weight"] = (cout, cout // 2, 1, 1)
        shapes[f"{name}.conv_branch1.weight"] = (cout, cin, 1, 1)
    bn("bn7", 4096)
    shapes.update({"f8_3.weight": (64, 512, 1, 1), "f8_4.weight": (128, 1024, 1, 1),
                   "f8_5.weight": (256, 4096, 1, 1), "f9.weight": (448, 448, 1, 1)})
    return shapes


def test_resnet38_aff_has_psas_keys_frozen_layers_and_parameter_groups():
    net = create("resnet38-aff")
    own = {k: tuple(v.shape) for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert own == psa_resnet38_aff_shapes()
    frozen = {k for k, p in net.named_parameters() if not p.requires_grad}
    assert "conv1a.weight" in frozen and "b2_2.conv_branch2b1.weight" in frozen and "bn7.weight" in frozen
    assert "b3.conv_branch2a.weight" not in frozen
    weights, biases, new_weights, new_biases = net.parameter_groups()
    assert [p.shape[:2] for p in new_weights] == [(64, 512), (128, 1024), (256, 4096), (448, 448)]
    assert not biases and not new_biases and len(weights) == sum(1 for k in own if k.startswith("b") and "conv" in k
                                                                   and not k.startswith(("b2.", "b2_")))


def test_demo_aff_is_compact_stride_8_and_registered():
    assert {"resnet38-aff", "demo-aff"} <= set(list_models())
    net = create("demo-aff")
    assert 300_000 < sum(p.numel() for p in net.parameters()) < 1_500_000
    x = torch.randn(1, 3, 80, 72)
    assert net.forward_features(x).shape[2:] == (10, 9)
    assert net(x).shape == (1, 34, (10 - 4) * (9 - 8))
    weights, biases, new_weights, new_biases = net.parameter_groups()
    assert len(new_weights) == 4 and not new_biases  # the bias-free head f8_3, f8_4, f8_5, f9
    assert len(weights) + len(biases) + 4 == len(list(net.parameters()))


@pytest.fixture()
def voc_with_confident_labels(tmp_path):
    """The tiny VOC folder with confident labels from its masks: 255 on a band around each border."""
    voc = make_seg_voc(tmp_path / "voc")
    labels = tmp_path / "aff"
    labels.mkdir()
    for i in range(4):
        gt = read_label_png(voc / "SegmentationClass" / f"img_{i}.png")
        band = ndimage.grey_dilation(gt, size=7) != ndimage.grey_erosion(gt, size=7)
        save_label_png(labels / f"img_{i}.png", np.where(band, 255, gt))
    return voc, labels


def data_args(voc):
    return ["--voc-root", str(voc), "--list", str(voc / "ImageSets/Segmentation/train.txt"), "--no-progress"]


def test_train_aff_saves_a_checkpoint_that_rw_loads(voc_with_confident_labels, tmp_path, capsys):
    voc, labels = voc_with_confident_labels
    ckpt = tmp_path / "aff.pth"
    args = ["train-aff", *data_args(voc), "--aff-labels", str(labels), "--out", str(ckpt), "--network", "demo-aff",
            "--crop-size", "96", "--batch-size", "2", "--max-steps", "3"]
    assert main(args) == 0
    state, config = read_checkpoint(ckpt)
    assert config["arch"] == "demo-aff" and config["arch_kwargs"] == {"radius": 5}
    assert config["train"]["max_steps"] == 3 and config["train"]["lr"] == 0.1
    model, report = build_network("demo-aff", ckpt)
    assert report.ok and not model.training
    assert main(args) == 0 and "aff.pth holds a finished run with these options: reused" in capsys.readouterr().err
    assert main([*args[:-2], "--max-steps", "1", "--init-weights", str(ckpt), "--out", str(tmp_path / "b.pth")]) == 0
    assert f"init: {len(state)} tensors" in capsys.readouterr().out
    out = tmp_path / "rw"
    assert main(["pseudo", *data_args(voc), "--cam", str(voc / "cams"), "--method", "rw", "--aff-network",
                 "demo-aff", "--aff-weights", str(ckpt), "--out", str(out)]) == 0
    for i in range(4):
        label = read_label_png(out / f"img_{i}.png")
        assert label.shape == (96, 96) and set(np.unique(label)) <= {0, 1, 8, 15}


def test_train_aff_refuses_a_crop_too_small_for_the_radius(voc_with_confident_labels, tmp_path, capsys):
    voc, labels = voc_with_confident_labels
    assert main(["train-aff", *data_args(voc), "--aff-labels", str(labels), "--out", str(tmp_path / "a.pth"),
                 "--network", "demo-aff", "--crop-size", "64", "--batch-size", "2", "--max-steps", "1"]) == 2
    err = capsys.readouterr().err
    # the option to change and its least value, not only the grid's size (found following docs/demo_model.md on
    # 64 px images); 65 px is a 9 x 9 grid (ceil), which the radius fits
    assert "--crop-size 64 gives a 8x8 feature grid" in err and "too small for affinity radius 5" in err
    assert "use a --crop-size of at least 65" in err
    assert main(["train-aff", *data_args(voc), "--aff-labels", str(labels), "--out", str(tmp_path / "a.pth"),
                 "--network", "demo-aff", "--crop-size", "65", "--batch-size", "2", "--max-steps", "1"]) == 0


def test_train_aff_refuses_a_network_of_another_kind_before_building_it(voc_with_confident_labels, tmp_path, capsys):
    voc, labels = voc_with_confident_labels
    for network, kind in (("demo-seg", "a segmentation network"), ("small-resnet", "a CAM classifier")):
        assert main(["train-aff", *data_args(voc), "--aff-labels", str(labels), "--out", str(tmp_path / "a.pth"),
                     "--network", network, "--crop-size", "96", "--batch-size", "2", "--max-steps", "1"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"infercam train-aff: error: network {network!r} is {kind}: train-aff needs an AffinityNet "
                       "(demo (= demo-aff), resnet38 (= resnet38-aff), demo-aff, resnet38-aff)"]


def test_rw_refuses_a_network_that_is_not_an_affinity_net(voc_with_confident_labels, tiny_weights, tmp_path, capsys):
    voc, _ = voc_with_confident_labels
    assert main(["pseudo", *data_args(voc), "--cam", str(voc / "cams"), "--method", "rw", "--aff-network",
                 "tiny:TinyCamNet", "--aff-weights", str(tiny_weights), "--out", str(tmp_path / "rw")]) == 2
    assert "is not an AffinityNet" in capsys.readouterr().err



def every_pixel_ignored(labels):
    for path in labels.iterdir():
        save_label_png(path, np.full_like(read_label_png(path), 255))


def jpeg_data(labels):
    Image.fromarray(read_label_png(labels / "img_2.png"), mode="L").save(labels / "img_2.png", format="JPEG")


@pytest.mark.parametrize("spoil, message", [
    (every_pixel_ignored, r"every pixel of the 4 label PNGs checked in .* is 255"),
    (jpeg_data, r"img_2\.png"),
])
def test_train_aff_refuses_labels_all_ignored_or_not_png(spoil, message, voc_with_confident_labels,
                                                                       tmp_path, capsys):
    voc, labels = voc_with_confident_labels
    spoil(labels)
    assert main(["train-aff", *data_args(voc), "--aff-labels", str(labels), "--out", str(tmp_path / "a.pth"),
                 "--network", "demo-aff", "--crop-size", "96", "--batch-size", "2", "--max-steps", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.search(message, err[0]) and not (tmp_path / "a.pth").exists()


def test_train_aff_takes_confident_labels_of_more_classes_than_voc(voc_with_confident_labels, tmp_path):
    """Affinity only compares labels: those pseudo wrote for an 80-class data set (values up to 80) train."""
    voc, labels = voc_with_confident_labels
    label = read_label_png(labels / "img_2.png")
    label[:4, :4] = 50
    save_label_png(labels / "img_2.png", label)
    assert main(["train-aff", *data_args(voc), "--aff-labels", str(labels), "--out", str(tmp_path / "a.pth"),
                 "--network", "demo-aff", "--crop-size", "96", "--batch-size", "2", "--max-steps", "1"]) == 0
