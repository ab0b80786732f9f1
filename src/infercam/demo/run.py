"""The embedded demo: a fresh held-out synthetic split, the bundled classifier, baseline CAM vs InferCam.

It generates the split (seed different from training), runs the baseline CAM and InferCam in each mode,
evaluates them over a threshold sweep, measures where the CAM mass lies (head, body, outside the object),
bootstraps the mIoU differences over images, then runs the real ImageNet network (EfficientNet-Lite0) on the
real photos that packages ship (darknet's, with hand-drawn boxes; skipped with a note where they are absent),
and writes an HTML report.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ..data import photos
from ..data.images import fit, load_image
from ..data.scenes import PART_BODY, PART_HEAD
from ..data.synthetic import PART_DIR, make_synthetic
from ..data.voc import VOCDataset, read_label_png
from ..errors import OutputError
from ..evaluation import CamSweep, EvalResult, format_threshold
from ..evaluation.metrics import best_iou, mass_share
from ..evaluation.stats import Interval, paired_bootstrap
from ..io import ensure_dir, write_json
from ..method.engine import InferCam
from ..method.gradcam import with_cam_method
from ..method.modes import MODES
from ..models import build_network
from ..report.page import ImageRow, MethodScore, PhotoRow, Report, check_report_folder, write_report

DEMO_SEED = 20221  # the bundled model was trained on seed 0: this split is held out
METHODS = ("baseline",) + tuple(f"infercam-{m}" for m in MODES)
PHOTO_NETWORK = "efficientnet-lite0"
PHOTO_SIDE = 400  # the photos' longer side in the demo (bench/real_photos.py uses VOC's 500)
PHOTO_METHODS = ("baseline",) + tuple(f"infercam-{m}" for m in MODES if m != "reference")  # the slowest left out


@dataclass
class PhotoScore:
    """One method's map of one class on one real photo against the class's hand-drawn boxes."""

    photo: str
    target: str
    method: str
    share: float  # of the map's mass inside the boxes
    iou: float  # best IoU of the thresholded map with the boxes


@dataclass
class DemoSummary:
    images: int
    seconds: float
    methods: dict[str, MethodScore]
    differences: dict[str, Interval]
    photos: list[PhotoScore] = field(default_factory=list)
    photo_notes: list[str] = field(default_factory=list)
    report: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"images": self.images, "seconds": round(self.seconds, 1),
                "methods": {k: asdict(v) for k, v in self.methods.items()},
                "differences": {k: asdict(v) for k, v in self.differences.items()},
                "photos": [asdict(p) for p in self.photos], "photo_notes": self.photo_notes, "report": self.report}

    def photo_means(self) -> dict[str, tuple[float, float]]:
        """(mean share in the boxes, mean best IoU) per method over the real photos' classes."""
        out = {}
        for method in PHOTO_METHODS:
            rows = [p for p in self.photos if p.method == method]
            if rows:
                out[method] = (float(np.mean([p.share for p in rows])), float(np.mean([p.iou for p in rows])))
        return out

    def table(self) -> str:
        """The summary as an aligned text table."""
        lines = [f"{'method':<20} {'mIoU':>6} {'best t':>6} {'recall':>7} {'prec.':>6} {'head':>6} {'body':>6} {'outside':>7}"]
        for name, m in self.methods.items():
            lines.append(f"{name:<20} {m.miou:6.2f} {m.best_threshold:6.2f} {m.fg_recall:7.2f} {m.fg_precision:6.2f} "
                         f"{m.mass['head'] * 100:5.1f}% {m.mass['body'] * 100:5.1f}% {m.mass['outside'] * 100:6.1f}%")
        lines.append("")
        lines += [f"{k}: {v} mIoU points (paired bootstrap, {int(v.level * 100)}% interval)"
                  for k, v in self.differences.items()]
        means = self.photo_means()
        if means:
            objects = len([p for p in self.photos if p.method == "baseline"])
            lines += ["", f"real photos ({PHOTO_NETWORK}, ImageNet weights; {objects} objects, hand-drawn boxes):",
                      f"{'method':<20} {'share in box':>12} {'best IoU':>9}"]
            lines += [f"{m:<20} {share:12.3f} {iou:9.3f}" for m, (share, iou) in means.items()]
        lines += [f"note: {n}" for n in self.photo_notes]
        return "\n".join(lines)


