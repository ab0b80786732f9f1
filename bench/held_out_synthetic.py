"""A research variant's held-out synthetic run: ``make demo``'s split and scoring for bench/method_study.py's variants.

The demo's held-out split (seed 20221, 60 images of 176 px, the bundled demo network) and its measure (mIoU at each
method's best background threshold, ``CamSweep``), with each variant's paired bootstrap interval (images
resampled) against the baseline CAM, the default and ``fixed``. Only for a candidate already chosen on the
development data (issue 13's rule); it is how the demo would score the variant as a mode.

    .venv/bin/python bench/held_out_synthetic.py --variants "blend 0.75"
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from infercam import InferCam, models
from infercam.data.images import load_image
from infercam.data.voc import VOCDataset
from infercam.demo.run import DEMO_SEED, demo_data
from infercam.evaluation import CamSweep
from infercam.evaluation.stats import paired_bootstrap

import method_study  # bench/ is the script's folder, so on sys.path

COMPARED = ("baseline", "default", "fixed")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", required=True, help="semicolon-separated variants of bench/method_study.py")
    parser.add_argument("--images", type=int, default=60, help="held-out images (the demo's 60)")
    parser.add_argument("--seed", type=int, default=DEMO_SEED, help="the split's seed (the demo's held-out one)")
    parser.add_argument("--data", default=None, help="folder to keep the generated split in (default: a temp dir)")
    args = parser.parse_args(argv)
    table = method_study.variants()
    names = [v for v in args.variants.split(";") if v]
    unknown = [v for v in names if v not in table]
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; known: {', '.join(table)}")
    root = demo_data(Path(args.data or tempfile.mkdtemp(prefix="infercam-heldout-")), args.images, args.seed, 176,
                     progress=False)
    dataset = VOCDataset.open(root, root / "ImageSets/Segmentation/val.txt")
    net = models.build_network("demo")[0]
    modes = {m: InferCam(net, mode=m) for m in ("default", "fixed")}
    engines = {v: method_study.make_engine(net, *table[v]) for v in names}
    sweeps = {m: CamSweep() for m in (*COMPARED, *names)}
    for name in dataset.names:
        image, labels = load_image(dataset.image_path(name)), dataset.labels(name)
        gt = dataset.ground_truth(name)
        results = {m: e(image, labels) for m, e in modes.items()}
        sweeps["baseline"].add(gt, results["default"].baseline)
        for m, r in results.items():
            sweeps[m].add(gt, r.cams)
        for v, engine in engines.items():
            method_study.prepare_rule(engine, image, labels)
            sweeps[v].add(gt, engine(image, labels).cams)
    scored = {m: s.result(dataset.names) for m, s in sweeps.items()}
    print(f"held-out synthetic split: {len(dataset)} images, seed {args.seed}\n")
    print("| method | mIoU | best t | minus baseline [95 %] | minus default [95 %] | minus fixed [95 %] |")
    print("|---|---|---|---|---|---|")
    for m, r in scored.items():
        cells = []
        for other in COMPARED:
            if other == m:
                cells.append("-")
                continue
            o = scored[other]
            i = paired_bootstrap(o.per_image_intersection, o.per_image_union, r.per_image_intersection,
                                 r.per_image_union)
            cells.append(f"{i.difference:+.2f} [{i.low:+.2f}, {i.high:+.2f}]")
        print(f"| {m} | {r.miou:.2f} | {float(r.best_threshold):.2f} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
