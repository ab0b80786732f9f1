"""SEAM, SC-CAM and IRN networks (checkpoint layouts, maps, load/refuse) and checkpoint file handling."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from infercam import models
from infercam.errors import CheckpointError
from infercam.models.resnet38_variants import seam_seed

TSVS = {"resnet38-seam": "resnet38_seam.keys.tsv", "resnet38-sccam": "resnet38_sccam.keys.tsv"}


def layout(state: dict[str, torch.Tensor]) -> list[tuple[str, tuple[int, ...]]]:
    return [(key, tuple(t.shape)) for key, t in state.items()]


def meta_state(name: str) -> dict[str, torch.Tensor]:
    """A registered network's state_dict without allocating weights."""
    with torch.device("meta"):
        return models.create(name).state_dict()


@pytest.fixture(scope="module")
def psa_layout_state(fill):
    """psa's plain classifier key list as (shape-only) meta tensors: the wrong checkpoint for the variants."""
    return {key: torch.empty(shape, device="meta") for key, shape, _ in fill.read_keys()}


@pytest.fixture(scope="module")
def strong_reference(shared_checkpoints):
    return np.load(shared_checkpoints / "resnet38_cls_reference_strong.npz")


def filled(name: str, fill, shared_checkpoints) -> torch.nn.Module:
    net = models.create(name).eval()
    models.load_state_dict(net, fill.fill(fill.read_keys(str(shared_checkpoints / TSVS[name])), "strong"))
    return net


@pytest.fixture(scope="module")
def seam(fill, shared_checkpoints):
    return filled("resnet38-seam", fill, shared_checkpoints)


@pytest.fixture(scope="module")
def sccam(fill, shared_checkpoints):
    return filled("resnet38-sccam", fill, shared_checkpoints)


def rel_err(a: torch.Tensor, b: np.ndarray) -> float:
    return float(np.abs(a.numpy() - b).max() / np.abs(b).max())


# ---- ResNet-38 variants -------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(TSVS))
def test_variant_layout_matches_shared_key_list(name, fill, shared_checkpoints):
    expected = [(key, shape) for key, shape, _ in fill.read_keys(str(shared_checkpoints / TSVS[name]))]
    assert layout(meta_state(name)) == expected


def test_variant_heads_follow_num_classes():
    with torch.device("meta"):
        seam_state = models.create("resnet38-seam", num_classes=5).state_dict()
        sccam_state = models.create("resnet38-sccam", num_classes=5, subcategories=3).state_dict()
    assert seam_state["fc8.weight"].shape == (6, 4096, 1, 1)
    assert sccam_state["fc8_20.weight"].shape == (5, 4096, 1, 1)
    assert sccam_state["fc8_200.weight"].shape == (15, 4096, 1, 1)


@pytest.mark.parametrize("name", ["resnet38", "resnet38-seam", "resnet38-sccam"])
def test_the_psa_family_reads_its_class_count_from_the_checkpoint(name):
    from infercam.models.registry import _resolve

    with torch.device("meta"):
        state = models.create(name, num_classes=5).state_dict()
    assert _resolve(name).classes_in(state) == 5  # build_network builds a 5-class network without --num-classes
    assert _resolve(name).classes_in({}) is None


def test_sccam_is_psa_classifier_with_fc8_20(sccam, strong_reference):
    # The strong fill walks identical backbone rows first, so fc8_20 gets the values psa's fc8 gets.
    x = torch.from_numpy(strong_reference["x"])
    with torch.no_grad():
        cam, logits = sccam.forward_cam(x), sccam(x)
    assert cam.shape == (1, 20, 8, 10)
    assert rel_err(cam, strong_reference["cam"]) <= 1e-4
    assert rel_err(logits, strong_reference["logits"]) <= 1e-4


def test_seam_logits_drop_background_channel(seam, strong_reference):
    # SEAM's fc8 rows 0..19 receive psa's fc8 values; its logits are rows 1..20, so logits[:, :19]
    # must equal psa's logits of classes 1..19.
    with torch.no_grad():
        logits = seam(torch.from_numpy(strong_reference["x"]))
    assert logits.shape == (1, 20)
    assert rel_err(logits[:, :19], strong_reference["logits"][:, 1:]) <= 1e-4


def test_seam_cam_is_refined_foreground_at_input_size(seam):
    x = torch.randn(2, 3, 25, 34)
    with torch.no_grad():
        cams = seam.forward_cam(x)
        first = seam.forward_cam(x[:1])
    assert cams.shape == (2, 20, 25, 34)
    # seeds lie in [0, 1] and PCM averages them with weights summing to (about) 1
    assert float(cams.min()) >= 0 and float(cams.max()) <= 1 + 1e-4
    assert float(cams.max()) > 0
    torch.testing.assert_close(cams[:1], first, rtol=1e-4, atol=1e-6)  # no mixing across the batch


def test_seam_seed_normalises_and_keeps_top_foreground_class():
    raw = torch.tensor([[5.0, -1.0], [2.0, 1.0], [1.0, 4.0]]).view(1, 3, 1, 2)  # background, class 1, class 2
    expected = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]).view(1, 3, 1, 2)
    torch.testing.assert_close(seam_seed(raw), expected, rtol=0, atol=1e-4)


@pytest.mark.parametrize("name, problems", [
    ("resnet38-seam", ["f8_3.weight", "f8_4.weight", "f9.weight", "fc8.weight: [20, 4096, 1, 1] vs [21, 4096, 1, 1]"]),
    ("resnet38-sccam", ["fc8_20.weight", "fc8_200.weight", "fc8.weight"]),
])
def test_variant_refuses_plain_psa_checkpoint(name, problems, psa_layout_state):
    with torch.device("meta"):  # strict loading refuses before any weight is copied
        net = models.create(name)
    with pytest.raises(CheckpointError) as info:
        models.load_state_dict(net, psa_layout_state)
    for key in problems:
        assert key in str(info.value)