class PartMass:
    """Accumulates how much of each labelled class's CAM lies on its head, its body, or elsewhere."""

    def __init__(self) -> None:
        self.totals = np.zeros(3)

    def add(self, cams: dict[int, np.ndarray], gt: np.ndarray, parts: np.ndarray) -> None:
        for c, cam in cams.items():
            own = gt == c + 1
            head = float(cam[own & (parts == PART_HEAD)].sum())
            body = float(cam[own & (parts == PART_BODY)].sum())
            self.totals += (head, body, float(cam.sum()) - head - body)

    def shares(self) -> dict[str, float]:
        total = self.totals.sum() or 1.0
        return dict(zip(("head", "body", "outside"), (self.totals / total).round(4).tolist()))


DEMO_MARK = ".infercam-demo"  # in a folder the demo writes: a rerun may replace what is there


def demo_folder(out: str | Path) -> Path:
    """The demo's output folder, new or one an earlier demo wrote; a folder of other files is refused, since the
    demo replaces report/ and summary.json."""
    out = Path(out)
    if out.is_dir() and not (out / DEMO_MARK).exists() and not _demo_summary(out) and any(out.iterdir()):
        raise OutputError(f"demo output folder {out} holds files no demo wrote (the demo replaces report/ and "
                          "summary.json): choose a new or empty folder")
    out = ensure_dir(out, "demo output folder")
    try:
        (out / DEMO_MARK).touch()
    except OSError as exc:
        raise OutputError(f"cannot write to the demo output folder {out}: {exc.strerror or exc}") from None
    return out


def _demo_summary(out: Path) -> bool:
    """Whether ``out`` holds the summary.json of a demo from before the folder was marked."""
    try:
        summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(summary, dict) and "methods" in summary


def demo_data(out: Path, n_images: int, seed: int, size: int, progress: bool) -> Path:
    """The held-out split (generated once per seed, count and size; reused by later runs)."""
    root = out / f"data-seed{seed}-n{n_images}-s{size}"
    if (root / "cls_labels.npy").exists():
        return root
    bar = tqdm(total=n_images, desc="generating held-out split", disable=not progress, file=sys.stderr)
    make_synthetic(root, 0, n_images, size=size, seed=seed, workers=1, progress=bar.update)
    bar.close()
    return root


def _score(result: EvalResult, mass: PartMass) -> MethodScore:
    fg = [v for k, v in result.per_class.items() if k != "background"]
    recall = float(np.nanmean([c["recall"] for c in fg]))
    precision = float(np.nanmean([c["precision"] for c in fg]))
    return MethodScore(result.miou, result.best_threshold, recall, precision, mass.shares(),
                       {format_threshold(k): round(v, 3) for k, v in result.per_threshold.items()})


