"""Engine speed options (precision, compile, channels_last) and prepared inputs: results against fp32 eager."""
import json

import numpy as np
import pytest
import torch

from infercam import InferCam, Prepared
from infercam.cli import main
from infercam.data.images import load_image
from infercam.errors import InferCamError
from infercam.io import load_cams
from tiny import ColourCamNet, TinyCamNet, blob_image

# bf16 moves the baseline maps by up to 3.4e-3 here (fp16: 5.3e-4). A refined pixel near the 0.7 erasing
# threshold can flip between erased and kept, so refined maps differ by up to 0.37 at such pixels, 0.02 on average.
BASELINE_TOL = 0.05
REFINED_MEAN_TOL = 0.05


def images():
    rng = np.random.default_rng(0)
    yield blob_image(60, 80, center=(30, 50), radius=6), [0]
    for h, w, labels in ((48, 64, [3, 7]), (41, 57, [1]), (52, 44, [2, 5, 9])):
        yield rng.integers(0, 256, (h, w, 3), dtype=np.uint8), labels


def diffs(engine: InferCam, reference: InferCam) -> tuple[float, float, float]:
    """Over the test images: max |diff| of the baseline maps, max and mean |diff| of the refined maps."""
    base, refined, mean = 0.0, 0.0, 0.0
    for image, labels in images():
        got, want = engine(image, labels), reference(image, labels)
        for c in labels:
            assert got.cams[c].dtype == np.float32 and got.baseline[c].dtype == np.float32
            base = max(base, float(np.abs(got.baseline[c] - want.baseline[c]).max()))
            refined = max(refined, float(np.abs(got.cams[c] - want.cams[c]).max()))
            mean = max(mean, float(np.abs(got.cams[c] - want.cams[c]).mean()))
    return base, refined, mean


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_is_close_to_fp32(precision):
    base, _, mean = diffs(InferCam(TinyCamNet(), precision=precision), InferCam(TinyCamNet()))
    assert 0 < base < BASELINE_TOL  # not zero: the forward really ran in reduced precision
    assert mean < REFINED_MEAN_TOL


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_a_model_converted_to_another_float_type_gets_its_inputs_in_it(dtype):
    base, _, mean = diffs(InferCam(TinyCamNet().to(dtype)), InferCam(TinyCamNet()))  # maps come back float32
    assert base < (1e-6 if dtype == torch.float64 else BASELINE_TOL) and mean < REFINED_MEAN_TOL


@pytest.mark.parametrize("net", [TinyCamNet, ColourCamNet])
def test_channels_last_matches_fp32(net):
    assert max(diffs(InferCam(net(), channels_last=True), InferCam(net()))) <= 1e-5


def test_fp32_default_is_the_plain_forward():
    image, labels = next(images())
    default, explicit = InferCam(TinyCamNet())(image, labels), InferCam(TinyCamNet(), precision="fp32")(image, labels)
    assert all(np.array_equal(default.cams[c], explicit.cams[c]) for c in labels)


def test_compile_matches_eager_without_recompiling_per_size(monkeypatch):
    engine = InferCam(ColourCamNet(), compile=True)  # compiled here, on a dummy batch
    monkeypatch.setattr(torch._dynamo.config, "error_on_recompile", True)  # every later size reuses the graph
    assert max(diffs(engine, InferCam(ColourCamNet()))) <= 1e-6


def test_compile_failure_is_a_clear_error(monkeypatch):
    def broken(fn, **kwargs):
        def run(x):
            raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found\nmore detail")
        return run

    monkeypatch.setattr(torch, "compile", broken)
    with pytest.raises(InferCamError, match=r"torch.compile of TinyCamNet.forward_cam failed on this platform "
                                            r"\(RuntimeError: InvalidCxxCompiler: No working C\+\+ compiler found\); "
                                            r"run without `compile`"):
        InferCam(TinyCamNet(), compile=True)


def test_unknown_and_unsupported_precisions(monkeypatch):
    with pytest.raises(InferCamError, match="unknown precision 'fp8': use one of fp32, bf16, fp16"):
        InferCam(TinyCamNet(), precision="fp8")
    monkeypatch.setattr(torch.amp, "is_autocast_available", lambda device_type: False)  # a device without autocast
    with pytest.raises(InferCamError, match="precision bf16 is not supported on cpu .*: use fp32$"):
        InferCam(TinyCamNet(), precision="bf16")
    InferCam(TinyCamNet(), precision="fp32")  # needs no autocast


