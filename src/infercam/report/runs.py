"""``infercam report``'s page: any number of runs (folders of CAM files or of label PNGs) side by side on a VOC
folder, scored against its ground truth where it has some, as one self-contained folder.

The scores are :mod:`infercam.evaluation`'s (the table's mIoU is what ``infercam eval`` prints); the pictures and
the in-page sorting are :mod:`.gallery`'s.
"""
from __future__ import annotations

import html
import itertools
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from ..classes import VOC_CLASSES
from ..data.images import load_image
from ..data.voc import SEG_DIR, find_image, labels_in, read_label_png
from ..errors import DataError, ImageError, InferCamError
from ..evaluation import DEFAULT_THRESHOLDS, TRUTH_PROBLEM, evaluate_cams, evaluate_labels, not_found_note
from ..io import ensure_dir, folder_lock, is_heatmap_of, load_cams, overlay
from ..text import counted, listed
from .gallery import GalleryItem, Panel, sort_value, write_gallery
from .page import REPORT_LOCK, check_report_folder, threshold_plot, write_page
from .pictures import colour_labels

KINDS = {"cam": ".npy", "label": ".png"}
RUNS_STYLE = "td.best{font-weight:bold}table.classes td,table.classes th{font-size:11px;padding:2px 3px}"


@dataclass
class Run:
    """One folder of predictions: its name in the report, where it is and what it holds (``cam`` or ``label``)."""

    name: str
    folder: Path
    kind: str

    def path(self, image: str) -> Path:
        return self.folder / f"{image}{KINDS[self.kind]}"


@dataclass
class RunScore:
    """A run's figures on the images with ground truth (what the summary table and the threshold plot show)."""

    miou: float
    best_threshold: float | None
    per_threshold: dict[float, float]
    per_class: dict[str, float]  # VOC class (and background) -> IoU (%)
    per_image: dict[str, float]  # image -> its IoU (%), the mean over the classes in its truth or prediction
    scored: int


def open_run(spec: str) -> Run:
    """A ``NAME=DIR`` argument, or a ``DIR`` named by its folder, as a :class:`Run`, its kind read from the files
    it holds."""
    name, sep, folder = spec.partition("=")
    if not sep or (Path(spec).is_dir() and not Path(folder).is_dir()):  # `--run cams`, `--run cams_t=0.2`: by folder
        name, folder = Path(spec).resolve().name, spec
    if not name or not folder:
        raise InferCamError(f"--run {spec!r}: expected NAME=DIR or DIR, e.g. baseline=cams_base")
    path = Path(folder)
    if not path.is_dir():
        raise DataError(f"run {name!r}: folder not found: {path}")
    cams = {p.stem for p in path.glob("*.npy")}
    labels = [p for p in path.glob("*.png") if not is_heatmap_of(p.stem, cams)]
    if bool(cams) == bool(labels):
        what = "both CAM .npy files and label .png files" if cams else "no CAM .npy files and no label .png files"
        raise DataError(f"run {name!r}: {path} holds {what}: give a folder of one kind (a cam/infer --out-cam, or "
                        "pseudo labels / predictions)")
    return Run(name, path, "cam" if cams else "label")


def score_run(run: Run, voc_root: Path, names: Sequence[str], threshold: float | None,
              missing: str = "skip", truth_notes: set[str] | None = None) -> RunScore:
    """``infercam eval``'s scores of a run (at ``threshold``, or the best of the default sweep), images without a
    prediction or ground truth left out; a damaged prediction or ground truth file is a DataError
    (``missing="error"``, as eval's default) or left out with a note (``"skip"``). A ground truth problem is no
    run's: it is said without the run's name, once for all runs (``truth_notes``: those already said)."""
    try:
        if run.kind == "cam":
            thresholds = DEFAULT_THRESHOLDS if threshold is None else [threshold]
            result = evaluate_cams(run.folder, voc_root, names, thresholds, missing="skip")
        else:
            result = evaluate_labels(run.folder, voc_root, names, missing="skip")
    except DataError as exc:  # e.g. CAMs of other classes: which run's, among several (the ground truth is none's)
        if str(exc).startswith(TRUTH_PROBLEM):
            raise
        raise DataError(f"run {run.name!r} not scored: {exc}") from None
    said = set() if truth_notes is None else truth_notes
    for note in result.notes:
        whose = "" if note.startswith(TRUTH_PROBLEM) else f"run {run.name!r}: "
        if missing == "error":
            raise DataError(f"{whose}{note} (use --missing skip to leave such files out)")
        if not whose and note in said:
            continue
        said.add(note)
        print(f"infercam report: note: {whose}{note}; left out", file=sys.stderr)
    if unnormalised := result.unnormalised_note():
        print(f"infercam report: note: run {run.name!r}: {unnormalised}", file=sys.stderr)
    return RunScore(result.miou, result.best_threshold, result.per_threshold,
                    {c: s["iou"] for c, s in result.per_class.items()}, result.per_image_iou(), result.num_images)


