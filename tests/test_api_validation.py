"""The Python API checks what the command line's options check: a training config with a value that cannot work is
a ConfigError naming its field, and library errors name a parameter as Python spells it (the CLI as its option)."""
import argparse
import math

import pytest
import torch

from infercam.cli import as_options, main
from infercam.errors import ConfigError, InferCamError
from infercam.train import classifier, loop
from infercam.train.affinity import PSA_AFF_TRAIN
from infercam.train.limits import MAX_CROP_SIZE, MAX_SEED
from infercam.train.resume import load_finished
from infercam.train.segmentation import SEG_TRAIN

LOOP = dict(epochs=1, batch_size=2, lr=0.01, weight_decay=1e-4, crop_size=32)

# (field, bad value, part of the message), for both configs
COMMON = [
    ("epochs", 0, "`epochs` must be a whole number >= 1, got 0"),
    ("epochs", 2.5, "`epochs` must be a whole number >= 1, got 2.5"),
    ("epochs", True, "`epochs` must be a whole number >= 1, got True"),
    ("batch_size", -1, "`batch_size` must be a whole number >= 1, got -1"),
    ("lr", float("nan"), "`lr` must be a finite number > 0, got nan"),
    ("lr", 0.0, "`lr` must be a finite number > 0, got 0.0"),
    ("lr", math.inf, "`lr` must be a finite number > 0, got inf"),
    ("lr", "0.1", "`lr` must be a finite number > 0, got '0.1'"),
    ("weight_decay", -1e-4, "`weight_decay` must be a finite number >= 0, got -0.0001"),
    ("crop_size", 100000, f"`crop_size` must be a whole number from 1 to {MAX_CROP_SIZE}, got 100000"),
    ("crop_size", 0, "`crop_size` must be a whole number from 1"),
    ("workers", -1, "`workers` must be a whole number >= 0, got -1"),
    ("seed", -1, f"`seed` must be a whole number from 0 to {MAX_SEED}, got -1"),
    ("seed", MAX_SEED + 1, f"`seed` must be a whole number from 0 to {MAX_SEED}"),
]


@pytest.mark.parametrize("field, value, message", COMMON + [
    ("max_steps", 0, "`max_steps` must be a whole number >= 1, got 0"),
    ("device", "gpu", "`device`: unknown device 'gpu'"),
    ("device", None, "`device` must be a device name"),
])
def test_a_segmentation_or_affinity_config_names_the_field_it_refuses(field, value, message):
    with pytest.raises(ConfigError) as exc:
        loop.TrainConfig(**{**LOOP, field: value})
    assert message in str(exc.value) and len(str(exc.value).splitlines()) == 1


@pytest.mark.parametrize("field, value, message", COMMON + [
    ("num_classes", 0, "`num_classes` must be a whole number >= 1, got 0"),
    ("scale_range", (1.2, 0.5), "`scale_range`: min must not exceed max, got 1.2 and 0.5"),
    ("scale_range", (0.0, 1.0), "`scale_range` must be a (min, max) pair of finite numbers > 0"),
    ("scale_range", (0.5,), "`scale_range` must be a (min, max) pair"),
    ("arch_kwargs", [8, 16], "`arch_kwargs` must be a dict of the network's options, got [8, 16]"),
    ("arch", None, "`arch` must be a network name, got None"),
    ("cache_images", "no", "`cache_images` must be True or False, got 'no'"),
])
def test_a_classifier_config_names_the_field_it_refuses(field, value, message):
    with pytest.raises(ConfigError) as exc:
        classifier.TrainConfig(**{field: value})
    assert message in str(exc.value) and len(str(exc.value).splitlines()) == 1


def test_config_errors_are_user_errors_and_value_errors():
    with pytest.raises(InferCamError):
        classifier.TrainConfig(batch_size=0)
    with pytest.raises(ValueError):
        loop.TrainConfig(**{**LOOP, "batch_size": 0})