def test_prepared_input_gives_identical_results():
    engine = InferCam(TinyCamNet())
    for image, labels in images():
        prepared = engine.prepare(image)
        assert isinstance(prepared, Prepared)
        plain, ahead = engine(image, labels), engine(prepared, labels)
        assert plain.boxes == ahead.boxes and plain.rounds == ahead.rounds
        for c in labels:
            assert np.array_equal(plain.cams[c], ahead.cams[c]) and np.array_equal(plain.baseline[c], ahead.baseline[c])
        assert all(np.array_equal(a, b) for a, b in zip(engine.baseline(image, labels).values(),
                                                          engine.baseline(prepared, labels).values()))
        assert engine.split(prepared, labels).boxes == plain.boxes


def test_prepared_by_another_engine_is_refused():
    image = blob_image(40, 48, center=(20, 20), radius=5)
    prepared = InferCam(TinyCamNet(), scales=(1.0, 0.5)).prepare(image)
    with pytest.raises(InferCamError, match="prepared by an engine with other scales"):
        InferCam(TinyCamNet())(prepared, [0])


def test_mean_and_std_as_arrays_are_taken_as_given():
    image, labels = next(images())
    as_lists = InferCam(TinyCamNet(), mean=[0.4, 0.5, 0.6], std=[0.2, 0.25, 0.3])(image, labels)
    as_arrays = InferCam(TinyCamNet(), mean=np.array([0.4, 0.5, 0.6]), std=np.array([0.2, 0.25, 0.3]))(image, labels)
    network_default = InferCam(TinyCamNet())(image, labels)
    assert np.array_equal(as_lists.baseline[0], as_arrays.baseline[0])
    assert not np.array_equal(as_lists.baseline[0], network_default.baseline[0])


@pytest.mark.parametrize("mean, std, message", [
    ([], None, "three numbers each"), ([0.5, 0.5], None, "three numbers each"), (None, [0.2, 0.0, 0.2], "positive"),
    ([0.5, float("nan"), 0.5], None, "finite"), ("abc", None, "three numbers each"),
    ([123.7, 116.3, 103.5], [58.4, 57.1, 57.4], "divide 0..255 values by 255"),
])
def test_a_bad_normalisation_is_refused_clearly(mean, std, message):
    with pytest.raises(InferCamError, match=message):
        InferCam(TinyCamNet(), mean=mean, std=std)


def cli_args(voc, weights, network="tiny:TinyCamNet"):
    return ["--voc-root", str(voc), "--network", network, "--weights", str(weights), "--no-progress"]


def test_cli_options_run_and_are_recorded(tiny_voc, tiny_weights, tmp_path):
    exact, fast = tmp_path / "exact", tmp_path / "fast"
    assert main(["cam", *cli_args(tiny_voc, tiny_weights), "--out-cam", str(exact)]) == 0
    assert main(["infer", *cli_args(tiny_voc, tiny_weights), "--out-cam", str(fast), "--precision", "bf16",
                 "--channels-last"]) == 0
    config = json.loads((fast / "infercam-run.json").read_text())["config"]
    assert (config["precision"], config["channels_last"], config["compile"]) == ("bf16", True, False)
    engine = InferCam(TinyCamNet())
    for name, labels in (("img_a", [0]), ("img_c", [1, 2, 5])):
        image = load_image(tiny_voc / "JPEGImages" / f"{name}.jpg")
        baseline = engine.baseline(image, labels)  # the command prepares images in its loader threads
        assert all(np.array_equal(load_cams(exact / f"{name}.npy")[c], baseline[c]) for c in labels)
        refined = engine(image, labels).cams
        assert all(np.abs(load_cams(fast / f"{name}.npy")[c] - refined[c]).mean() < REFINED_MEAN_TOL for c in labels)


def test_cli_compile(tiny_voc, tmp_path):
    weights, out = tmp_path / "colour.pth", tmp_path / "split"
    torch.save(ColourCamNet().state_dict(), weights)
    assert main(["split", *cli_args(tiny_voc, weights, "tiny:ColourCamNet"), "--out", str(out), "--compile"]) == 0
    image = load_image(tiny_voc / "JPEGImages" / "img_b.jpg")
    boxes = InferCam(ColourCamNet()).split(image, [3, 7]).boxes
    assert json.loads((out / "img_b.json").read_text())["boxes"] == [list(b) for b in boxes]


def test_cli_refuses_bad_options(tiny_voc, tiny_weights, tmp_path, monkeypatch, capsys):
    cam = ["cam", *cli_args(tiny_voc, tiny_weights)]
    with pytest.raises(SystemExit):
        main([*cam, "--out-cam", str(tmp_path / "a"), "--precision", "fp8"])
    assert "invalid choice: 'fp8'" in capsys.readouterr().err
    monkeypatch.setattr(torch.amp, "is_autocast_available", lambda device_type: False)
    assert main([*cam, "--out-cam", str(tmp_path / "b"), "--precision", "fp16"]) == 2
    assert "precision fp16 is not supported on cpu" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()  # a run-level error: nothing written
