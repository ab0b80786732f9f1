"""InferCam end to end on small images: agreement with the literal oracle, rounds, reuse, errors."""
import numpy as np
import pytest
import torch

from infercam import InferCam
from infercam.errors import ImageError, InferCamError, LabelError
from infercam.method.split import Box
from naive import naive_infercam
from tiny import ColourCamNet, TinyCamNet, blob_image


def max_diff(a: dict, b: dict) -> float:
    assert sorted(a) == sorted(b)
    return max(float(np.abs(a[c] - b[c]).max()) for c in a)


@pytest.mark.parametrize("mode", ["fixed", "reference"])
@pytest.mark.parametrize("seed", range(4))
def test_engine_matches_the_authors_loop(mode, seed):
    rng = np.random.default_rng(seed)
    h, w = (int(v) for v in rng.integers(24, 80, 2))
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    labels = sorted(int(c) for c in rng.choice(20, seed % 3 + 1, replace=False))
    net = TinyCamNet(seed=seed)
    result = InferCam(net, mode=mode)(img, labels)
    refined, baseline = naive_infercam(net, img, labels, mode=mode)
    assert max_diff(result.baseline, baseline) <= 1e-5
    assert max_diff(result.cams, refined) <= 1e-5


@pytest.mark.parametrize("mode", ["fixed", "reference"])
def test_engine_matches_the_authors_loop_near_an_edge(mode):
    img = blob_image(60, 80, center=(4, 40), radius=4)  # centre of mass near the top edge
    net = ColourCamNet()
    result = InferCam(net, mode=mode)(img, [0])
    assert result.centers[0][0] < 10
    expected_top = 0 if mode == "fixed" else 60 + result.centers[0][0] - 10
    assert result.boxes[2].top == expected_top
    refined, baseline = naive_infercam(net, img, [0], mode=mode)
    assert max_diff(result.cams, refined) <= 1e-5


def test_modes_differ_where_the_quirks_matter():
    img = blob_image(60, 80, center=(4, 6), radius=5, seed=3)
    net = ColourCamNet()
    a = InferCam(net, mode="fixed")(img, [0])
    b = InferCam(net, mode="reference")(img, [0])
    assert a.boxes != b.boxes
    assert max_diff(a.cams, b.cams) > 1e-3


def test_a_patch_that_every_scale_shrinks_under_the_stride_fails_the_image_but_reference_runs_it():
    """A corner patch can be under 8 px at every scale while the whole image is not (here 30 px at 0.5 = 15 px, the
    11 px patch at a centre near the corner 6 px): its map would be a constant. fixed refuses the image as the
    baseline's check does; reference runs it as the authors' code does, its numbers unchanged."""
    img = blob_image(30, 30, center=(2, 2), radius=3)
    net = ColourCamNet()
    with pytest.raises(ImageError, match=r"^every scale makes patch 1 \(top-left, 11x11 px\) of this 30x30 image "
                                         r"under the networks' minimum input of 8 px \(their output stride; scale "
                                         r"0\.5 makes it 6x6 px\): its map would be a constant: add a larger scale$"):
        InferCam(net, mode="fixed", scales=(0.5,))(img, [0])
    assert InferCam(net, mode="fixed", scales=(0.5, 1.0))(img, [0]).cams  # a patch with one usable scale runs
    result = InferCam(net, mode="reference", scales=(0.5,))(img, [0])
    refined, _ = naive_infercam(net, img, [0], mode="reference", scales=(0.5,))
    assert max_diff(result.cams, refined) <= 1e-5


@pytest.mark.parametrize("mode", ["default", "fixed"])
def test_pre_cut_patches_are_checked_as_the_cut_ones_except_in_reference(mode):
    img = np.random.default_rng(3).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    patches = [img[:3, :3], img[:30, 10:], img[10:, :30], img[5:, 5:]]  # a 3 px top-left patch: 6 px at scale 2
    with pytest.raises(ImageError, match=r"^every scale makes patch 1 \(top-left, 3x3 px\) of this 48x40 image"):
        InferCam(TinyCamNet(), mode=mode).refine_patches(img.shape[:2], patches, [7])
    assert InferCam(TinyCamNet(), mode="reference").refine_patches(img.shape[:2], patches, [7]).cams


def test_result_layout():
    img = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    result = InferCam(TinyCamNet())(img, [5, 2])
    assert sorted(result.cams) == [2, 5] and sorted(result.baseline) == [2, 5]
    for maps in (result.cams, result.baseline):
        for m in maps.values():
            assert m.shape == (40, 56) and m.dtype == np.float32 and m.min() >= 0 and m.max() <= 1
    assert len(result.boxes) == 4 and all(isinstance(b, Box) for b in result.boxes)


def test_three_classes_run_the_whole_image_once_and_reuse_the_baseline():
    img = np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    engine = InferCam(TinyCamNet(), max_rounds=3, stop_fraction=0.0)
    result = engine(img, [1, 2, 3])
    assert result.boxes == [Box(0, 0, 40, 48)] * 4
    assert result.rounds == [3]
    assert engine.cams.forward_passes == 8 * 3  # baseline (= round 0) + 2 erasing rounds