def run_demo(out: str | Path, n_images: int = 60, seed: int = DEMO_SEED, network: str = "demo",
             weights: str | None = None, device: str = "cpu", size: int = 176, report_images: int = 24,
             progress: bool = True, max_photos: int | None = None, cam_method: str = "cam",
             target_layer: str | None = None) -> DemoSummary:
    """Run the whole demo into ``out`` and return its figures (also written to ``out/summary.json``); the
    synthetic part's maps come from ``network`` by ``cam_method`` (its own CAM head, or Grad-CAM at a layer)."""
    start = time.perf_counter()
    out = demo_folder(out)
    check_report_folder(out / "report")  # before the work, not found unusable after it
    root = demo_data(out, n_images, seed, size, progress)
    dataset = VOCDataset.open(root, root / "ImageSets/Segmentation/val.txt")
    model = with_cam_method(build_network(network, weights)[0], cam_method, target_layer)
    engines = {m: InferCam(model, mode=m, device=device) for m in MODES}
    sweeps = {m: CamSweep() for m in METHODS}
    masses = {m: PartMass() for m in METHODS}
    shown: list[ImageRow] = []
    for name in tqdm(dataset.names, desc=f"demo: baseline + InferCam ({len(MODES)} modes)", disable=not progress,
                     file=sys.stderr, unit="img"):
        image, labels = load_image(dataset.image_path(name)), dataset.labels(name)
        gt, parts = dataset.ground_truth(name), read_label_png(root / PART_DIR / f"{name}.png")
        results = {m: engines[m](image, labels) for m in MODES}
        cams = {"baseline": results["default"].baseline, **{f"infercam-{m}": r.cams for m, r in results.items()}}
        for method, maps in cams.items():
            sweeps[method].add(gt, maps)
            masses[method].add(maps, gt, parts)
        if len(shown) < report_images:
            shown.append(ImageRow(name, image, gt, cams, results["fixed"].boxes))
    results = {m: sweeps[m].result(dataset.names) for m in METHODS}
    scores = {m: _score(results[m], masses[m]) for m in METHODS}
    per_image = {m: results[m].per_image_iou() for m in METHODS}
    for row in shown:
        row.ious = {m: per_image[m][row.name] for m in METHODS}

    def diff(a: str, b: str) -> Interval:
        return paired_bootstrap(results[a].per_image_intersection, results[a].per_image_union,
                                results[b].per_image_intersection, results[b].per_image_union)

    differences = {f"{m} - baseline": diff("baseline", m) for m in METHODS[1:]}
    differences["infercam-default - infercam-fixed"] = diff("infercam-fixed", "infercam-default")
    photo_rows, photo_scores, notes = real_photos(device, progress, max_photos)
    summary = DemoSummary(len(dataset), time.perf_counter() - start, scores, differences, photo_scores, notes)
    page = Report("infercam demo", "infercam demo: baseline CAM vs InferCam",
                  f"{summary.images} held-out synthetic images; label maps use each method's best background "
                  f"threshold; run time {summary.seconds:.0f} s.", scores, differences, shown, photo_rows,
                  summary.photo_means(), notes)
    summary.report = str(write_report(out / "report", page))
    write_json(out / "summary.json", summary.to_dict())
    return summary


def real_photos(device: str = "cpu", progress: bool = True, max_photos: int | None = None
                ) -> tuple[list[PhotoRow], list[PhotoScore], list[str]]:
    """Baseline and InferCam maps of the real ImageNet network on darknet's photos (resized to PHOTO_SIDE; the
    first ``max_photos``), with their scores against the hand-drawn boxes: (report rows, scores, notes on what
    was skipped)."""
    if max_photos == 0:
        return [], [], ["real photos not asked for (--photos 0)"]
    found, missing = photos.available("test")
    found = [(p, fit(image, PHOTO_SIDE)) for p, image in found if p.source == "darknet"][:max_photos]
    notes = [m for m in missing if "darknet" in m]
    if not found:
        return [], [], notes or ["no real photos found"]
    net, _ = build_network(PHOTO_NETWORK)
    engines = {m: InferCam(net, mode=m.removeprefix("infercam-"), device=device) for m in PHOTO_METHODS[1:]}
    rows, scores = [], []
    for photo, image in tqdm(found, desc=f"demo: real photos ({PHOTO_NETWORK})", disable=not progress,
                             file=sys.stderr, unit="img"):
        classes = photo.imagenet_classes()
        results = {m: e(image, classes) for m, e in engines.items()}
        maps = {"baseline": results["infercam-default"].baseline, **{m: r.cams for m, r in results.items()}}
        regions = {c: photo.region(c, shape=image.shape[:2]) for c in classes}
        names = {c: next(o.imagenet_name for o in photo.objects if o.imagenet == c) for c in classes}
        for method, cams in maps.items():
            for c in classes:
                scores.append(PhotoScore(photo.name, names[c], method, mass_share(cams[c], regions[c]),
                                         best_iou(cams[c], regions[c])[0]))
        rows.append(PhotoRow(photo.name, image, maps, regions, names))
    return rows, scores, notes
