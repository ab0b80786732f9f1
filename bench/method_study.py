"""Research harness for issue 13: InferCam variants on the development data only.

Each variant is a recipe of rules (``infercam.modes``) plus engine numbers. It is scored on
* the development photos (scikit-image's, ``split: dev`` in photo_boxes.json) with EfficientNet-Lite0: mean share
  of the map inside the boxes, mean best IoU, mean seam ratio, forward passes per image;
* a synthetic development split (seed 777, never the demo's held-out seed 20221) with the bundled demo network:
  mIoU at the best background threshold, passes per image.
The test photos and the demo split are not looked at here; bench/real_photos.py and `make demo` report them.

    .venv/bin/python bench/method_study.py                  # every variant
    .venv/bin/python bench/method_study.py --variants default,fixed --synthetic 40
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

from infercam import InferCam, models
from infercam.data import photos
from infercam.data.images import load_image
from infercam.data.synthetic import make_synthetic
from infercam.data.voc import VOCDataset
from infercam.evaluation import CamSweep
from infercam.metrics import best_iou, mass_share, seam_ratio
from infercam.modes import RECIPES, Accept, Anchored, PeakFloor, image_peak, own_peak
from infercam.cam import blur_fill
from infercam.split import merge_blend, merge_max

DEV_SEED = 777
WHOLE = (10 ** 6, 10 ** 6)  # margins so large that every patch is the whole image: no split


def variants() -> dict[str, tuple]:
    """name -> (recipe, engine keyword arguments)."""
    d, f = RECIPES["default"], RECIPES["fixed"]
    r = dataclasses.replace
    return {
        "fixed": (f, {}),
        "reference": (RECIPES["reference"], {}),
        "fixed+blend": (r(f, merge=merge_blend), {}),
        "image-peak": (r(f, normalise=image_peak), {}),
        "image-peak+blend": (r(f, normalise=image_peak, merge=merge_blend), {}),
        "default": (d, {}),
        "default ev0.3": (r(d, accept=Accept(0.3)), {}),
        "default ev0.7": (r(d, accept=Accept(0.7)), {}),
        "default max-merge": (r(d, merge=merge_max), {}),
        "default own-peak": (r(d, normalise=own_peak), {}),
        "default no split": (d, {"margins": WHOLE}),
        "default erase 0.5": (d, {"erase_threshold": 0.5}),
        "default 3 rounds": (d, {"max_rounds": 3}),
        "fixed no split": (f, {"margins": WHOLE}),
        "fixed+blend margins 50/80": (r(f, merge=merge_blend), {"margins": (50, 80)}),
        "fixed+blend near 0.2 margins 50/80": (r(f, merge=merge_blend, accept=Accept(near=0.2)), {"margins": (50, 80)}),
        "default near 0.3": (r(d, accept=Accept(near=0.3)), {}),
        "image-peak near 0.2 no split": (r(f, normalise=image_peak, accept=Accept(near=0.2)), {"margins": WHOLE}),
        "fixed near 0.2 no split 3 rounds": (r(f, accept=Accept(near=0.2)), {"margins": WHOLE, "max_rounds": 3}),
        "fixed near 0.2 no split erase 0.5": (r(f, accept=Accept(near=0.2)), {"margins": WHOLE, "erase_threshold": 0.5}),
        "fixed blur": (r(f, fill=blur_fill), {}),
        "fixed+blend blur": (r(f, fill=blur_fill, merge=merge_blend), {}),
        "image-peak+blend blur": (r(f, fill=blur_fill, merge=merge_blend, normalise=image_peak), {}),
        "fixed crop0": (r(f, crop_baseline=True), {}),
        "fixed+blend crop0": (r(f, crop_baseline=True, merge=merge_blend), {}),
        "image-peak+blend crop0": (r(f, crop_baseline=True, merge=merge_blend, normalise=image_peak), {}),
        "floor 0.3+blend crop0": (r(f, crop_baseline=True, merge=merge_blend, normalise=PeakFloor(0.3)), {}),
        **{f"fixed near {n} stop0": (r(f, accept=Accept(near=n), merge=merge_blend), {"stop_fraction": 0.0})
           for n in (0.2, 0.4)},
        **{f"fixed+blend anchor {k}": (r(f, merge=merge_blend, anchor=Anchored(k)), {}) for k in (1.5, 2, 3, 4)},
        "fixed 1 round": (f, {"max_rounds": 1}),
        "fixed+blend 1 round": (r(f, merge=merge_blend), {"max_rounds": 1}),
        "default 1 round": (d, {"max_rounds": 1}),
        **{f"fixed near {n}": (r(f, accept=Accept(near=n), merge=merge_blend), {}) for n in (0.1, 0.2, 0.3)},
        **{f"fixed near {n} no split": (r(f, accept=Accept(near=n)), {"margins": WHOLE}) for n in (0.1, 0.2)},
        **{f"floor {g}": (r(d, normalise=PeakFloor(g)), {}) for g in (0.3, 0.5, 0.7)},
        **{f"floor {g} no split": (r(d, normalise=PeakFloor(g)), {"margins": WHOLE}) for g in (0.3, 0.5, 0.7)},
    }


def photo_scores(engine: InferCam, found) -> dict[str, float]:
    shares, ious, seams, passes = [], [], [], []
    for photo, image in found:
        classes = photo.imagenet_classes()
        engine.cams.forward_passes = 0
        result = engine(image, classes)
        passes.append(engine.cams.forward_passes)
        for c in classes:
            region = photo.region(c, shape=image.shape[:2])
            shares.append(mass_share(result.cams[c], region))
            ious.append(best_iou(result.cams[c], region)[0])
            seam = seam_ratio(result.cams[c], [tuple(b) for b in result.boxes])
            if not np.isnan(seam):
                seams.append(seam)
    return {"share": statistics.fmean(shares), "iou": statistics.fmean(ious),
            "seam": statistics.fmean(seams) if seams else float("nan"), "passes": statistics.fmean(passes)}


def synthetic_scores(engine: InferCam, dataset: VOCDataset, baseline: bool = False) -> dict[str, float]:
    sweep, passes = CamSweep(), []
    for name in dataset.names:
        image, labels = load_image(dataset.image_path(name)), dataset.labels(name)
        engine.cams.forward_passes = 0
        maps = engine.baseline(image, labels) if baseline else engine(image, labels).cams
        passes.append(engine.cams.forward_passes)
        sweep.add(dataset.ground_truth(name), maps)
    result = sweep.result(dataset.names)
    return {"miou": result.miou, "t": result.best_threshold, "passes": statistics.fmean(passes)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", default=None, help="comma-separated variant names (default: all)")
    parser.add_argument("--synthetic", type=int, default=40, help="synthetic development images (0: none)")
    parser.add_argument("--no-photos", action="store_true")
    args = parser.parse_args(argv)
    table = variants()
    names = args.variants.split(",") if args.variants else list(table)
    found = [] if args.no_photos else [(p, photos.fit(im, 500)) for p, im in photos.available("dev")[0]]
    lite0 = models.build_network("efficientnet-lite0")[0]
    demo = models.build_network("demo")[0]
    dataset = None
    if args.synthetic:
        root = Path(tempfile.mkdtemp(prefix="infercam-study-")) / "syn"
        make_synthetic(root, 0, args.synthetic, size=176, seed=DEV_SEED)
        dataset = VOCDataset.open(root, root / "ImageSets/Segmentation/val.txt")
    print("| variant | dev photos: share | IoU | seam | passes/img | synthetic dev: mIoU | best t | passes/img |")
    print("|---|---|---|---|---|---|---|---|")
    rows = [("baseline", None, {})] + [(n, *table[n]) for n in names]
    for name, rec, kwargs in rows:
        p = {"share": float("nan"), "iou": float("nan"), "seam": float("nan"), "passes": float("nan")}
        if found:
            if rec is None:
                eng = InferCam(lite0)
                shares, ious = [], []
                for photo, image in found:
                    maps = eng.baseline(image, photo.imagenet_classes())
                    for c in photo.imagenet_classes():
                        region = photo.region(c, shape=image.shape[:2])
                        shares.append(mass_share(maps[c], region))
                        ious.append(best_iou(maps[c], region)[0])
                p = {"share": statistics.fmean(shares), "iou": statistics.fmean(ious), "seam": float("nan"),
                     "passes": 8.0}
            else:
                p = photo_scores(InferCam(lite0, mode=rec, **kwargs), found)
        s = {"miou": float("nan"), "t": float("nan"), "passes": float("nan")}
        if dataset is not None:
            s = synthetic_scores(InferCam(demo, mode=rec or "default", **kwargs), dataset, baseline=rec is None)
        print(f"| {name} | {p['share']:.3f} | {p['iou']:.3f} | {p['seam']:.2f} | {p['passes']:.0f} | "
              f"{s['miou']:.2f} | {s['t']:.2f} | {s['passes']:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