def test_stop_rule():
    img = np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    never_covered = InferCam(TinyCamNet(), mode="fixed", erase_threshold=1.0)(img, [1])
    assert never_covered.rounds == [1, 1, 1, 1]  # round 0 covers nothing new -> stop
    always_on = InferCam(TinyCamNet(), mode="fixed", stop_fraction=0.0, max_rounds=4)(img, [1])
    assert always_on.rounds == [4, 4, 4, 4]
    assert InferCam(TinyCamNet(), stop_fraction=0.0, max_rounds=4)(img, [1]).rounds == [4]  # default: one patch


def test_erasing_reveals_more_than_round_zero():
    """A second blob of the same colour, dimmer: round 0 sees mostly the bright one, erasing reveals the dim one."""
    img = blob_image(64, 64, center=(20, 20), radius=6)
    yy, xx = np.mgrid[:64, :64]
    img[..., 0][(yy - 44) ** 2 + (xx - 44) ** 2 <= 36] = 200  # about 0.6 of the bright blob's response
    engine = InferCam(ColourCamNet(), mode="fixed", scales=(1.0,), stop_fraction=0.0, max_rounds=3)
    patch = engine.refine_patches((64, 64), [img] * 4, [0])  # whole image as every patch
    base = engine.baseline(img, [0])[0]
    dim = (yy - 44) ** 2 + (xx - 44) ** 2 <= 25
    assert base[dim].mean() < 0.65 and patch.cams[0][dim].mean() > 0.9


@pytest.mark.parametrize("mode", ["fixed", "reference"])
def test_refine_patches_equals_the_one_command_path(mode):
    """Modes whose rounds need no image-wide reference give the same maps from pre-cut patches."""
    img = np.random.default_rng(3).integers(0, 256, (50, 64, 3), dtype=np.uint8)
    engine = InferCam(TinyCamNet(), mode=mode)
    full = engine(img, [7])
    patches = [img[b.slices()] for b in full.boxes]
    pre_cut = engine.refine_patches(img.shape[:2], patches, [7])
    assert pre_cut.boxes == full.boxes
    assert max_diff(pre_cut.cams, full.cams) <= 1e-6


def test_split_only():
    img = blob_image(60, 80, center=(30, 50), radius=6)
    result = InferCam(ColourCamNet(), mode="fixed").split(img, [0])
    assert result.cams == {} and result.centers == [(30, 50)]
    assert result.boxes[0] == Box(0, 0, 40, 60)
    assert InferCam(ColourCamNet()).split(img, [0]).boxes == [Box(0, 0, 60, 80)] * 4


@pytest.mark.parametrize("labels, message", [
    (np.eye(20)[5], "0/1 vector of 20 entries"), ([3.7], "got 3.7"), ([True], "got True"), (["3"], "got '3'"),
    (np.eye(20, dtype=np.int64)[14], "0/1 vector of 20 entries"), ([0] * 14 + [1] + [0] * 5, "0/1 vector"),
    (torch.eye(20, dtype=torch.long)[14], "0/1 vector"),
])
def test_labels_that_are_not_class_indices_are_refused_not_misread(labels, message):
    with pytest.raises(LabelError, match=message):
        InferCam(TinyCamNet()).baseline(np.zeros((20, 20, 3), np.uint8), labels)


def test_labels_as_any_collection_of_indices_give_the_same_maps():
    engine, img = InferCam(TinyCamNet()), blob_image(24, 28, center=(12, 14), radius=4)
    expected = engine.baseline(img, [3, 7])
    for labels in ((7, 3, 3), {3, 7}, np.array([7, 3]), torch.tensor([3, 7]), [3.0, 7.0]):
        got = engine.baseline(img, labels)
        assert sorted(got) == [3, 7] and all(np.array_equal(got[c], expected[c]) for c in got)


def test_a_prepared_image_is_a_copy_of_the_callers_buffer():
    engine = InferCam(TinyCamNet(), mode="fixed")
    buffer = blob_image(40, 48, center=(20, 20), radius=5)
    expected = engine(buffer, [0])
    prepared = engine.prepare(buffer)
    buffer[:] = 0  # the caller reuses its buffer
    assert np.array_equal(engine(prepared, [0]).cams[0], expected.cams[0])


def test_bad_inputs():
    engine = InferCam(TinyCamNet())
    img = np.zeros((20, 20, 3), np.uint8)
    with pytest.raises(LabelError, match="no labelled class"):
        engine(img, [])
    with pytest.raises(LabelError, match="negative"):
        engine(img, [-1])
    with pytest.raises(LabelError, match="out of range"):
        engine(img, [25])
    with pytest.raises(ImageError, match="H x W x 3"):
        engine(np.zeros((20, 20), np.uint8), [1])
    with pytest.raises(ImageError, match="uint8"):
        engine(np.zeros((20, 20, 3), np.float32), [1])
    with pytest.raises(InferCamError, match="unknown mode"):
        InferCam(TinyCamNet(), mode="fast")
    with pytest.raises(InferCamError, match="no forward_cam"):
        InferCam(torch.nn.Conv2d(3, 3, 1))
    with pytest.raises(InferCamError, match="CUDA is not available|does not exist"):
        InferCam(TinyCamNet(), device="cuda:7")
