"""The research harness: the scale gate, the scale keep, the relative evidence bar, a study variant run as a method
by bench/real_photos.py, and the held-out synthetic run."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from infercam import InferCam, models

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture()
def study(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    import method_study
    return method_study


@pytest.fixture(scope="module")
def demo_net():
    return models.build_network("demo")[0]


def scene(seed: int = 3) -> tuple[np.ndarray, list[int]]:
    from infercam.data.scenes import image_rng, render_scene

    rendered = render_scene(image_rng(seed, 0), 96)
    return rendered.image, [int(c) for c in np.flatnonzero(rendered.labels())]


def test_scale_gate_keeps_a_gated_class_at_its_baseline_and_an_ungated_one_at_the_default(study, demo_net):
    image, classes = scene()
    r = study.dataclasses.replace
    default = study.RECIPES["default"]
    every = study.make_engine(demo_net, r(default, counts=study.ScaleGate(0.0)), {"scales": (1.0, 0.5, 2.0)})
    study.prepare_rule(every, image, classes)
    result = every(image, classes)
    for c in classes:  # every class gated: each keeps its baseline map, and the image stops after one round
        np.testing.assert_array_equal(result.cams[c], result.baseline[c])
    assert result.rounds == [1 + 1]
    none = study.make_engine(demo_net, r(default, counts=study.ScaleGate(math.inf)), {"scales": (1.0, 0.5, 2.0)})
    study.prepare_rule(none, image, classes)
    plain = InferCam(demo_net, scales=(1.0, 0.5, 2.0))(image, classes)
    for c in classes:  # no class gated: the default's maps
        np.testing.assert_allclose(none(image, classes).cams[c], plain.cams[c], atol=1e-6)


def test_scale_keep_runs_the_default_rounds_and_only_swaps_a_kept_class_back_to_its_baseline(study, demo_net):
    image, classes = scene()
    scales = {"scales": (1.0, 0.5, 2.0)}
    plain = InferCam(demo_net, **scales)(image, classes)
    every = study.make_engine(demo_net, None, {**scales, "scale_keep": 0.0})(image, classes)
    assert every.rounds == plain.rounds  # unlike the gate, the rounds still run for every class
    for c in classes:
        np.testing.assert_array_equal(every.cams[c], every.baseline[c])
    none = study.make_engine(demo_net, None, {**scales, "scale_keep": math.inf})(image, classes)
    for c in classes:  # no class kept: the default's maps
        np.testing.assert_allclose(none.cams[c], plain.cams[c], atol=1e-6)


def test_a_study_variant_runs_as_a_real_photo_method_with_its_rule_prepared(study, demo_net):
    import real_photos

    image, classes = scene()
    gated = real_photos.make_method(demo_net, real_photos.STUDY + "scale gate 1.0", (1.0, 0.5, 2.0))
    assert isinstance(gated, real_photos.StudyVariant)
    result = gated(image, classes)  # prepare_rule ran: the gate knows this image's classes
    counting = gated.engine.recipe.counts.counting
    assert counting.shape == (len(classes),)
    for i, c in enumerate(classes):
        if not bool(counting[i]):  # a gated class keeps its baseline map
            np.testing.assert_array_equal(result.cams[c], result.baseline[c])
    with pytest.raises(SystemExit):
        real_photos.make_method(demo_net, real_photos.STUDY + "no such variant", (1.0,))


def test_held_out_synthetic_prints_each_method_against_the_baseline_default_and_fixed(study, tmp_path, capsys):
    import held_out_synthetic

    assert held_out_synthetic.main(["--images", "2", "--seed", "5", "--data", str(tmp_path),
                                    "--variants", "blend 0.75"]) == 0
    out = capsys.readouterr().out
    rows = {line.split(" | ")[0].strip("| "): line for line in out.splitlines() if line.startswith("| ")}
    assert {"baseline", "default", "fixed", "blend 0.75"} <= set(rows)
    assert rows["default"].count("[") == 2 and rows["blend 0.75"].count("[") == 3  # its own column is "-"
    with pytest.raises(SystemExit):
        held_out_synthetic.main(["--variants", "no such variant", "--data", str(tmp_path)])


def test_relative_evidence_sets_its_bar_from_the_image_set_and_stops_classes_below_it(study, demo_net):
    items = [scene(seed) for seed in (3, 4)]
    image, classes = items[0]
    r = study.dataclasses.replace
    default, scales = study.RECIPES["default"], {"scales": (1.0, 0.5)}
    plain = InferCam(demo_net, **scales)(image, classes)
    rule = study.RelativeEvidence(0.0)
    with pytest.raises(RuntimeError, match="calibrate"):
        study.make_engine(demo_net, r(default, counts=rule), scales)(image, classes)
    never = study.make_engine(demo_net, r(default, counts=rule), scales)
    study.calibrate_rule(never, items)
    log = study.RatioLog()  # the medians are of the default's rounds at the engine's own scales
    logged = InferCam(demo_net, mode=r(default, counts=log), **scales)
    ratios = []
    for item in items:
        log.rounds = []
        logged(*item)
        ratios += np.array(log.rounds).T.tolist()
    np.testing.assert_allclose(rule.medians, np.median(ratios, axis=0))
    assert len(rule.medians) == 4  # one median per erasing round (5 rounds in all, round 0 the baseline)
    study.prepare_rule(never, image, classes)
    result = never(image, classes)
    for c in classes:  # a bar of 0: no class stops, the default's maps
        np.testing.assert_allclose(result.cams[c], plain.cams[c], atol=1e-6)
    always = study.make_engine(demo_net, r(default, counts=study.RelativeEvidence(math.inf)), scales)
    study.calibrate_rule(always, items)
    study.prepare_rule(always, image, classes)
    result = always(image, classes)
    for c in classes:  # an infinite bar: every class stops after round 1, keeping its baseline map
        np.testing.assert_array_equal(result.cams[c], result.baseline[c])


def test_band_evidence_stops_a_class_only_inside_its_band(study):
    import torch

    band = study.BandEvidence(0.3, 0.5)
    peaks, first = torch.tensor([0.1, 0.3, 0.45, 0.5, 0.9, 0.0]), torch.tensor([1.0, 1.0, 1.0, 1.0, 1.0, 0.0])
    assert band(peaks, first).tolist() == [True, False, False, True, True, True]  # never shown (0 / 0): counts