def informative(names: Sequence[str], scores: dict[str, RunScore], count: int) -> list[str]:
    """The ``count`` images where the runs disagree most (largest IoU difference between two runs; with one run,
    the lowest IoU), in list order; without scores, the first ``count``."""
    if not scores:
        return list(names[:count])
    runs = list(scores.values())

    def spread(name: str) -> float:
        ious = [r.per_image.get(name, math.nan) for r in runs]
        ious = [v for v in ious if not math.isnan(v)]
        if not ious:
            return -math.inf
        if len(runs) == 1:
            return -ious[0]
        return max((abs(a - b) for a, b in itertools.combinations(ious, 2)), default=-math.inf)

    chosen = set(sorted(names, key=spread, reverse=True)[:count])
    return [n for n in names if n in chosen]


def _item(name: str, voc_root: Path, runs: list[Run], scores: dict[str, RunScore]) -> GalleryItem:
    """One image's pictures: the photo, its ground truth if any, each run's map (CAMs as a heatmap of their maximum,
    labels in VOC colours), a missing, damaged or wrong-size prediction as a grey panel."""
    image = load_image(find_image(voc_root, name))
    panels = [Panel("image", image)]
    gt_path = voc_root / SEG_DIR / f"{name}.png"
    classes: set[int] = set()
    if gt_path.is_file():
        try:
            gt = read_label_png(gt_path)
        except InferCamError:  # a damaged ground truth: shown as such (scoring left the image out with a note)
            panels.append(Panel("ground truth: unreadable", np.full_like(image, 120)))
        else:
            panels.append(Panel("ground truth", colour_labels(gt)))
            classes |= set(labels_in(gt))
    ious = {}
    for run in runs:
        score = scores.get(run.name)
        iou = score.per_image.get(name, math.nan) if score else math.nan
        caption = run.name + ("" if math.isnan(iou) else f": IoU {iou:.1f}")
        path = run.path(name)
        if not path.is_file():
            panels.append(Panel(f"{run.name}: missing", np.full_like(image, 200)))
            continue
        try:
            maps = load_cams(path) if run.kind == "cam" else {0: read_label_png(path)}
        except InferCamError:  # a damaged file: shown as such (scoring left it out with a note)
            panels.append(Panel(f"{run.name}: unreadable", np.full_like(image, 120)))
            continue
        if any(m.shape != image.shape[:2] for m in maps.values()):  # scoring left it out with a note too
            panels.append(Panel(f"{run.name}: wrong size", np.full_like(image, 120)))
            continue
        if run.kind == "cam":
            classes |= {c for c in maps if c < len(VOC_CLASSES)}
            picture = overlay(image, np.max(np.stack(list(maps.values())), axis=0)) if maps else image
        else:
            picture = colour_labels(maps[0])
        panels.append(Panel(caption, picture))
        ious[run.name] = iou
    return GalleryItem(name, panels, ious, [VOC_CLASSES[c] for c in sorted(classes)])


def _missing(runs: list[Run], names: Sequence[str]) -> dict[str, list[str]]:
    return {run.name: [n for n in names if not run.path(n).is_file()] for run in runs}


def _summary(runs: list[Run], scores: dict[str, RunScore], missing: dict[str, list[str]], scored_any: bool) -> str:
    rows = []
    for run in runs:
        s = scores.get(run.name)
        figures = (f"<td>{s.miou:.2f}</td><td>{'-' if s.best_threshold is None else f'{s.best_threshold:.2f}'}</td>"
                   f"<td>{s.scored}</td>") if s else "<td>-</td><td>-</td><td>0</td>"
        rows.append(f"<tr><td>{html.escape(run.name)}</td><td>{run.kind}</td>{figures}"
                    f"<td>{len(missing[run.name])}</td></tr>")
    table = ("<table><tr><th>run</th><th>kind</th><th>mIoU (%)</th><th>threshold</th><th>images scored</th>"
             f"<th>missing files</th></tr>{''.join(rows)}</table>")
    if not scored_any:
        return table + ("<p>No ground truth (SegmentationClass/) for these images: the maps are shown without "
                        "scores.</p>")
    if not scores:
        return table + "<p>No run could be scored (the command printed why): the maps are shown without scores.</p>"
    classes = list(next(iter(scores.values())).per_class)
    best = {c: max((s.per_class[c] for s in scores.values() if not math.isnan(s.per_class[c])), default=math.nan)
            for c in classes}
    head = "<tr><th>run</th>" + "".join(f"<th>{html.escape(c)}</th>" for c in classes) + "</tr>"
    body = []
    for name, s in scores.items():
        cells = "".join("<td>-</td>" if math.isnan(v := s.per_class[c]) else
                        f"<td class='best'>{v:.1f}★</td>" if v == best[c] and len(scores) > 1 else f"<td>{v:.1f}</td>"
                        for c in classes)
        body.append(f"<tr><td>{html.escape(name)}</td>{cells}</tr>")
    return table + f"<h2>IoU per class (★ the best run)</h2><table class='classes'>{head}{''.join(body)}</table>"