# ---- IRN ResNet-50 ------------------------------------------------------------------------------

def irn_cam_layout(num_classes: int = 20) -> list[tuple[str, tuple[int, ...]]]:
    """The keys of IRN's res50_cam.pth, from IRN's net/resnet50.py and net/resnet50_cam.py: the trunk
    under ``resnet50``, again under the stage Sequentials and the ``backbone`` ModuleList, and the
    classifier also as ``newly_added.0``."""

    def bn(name, c):
        return [(f"{name}.{t}", (c,)) for t in ("weight", "bias", "running_mean", "running_var")] + [
            (f"{name}.num_batches_tracked", ())]

    def under(prefix, rows):
        return [(f"{prefix}.{key}", shape) for key, shape in rows]

    layers, cin = [], 64
    for planes, blocks in ((64, 3), (128, 4), (256, 6), (512, 3)):
        rows = []
        for b in range(blocks):
            rows += [(f"{b}.conv1.weight", (planes, cin, 1, 1))] + bn(f"{b}.bn1", planes)
            rows += [(f"{b}.conv2.weight", (planes, planes, 3, 3))] + bn(f"{b}.bn2", planes)
            rows += [(f"{b}.conv3.weight", (planes * 4, planes, 1, 1))] + bn(f"{b}.bn3", planes * 4)
            if b == 0:
                rows += [(f"{b}.downsample.0.weight", (planes * 4, cin, 1, 1))] + bn(f"{b}.downsample.1", planes * 4)
            cin = planes * 4
        layers.append(rows)
    stem = [("conv1.weight", (64, 3, 7, 7))] + bn("bn1", 64)
    trunk = stem + [row for i, rows in enumerate(layers, 1) for row in under(f"layer{i}", rows)]
    stages = [[("0.weight", (64, 3, 7, 7))] + bn("1", 64) + under("4", layers[0])]
    stages += [under("0", rows) for rows in layers[1:]]
    classifier = (num_classes, 2048, 1, 1)
    return (under("resnet50", trunk)
            + [row for i, rows in enumerate(stages, 1) for row in under(f"stage{i}", rows)]
            + [("classifier.weight", classifier)]
            + [row for i, rows in enumerate(stages) for row in under(f"backbone.{i}", rows)]
            + [("newly_added.0.weight", classifier)])


def test_irn_layout_matches_irn_checkpoint():
    assert layout(meta_state("resnet50-irn")) == irn_cam_layout()


@pytest.fixture(scope="module")
def irn():
    return models.create("resnet50-irn").eval()


def test_irn_cam_is_stride_16(irn):
    with torch.no_grad():
        cam = irn.forward_cam(torch.randn(1, 3, 65, 81))
        logits = irn(torch.randn(2, 3, 32, 32))
    assert cam.shape == (1, 20, 5, 6) and float(cam.min()) >= 0
    assert logits.shape == (2, 20)


def test_irn_loads_its_checkpoint_and_refuses_psa(irn, tmp_path, psa_layout_state):
    other = models.create("resnet50-irn").eval()
    path = tmp_path / "res50_cam.pth"
    torch.save(other.state_dict(), path)
    x = torch.randn(1, 3, 32, 32)
    assert models.load_checkpoint(irn, path).ok
    with torch.no_grad():
        torch.testing.assert_close(irn.forward_cam(x), other.forward_cam(x), rtol=0, atol=0)
    with pytest.raises(CheckpointError) as info:
        models.load_state_dict(irn, psa_layout_state)
    assert "resnet50.conv1.weight" in str(info.value) and "conv1a.weight" in str(info.value)


# ---- checkpoint files ---------------------------------------------------------------------------

def small_net() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1, bias=False), torch.nn.BatchNorm2d(4))


@pytest.mark.parametrize("wrap", [
    lambda state: {f"module.{key}": value for key, value in state.items()},
    lambda state: {"state_dict": state, "epoch": 3},
], ids=["module-prefix", "under-state_dict"])
def test_load_checkpoint_unwraps_saved_dicts(wrap, tmp_path):
    source, target = small_net(), small_net()
    path = tmp_path / "ckpt.pth"
    torch.save(wrap(source.state_dict()), path)
    assert models.load_checkpoint(target, path).ok
    assert torch.equal(target[0].weight, source[0].weight)


def test_load_checkpoint_names_missing_file_and_non_checkpoint(tmp_path):
    missing = tmp_path / "absent.pth"
    with pytest.raises(CheckpointError, match="absent.pth"):
        models.load_checkpoint(small_net(), missing)
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="notes.pth"):
        models.load_checkpoint(small_net(), text)


def test_load_checkpoint_names_mismatched_and_unknown_keys(tmp_path):
    state = small_net().state_dict()
    state["0.weight"] = torch.zeros(5, 3, 1, 1)
    state["head.weight"] = torch.zeros(1)
    del state["1.running_var"]
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    net = small_net()
    before = net[0].weight.clone()
    with pytest.raises(CheckpointError) as info:
        models.load_checkpoint(net, path)
    message = str(info.value)
    assert "0.weight: [5, 3, 1, 1] vs [4, 3, 1, 1]" in message
    assert "head.weight" in message and "1.running_var" in message
    assert torch.equal(net[0].weight, before)  # strict refusal loads nothing
