"""psa's ResNet-38 classifier: checkpoint layout and the same function as psa (shared fills and references)."""
from __future__ import annotations


import numpy as np
import pytest
import torch

from infercam import models


@pytest.fixture(scope="module")
def net():
    return models.create("resnet38").eval()


@pytest.fixture(scope="module")
def states(fill):
    """Both fills of psa's key list, by kind (built once: each is 105M random numbers)."""
    return {kind: fill.reference_state_dict(kind) for kind in fill.FILLS}


def rel_err(a: torch.Tensor, b: np.ndarray) -> float:
    return float(np.abs(a.numpy() - b).max() / np.abs(b).max())


@pytest.mark.parametrize("kind, reference", [
    ("spec", "resnet38_cls_reference.npz"),
    ("strong", "resnet38_cls_reference_strong.npz"),
])
def test_same_function_as_psa(net, states, shared_checkpoints, kind, reference):
    models.load_state_dict(net, states[kind], strict=True)
    ref = np.load(shared_checkpoints / reference)
    x = torch.from_numpy(ref["x"])
    with torch.no_grad():
        cam, logits = net.forward_cam(x), net(x)
    assert cam.shape == ref["cam"].shape == (1, 20, 8, 10)
    assert logits.shape == ref["logits"].shape == (1, 20)
    assert rel_err(cam, ref["cam"]) <= 1e-4
    assert rel_err(logits, ref["logits"]) <= 1e-4


def test_state_dict_layout_is_psa(net, fill):
    expected = [(key, shape, dtype) for key, shape, dtype in fill.read_keys()]
    own = [(key, tuple(t.shape), str(t.dtype).removeprefix("torch.")) for key, t in net.state_dict().items()]
    assert own == expected


def test_checkpoint_without_num_batches_tracked_loads(net, states):
    state = {k: v for k, v in states["spec"].items() if not k.endswith("num_batches_tracked")}
    assert len(state) == 229 - 37
    assert models.load_state_dict(net, state, strict=True).ok


def test_batchnorm_stays_in_eval_mode_when_training(net, states):
    models.load_state_dict(net, states["strong"])
    x = torch.randn(1, 3, 24, 24)
    running_mean = net.bn7.running_mean.clone()
    with torch.no_grad():
        expected = net.features(x)["conv5"]
        net.train()
        try:
            batchnorms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
            assert len(batchnorms) == 37 and not any(m.training for m in batchnorms)
            assert net.dropout7.training
            # conv5 (b6's input) is before any dropout: train mode changes it only if BN uses batch statistics
            assert torch.equal(net.features(x)["conv5"], expected)
        finally:
            net.eval()
    assert torch.equal(net.bn7.running_mean, running_mean)


def test_features_and_odd_input_size(net):
    x = torch.randn(2, 3, 33, 41)
    with torch.no_grad():
        feats = net.features(x)
        cam = net.forward_cam(x)
    shapes = {name: tuple(t.shape) for name, t in feats.items()}
    assert shapes == {"conv3": (2, 256, 9, 11), "conv4": (2, 512, 5, 6), "conv5": (2, 1024, 5, 6),
                      "conv6": (2, 4096, 5, 6)}
    assert cam.shape == (2, 20, 5, 6) and bool((cam >= 0).all())
    assert models.normalization(net) == (models.IMAGENET_MEAN, models.IMAGENET_STD)


def test_num_classes_sets_fc8():
    with torch.device("meta"):
        state = models.create("resnet38", num_classes=7).state_dict()
    assert tuple(state["fc8.weight"].shape) == (7, 4096, 1, 1)
    assert "resnet38" in models.list_models()