def note_unused_threshold(runs: list[Run], threshold: float | None) -> None:
    """A note when a threshold is given but no run is a CAM run: label maps are scored as they are, so it would be
    ignored without a word."""
    if threshold is not None and not any(run.kind == "cam" for run in runs):
        print(f"infercam report: note: --threshold {threshold:g} not used: it applies to CAM runs, and every run here "
              "is a label run", file=sys.stderr)


def write_runs_report(out: str | Path, voc_root: str | Path, names: Sequence[str], run_specs: Sequence[str],
                      threshold: float | None = None, images: int | None = None, sort: str = "gain",
                      missing: str = "error", progress: bool = True) -> Path:
    """Write ``out/index.html`` (and ``out/img/``) comparing the runs on ``names``; returns the page's path.

    ``missing="error"`` refuses a run that lacks a file of the list; ``"skip"`` shows it as missing and scores
    the run on what it has."""
    voc_root = Path(voc_root)
    check_report_folder(Path(out))
    runs = [open_run(spec) for spec in run_specs]
    if len({r.name for r in runs}) != len(runs):
        raise InferCamError("two --run arguments have the same name: give each run its own (NAME=DIR)")
    absent = _missing(runs, names)
    if missing == "error":
        for run in runs:
            if absent[run.name]:
                raise DataError(f"run {run.name!r} has no {KINDS[run.kind]} file for {len(absent[run.name])} of the "
                                f"{counted(len(names), 'image')} (first: {run.path(absent[run.name][0])}); use "
                                "--missing skip to report them and go on")
    note_unused_threshold(runs, threshold)  # once the runs are not refused
    for run in runs:  # --missing skip: named as eval names them, one line per run
        if absent[run.name]:
            print(f"infercam report: note: run {run.name!r}: {not_found_note('prediction', absent[run.name])}; left out",
                  file=sys.stderr)
    scored_any = any((voc_root / SEG_DIR / f"{n}.png").is_file() for n in names)
    scores: dict[str, RunScore] = {}
    truth_notes: set[str] = set()
    if scored_any:
        for run in runs:
            try:
                scores[run.name] = score_run(run, voc_root, names, threshold, missing, truth_notes)
            except DataError as exc:
                if missing == "error":
                    raise
                if str(exc) not in truth_notes:  # a ground truth problem: said once, not once per run
                    print(f"infercam report: note: {exc}", file=sys.stderr)
                if str(exc).startswith(TRUTH_PROBLEM):
                    truth_notes.add(str(exc))
    shown = informative(names, scores, images) if images is not None else list(names)
    items, unreadable = [], []
    for name in tqdm(shown, desc="report", unit="img", disable=not progress):
        try:
            items.append(_item(name, voc_root, runs, scores))
        except ImageError as exc:  # the photo itself: nothing to show it with
            if missing == "error":
                raise
            print(f"infercam report: note: {name} left out: {exc}", file=sys.stderr)
            unreadable.append(name)
    if not items:
        raise DataError(f"every image was left out ({counted(len(unreadable), 'image')}, see the notes above): "
                        "nothing to show; check --voc-root and --list")
    names_of_runs = [r.name for r in runs]
    curves = {name: s for name, s in scores.items() if len(s.per_threshold) > 1}  # CAM runs over a sweep
    plot = threshold_plot(curves) if curves else ""
    missing_notes = "".join(f"<li>{html.escape(r)}: {len(v)} missing ({html.escape(listed(v, 10))})</li>"
                            for r, v in absent.items() if v)
    body = (f"<h1>infercam report</h1><p>{counted(len(names), 'image')}, {counted(len(runs), 'run')}; "
            f"{len(shown)} shown{' (the most informative)' if images is not None else ''}.</p>"
            f"<h2>Summary</h2>{_summary(runs, scores, absent, scored_any)}"
            + (f"<ul>{missing_notes}</ul>" if missing_notes else "")
            + (f"<p>Left out, the image does not load: {html.escape(', '.join(unreadable))}.</p>" if unreadable else "")
            + (f"<h2>mIoU against threshold</h2>{plot}" if plot else ""))
    folder = ensure_dir(out, "report folder")  # made once every picture could be drawn
    # one report writes the folder at a time: each removes the pictures its own page does not show
    with folder_lock(folder / REPORT_LOCK):
        ensure_dir(folder / "img", "report image folder")
        gallery = write_gallery(folder, items, names_of_runs, sort_value(sort, names_of_runs))
        return write_page(folder, "infercam report", f"{body}<h2>Images</h2>{gallery}", RUNS_STYLE)