def test_the_configs_and_the_command_line_take_the_same_values(tiny_voc, tmp_path, capsys):
    """The defaults and the limits themselves are taken; one past a limit is refused by both."""
    assert classifier.TrainConfig().batch_size >= 1
    assert SEG_TRAIN.crop_size <= MAX_CROP_SIZE and PSA_AFF_TRAIN.crop_size <= MAX_CROP_SIZE
    classifier.TrainConfig(crop_size=MAX_CROP_SIZE, seed=MAX_SEED, weight_decay=0, workers=0, lr=1,
                           scale_range=[1.0, 1.0])
    loop.TrainConfig(**{**LOOP, "crop_size": MAX_CROP_SIZE, "seed": MAX_SEED, "max_steps": 1, "device": "cpu"})
    lst = str(tiny_voc / "ImageSets/Segmentation/train.txt")
    args = ["train-cls", "--voc-root", str(tiny_voc), "--train-list", lst, "--out", str(tmp_path / "cls.pt")]
    for field, value in (("crop_size", MAX_CROP_SIZE + 1), ("seed", MAX_SEED + 1), ("seed", -1), ("lr", 0),
                         ("weight_decay", -1), ("num_classes", 0), ("workers", -1)):
        with pytest.raises(ConfigError, match=f"`{field}`"):
            classifier.TrainConfig(**{field: value})
        option = "--" + field.replace("_", "-")
        with pytest.raises(SystemExit):
            main([*args, option, str(value)])
        assert f"argument {option}: must be " in capsys.readouterr().err


def test_a_library_error_names_the_parameter_from_python_and_the_option_on_the_command_line(tiny_voc, tmp_path,
                                                                                             capsys):
    with pytest.raises(InferCamError) as exc:
        classifier.build_classifier(classifier.TrainConfig(arch_kwargs={"width": 3}))
    assert str(exc.value).startswith("`arch_kwargs`: network 'small-resnet' has no option width")
    assert "--" not in str(exc.value)
    lst = str(tiny_voc / "ImageSets/Segmentation/train.txt")
    assert main(["train-cls", "--voc-root", str(tiny_voc), "--train-list", lst, "--out", str(tmp_path / "cls.pt"),
                 "--arch-kwargs", '{"width": 3}', "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "infercam train-cls: error: --arch-kwargs: network 'small-resnet' has no option width" in err


def test_training_errors_name_python_parameters(tmp_path):
    with pytest.raises(InferCamError, match=r"diverged at step 3 \(loss nan\): lower `lr`$"):
        loop.check_finite(torch.tensor(float("nan")), 3)
    out = tmp_path / "model.pt"
    out.write_bytes(b"not a checkpoint")
    with pytest.raises(InferCamError, match=r"use `overwrite` to train again, or another `out`$"):
        load_finished(out, "demo", {})


def test_the_cli_spells_only_its_own_options_as_flags():
    args = argparse.Namespace(lr=0.1, out="m.pt", list_file=None)
    assert as_options("lower `lr`, use `list_file` or another `out`", args) == "lower --lr, use --list or another --out"
    assert as_options("`arch_kwargs` has no option `widths`", args) == "`arch_kwargs` has no option `widths`"


def test_numpy_numbers_are_taken_and_stored_as_python_numbers():
    # np.int64(8) was refused as "not a whole number"; kept as numpy, it would not load from a checkpoint read with
    # weights_only
    import numpy as np

    config = loop.TrainConfig(epochs=np.int64(2), batch_size=np.int32(4), lr=np.float32(0.5), weight_decay=0,
                              crop_size=np.uint16(32), max_steps=np.int64(3))
    assert (config.epochs, config.batch_size, config.lr, config.crop_size, config.max_steps) == (2, 4, 0.5, 32, 3)
    assert all(type(v) is int for v in (config.epochs, config.batch_size, config.crop_size, config.max_steps))
    assert type(config.lr) is float and type(config.weight_decay) is float
    cls = classifier.TrainConfig(num_classes=np.int64(20), scale_range=(np.float64(0.5), 1))
    assert type(cls.num_classes) is int and cls.scale_range == (0.5, 1.0)
    assert all(type(v) is float for v in cls.scale_range)
    with pytest.raises(ConfigError, match="`epochs` must be a whole number"):
        loop.TrainConfig(**{**LOOP, "epochs": np.bool_(True)})
