"""No command writes over what it reads: an output path that is an input (the images, the ground truth, the CAMs a
run labels, the label file, a folder of runs a report compares, the files eval scores) is refused, --overwrite or
not, and the inputs are left as they were."""
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from infercam.cli import main
from infercam.io import save_cams
from cli_run import argv, run


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in root.rglob("*") if p.is_file()}


@pytest.fixture()
def voc_with_truth(tiny_voc: Path, tmp_path: Path) -> Path:
    """tiny_voc with ground-truth PNGs and a folder of CAM files."""
    (tiny_voc / "SegmentationClass").mkdir()
    cams = tmp_path / "cams"
    cams.mkdir()
    for path in (tiny_voc / "JPEGImages").iterdir():
        h, w = np.asarray(Image.open(path)).shape[:2]
        Image.fromarray(np.zeros((h, w), np.uint8), mode="L").convert("P").save(tiny_voc / "SegmentationClass"
                                                                              / f"{path.stem}.png")
        save_cams(cams / f"{path.stem}.npy", {0: np.ones((h, w), np.float32)})
    return tiny_voc


CASES = {  # case: (command line after the data set options, the message's subject)
    "pseudo into the ground truth": (["pseudo", "--cam", "{cams}", "--method", "threshold",
                                      "--out", "{voc}/SegmentationClass"],
                                     "--out {voc}/SegmentationClass is the data set's SegmentationClass/ folder"),
    "pseudo into its CAM folder": (["pseudo", "--cam", "{cams}", "--method", "threshold", "--out", "{cams}"],
                                   "--out {cams} is the --cam folder"),
    "CAMs into the images": (["infer", "--network", "tiny:TinyCamNet", "--weights", "{weights}",
                              "--out-cam", "{voc}/JPEGImages"],
                             "--out-cam {voc}/JPEGImages is the data set's JPEGImages/ folder"),
    "heatmaps into the data set folder": (["cam", "--network", "tiny:TinyCamNet", "--weights", "{weights}",
                                           "--out-cam", "{tmp}/out", "--heatmap", "{voc}"],
                                          "--heatmap {voc} is the data set folder"),
    "split patches into the images": (["split", "--network", "tiny:TinyCamNet", "--weights", "{weights}",
                                       "--out", "{voc}/JPEGImages"],
                                      "--out {voc}/JPEGImages is the data set's JPEGImages/ folder"),
    "classifier over its label file": (["train-cls", "--train-list", "{voc}/ImageSets/Segmentation/train.txt",
                                        "--labels", "{voc}/cls_labels.npy", "--out", "{voc}/cls_labels.npy"],
                                       "--out {voc}/cls_labels.npy is the --labels file"),
    "affinity net over its list file": (["train-aff", "--aff-labels", "{voc}", "--list", "{tmp}/l.txt",
                                         "--out", "{tmp}/l.txt"], "--out {tmp}/l.txt is the --list file"),
    "classifier over its list file": (["train-cls", "--train-list", "{voc}/ImageSets/Segmentation/train.txt",
                                       "--out", "{voc}/ImageSets/Segmentation/train.txt"],
                                      "--out {voc}/ImageSets/Segmentation/train.txt is the --train-list file"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_an_output_that_is_an_input_is_refused_even_with_overwrite(case, voc_with_truth, tiny_weights, tmp_path,
                                                                    capsys):
    command, subject = CASES[case]
    values = {"voc": voc_with_truth, "cams": tmp_path / "cams", "weights": tiny_weights, "tmp": tmp_path}
    command = [part.format(**values) for part in command]
    before = snapshot(tmp_path)
    code, err = run(capsys, [command[0], "--voc-root", voc_with_truth, "--no-progress", "--overwrite", *command[1:]])
    assert code == 2
    assert (f"{subject.format(**values)}, which this run reads: writing there would replace what it reads, "
            "--overwrite or not") in err
    assert snapshot(tmp_path) == before and not (tmp_path / "out").exists()


def test_a_link_to_an_input_folder_is_that_folder(voc_with_truth, tiny_weights, tmp_path, capsys):
    link = tmp_path / "images"
    link.symlink_to(voc_with_truth / "JPEGImages")
    code, err = run(capsys, argv(voc_with_truth, tiny_weights, link, "--overwrite"))
    assert code == 2 and "is the data set's JPEGImages/ folder" in err
