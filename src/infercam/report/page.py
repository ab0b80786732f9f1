"""A self-contained HTML report of CAM results: summary table, mIoU-vs-threshold plot (inline SVG), and per
image the picture, its ground truth, the CAMs and the label maps at each method's best threshold, then real
photos with each method's map.

Everything sits in one folder: ``index.html`` and ``img/`` with the PNGs it references by relative path. The
caller describes the page with the plain data of :class:`Report`; this module knows nothing of who made it.
"""
from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Protocol

import numpy as np

from ..classes import VOC_CLASSES
from ..data.voc import labels_in
from ..evaluation import cam_to_label
from ..errors import DataError
from ..evaluation.stats import Interval
from ..io import atomic_path, check_dir, ensure_dir, overlay, refuse_live_holder
from ..method.split import Box
from .gallery import GALLERY_STYLE, GalleryItem, Panel, save_picture, write_gallery
from .pictures import colour_labels, draw_boxes, outline

COLOURS = {"baseline": "#888888", "infercam-default": "#d62728", "infercam-fixed": "#2ca02c",
           "infercam-reference": "#1f77b4"}
SPARE_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
CamMaps = dict[int, np.ndarray]  # class index -> map
GENERATOR = '<meta name="generator" content="infercam report">'  # marks a folder as a report's, to replace
REPORT_LOCK = ".infercam-report.lock"  # held while a report writes its folder (io.folder_lock)
OLDER_REPORT_MARK = "keep index.html beside its img/ folder."  # what reports before the mark all say


class Curve(Protocol):
    """What the threshold plot reads of a method's scores."""

    miou: float
    best_threshold: float
    per_threshold: Mapping[float | str, float]


@dataclass
class MethodScore:
    """One method's figures on a labelled split: what the summary table and the threshold plot show."""

    miou: float
    best_threshold: float
    fg_recall: float
    fg_precision: float
    mass: dict[str, float]  # share of CAM mass on the object's head, its body, and outside it
    per_threshold: dict[str, float] = field(repr=False)


@dataclass
class ImageRow:
    """One labelled image of the report: the picture, its ground truth, each method's CAMs and the patch boxes."""

    name: str
    image: np.ndarray
    gt: np.ndarray
    cams: dict[str, CamMaps]  # method -> its CAMs
    boxes: list[Box]
    ious: dict[str, float] = field(default_factory=dict)  # method -> the image's IoU (%) at its best threshold


@dataclass
class PhotoRow:
    """One real photo: each method's maps, and per class its hand-drawn boxes (a bool mask) and its name."""

    name: str
    image: np.ndarray
    maps: dict[str, CamMaps]  # method -> its maps
    regions: dict[int, np.ndarray]
    classes: dict[int, str]


@dataclass
class Report:
    """What a report page shows: its title, heading and opening sentence, each method's scores, the differences
    between methods, the labelled images, and the real photos with their mean scores (or why there are none)."""

    title: str
    heading: str
    intro: str
    methods: dict[str, MethodScore]
    differences: dict[str, Interval]
    images: list[ImageRow]
    photos: list[PhotoRow] = field(default_factory=list)
    photo_means: dict[str, tuple[float, float]] = field(default_factory=dict)  # method -> (share, best IoU)
    photo_notes: list[str] = field(default_factory=list)  # why photos were skipped


def threshold_plot(methods: Mapping[str, Curve], width: int = 560, height: int = 300) -> str:
    """mIoU against background threshold for every method (its ``per_threshold``, with a dot at its best), as
    inline SVG."""
    left, right, top, bottom = 48, 150, 12, 36
    pw, ph = width - left - right, height - top - bottom
    curves = {m: sorted((float(t), v) for t, v in s.per_threshold.items()) for m, s in methods.items()}
    tmax = max(t for c in curves.values() for t, _ in c)
    vmax = max(v for c in curves.values() for _, v in c)
    ymax = max(10.0, np.ceil(vmax / 10) * 10)
    x = lambda t: left + pw * t / tmax  # noqa: E731
    y = lambda v: top + ph * (1 - v / ymax)  # noqa: E731
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-size="11" '
             f'font-family="sans-serif" role="img" aria-label="mIoU against threshold">',
             f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>']
    for v in np.arange(0, ymax + 1e-9, 10):
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#ddd"/>'
                     f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.0f}</text>')
    for t in np.arange(0, tmax + 1e-9, 0.1):
        parts.append(f'<text x="{x(t):.1f}" y="{top + ph + 16}" text-anchor="middle">{t:.1f}</text>')
    parts.append(f'<text x="{left + pw / 2}" y="{height - 4}" text-anchor="middle">background threshold</text>'
                 f'<text x="12" y="{top + ph / 2}" transform="rotate(-90 12 {top + ph / 2})" '
                 f'text-anchor="middle">mIoU (%)</text>')
    for i, (method, curve) in enumerate(curves.items()):
        colour = COLOURS.get(method, SPARE_COLOURS[i % len(SPARE_COLOURS)])
        points = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in curve)
        best = methods[method]
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>'
                     f'<circle cx="{x(best.best_threshold):.1f}" cy="{y(best.miou):.1f}" r="3.5" fill="{colour}"/>'
                     f'<line x1="{left + pw + 10}" x2="{left + pw + 30}" y1="{top + 14 + 18 * i}" '
                     f'y2="{top + 14 + 18 * i}" stroke="{colour}" stroke-width="3"/>'
                     f'<text x="{left + pw + 34}" y="{top + 18 + 18 * i}">{html.escape(method)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _summary_table(report: Report) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{m.miou:.2f}</td><td>{m.best_threshold:.2f}</td>"
        f"<td>{m.fg_recall:.1f}</td><td>{m.fg_precision:.1f}</td><td>{m.mass['head'] * 100:.1f}%</td>"
        f"<td>{m.mass['body'] * 100:.1f}%</td><td>{m.mass['outside'] * 100:.1f}%</td></tr>"
        for name, m in report.methods.items())
    diffs = "".join(f"<li>{html.escape(k)}: <b>{v.difference:+.2f}</b> mIoU points, {int(v.level * 100)}% "
                    f"paired bootstrap interval [{v.low:+.2f}, {v.high:+.2f}]</li>"
                    for k, v in report.differences.items())
    return ("<table><tr><th>method</th><th>mIoU (%)</th><th>best threshold</th><th>object recall (%)</th>"
            "<th>object precision (%)</th><th>CAM mass on head</th><th>on body</th><th>outside object</th></tr>"
            f"{rows}</table><ul>{diffs}</ul>")


def _gallery_items(report: Report) -> list[GalleryItem]:
    """The labelled images as gallery rows: the image with its patches, its truth, each method's CAM (with the
    image's IoU) and label map at the method's best threshold."""
    items = []
    for row in report.images:
        panels = [Panel("image + patches", draw_boxes(row.image, row.boxes)),
                  Panel("ground truth", colour_labels(row.gt))]
        for method, cams in row.cams.items():
            top = np.max(np.stack(list(cams.values())), axis=0)
            iou = row.ious.get(method)
            panels.append(Panel(f"{method} CAM" + ("" if iou is None else f": IoU {iou:.1f}"), overlay(row.image, top)))
        for method, cams in row.cams.items():
            label = cam_to_label(cams, report.methods[method].best_threshold, row.gt.shape)
            panels.append(Panel(f"{method} labels", colour_labels(label)))
        classes = [VOC_CLASSES[c] for c in labels_in(row.gt)]
        items.append(GalleryItem(row.name, panels, dict(row.ious), classes))
    return items


def _photo_section(folder: Path, report: Report) -> str:
    """The real-photo panels: the photo with its boxes, then each method's map (maximum over the photo's classes),
    and the mean scores against the boxes."""
    rows = report.photos
    if not rows:
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in report.photo_notes)
        return f"<h2>Real photos</h2><p>Skipped:</p><ul>{notes}</ul>"
    table = "".join(f"<tr><td>{html.escape(m)}</td><td>{share:.3f}</td><td>{iou:.3f}</td></tr>"
                    for m, (share, iou) in report.photo_means.items())
    methods = list(rows[0].maps)
    out = []
    for row in rows:
        image = row.image
        boxes = np.any(np.stack(list(row.regions.values())), axis=0)
        cells = [outline(image, boxes)]
        cells += [overlay(image, np.max(np.stack(list(row.maps[m].values())), axis=0)) for m in methods]
        tds = []
        for k, picture in enumerate(cells):
            rel = save_picture(folder, f"photo_{row.name}_{k}", picture)
            tds.append(f'<td><img src="{rel}" alt="{html.escape(row.name)}" width="{picture.shape[1] // 2}" '
                       f'height="{picture.shape[0] // 2}"></td>')
        classes = ", ".join(html.escape(n) for n in row.classes.values())
        out.append(f"<tr><th>{html.escape(row.name)}<br><small>{classes}</small></th>{''.join(tds)}</tr>")
    head = "<tr><th>photo</th><th>photo + boxes</th>" + "".join(f"<th>{html.escape(m)}</th>" for m in methods) + "</tr>"
    return ("<h2>Real photos: a real ImageNet network</h2><p>EfficientNet-Lite0 with its ImageNet-1k weights, no "
            "training; boxes drawn by hand (green). Share = the map's mass inside the boxes; IoU = the best IoU of "
            "the thresholded map with them.</p><table><tr><th>method</th><th>mean share in boxes</th>"
            f"<th>mean best IoU</th></tr>{table}</table><table class='images'>{head}{''.join(out)}</table>")


STYLE = """body{font-family:sans-serif;margin:24px;color:#222}table{border-collapse:collapse;margin:8px 0}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:center;font-size:13px}
table.images td{padding:2px}img{display:block;image-rendering:pixelated}
#broken{display:none;background:#fdd;border:1px solid #c00;padding:8px}"""
# After loading, count the pictures that decoded; warn visibly if any did not (and record it on <body>).
CHECK_SCRIPT = """<script>window.addEventListener('load',function(){var im=document.images,ok=0;
for(var i=0;i<im.length;i++){if(im[i].complete&&im[i].naturalWidth>0)ok++;}
document.body.setAttribute('data-images-loaded',ok+'/'+im.length);
if(ok<im.length){var b=document.getElementById('broken');b.style.display='block';
b.textContent=(im.length-ok)+' of '+im.length+' pictures failed to load: keep index.html beside its img/ folder.';}});
</script>"""


def write_report(folder: str | Path, report: Report) -> Path:
    """Write ``folder/index.html`` (and its images): the summary, the threshold plot, the labelled images, then the
    real photos' panels; returns the HTML path."""
    check_report_folder(Path(folder))
    folder = ensure_dir(folder, "report folder")
    ensure_dir(folder / "img", "report image folder")
    body = (f"<h1>{html.escape(report.heading, quote=False)}</h1><p>{html.escape(report.intro, quote=False)}</p>"
            f"<h2>Summary</h2>{_summary_table(report)}<h2>mIoU against threshold</h2>{threshold_plot(report.methods)}"
            f"<h2>Images</h2>{write_gallery(folder, _gallery_items(report), list(report.methods))}"
            f"{_photo_section(folder, report)}")
    return write_page(folder, report.title, body)


def write_page(folder: Path, title: str, body: str, style: str = "") -> Path:
    """Write ``folder/index.html`` atomically: ``body`` with the reports' style (and ``style``), the gallery's,
    and the check that every picture loaded; returns its path."""
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'>{GENERATOR}"
            f"<title>{html.escape(title, quote=False)}</title>"
            f"<style>{STYLE}{GALLERY_STYLE}{style}</style></head><body><div id='broken'></div>{body}{CHECK_SCRIPT}"
            "</body></html>\n")
    path = folder / "index.html"
    with atomic_path(path) as tmp:
        Path(tmp).write_text(page, encoding="utf-8")
    _remove_unused_pictures(folder, body)
    return path


def check_report_folder(folder: Path) -> None:
    """A DataError unless ``folder`` may take a report: it does not exist, is empty, or holds an earlier report
    (an ``index.html`` an infercam report wrote, or only the pictures of one interrupted before it), which is
    replaced. Any other folder (a data set, a run's outputs, someone's web page) is refused before anything is
    computed: the report would mix with or replace its files; so is a new folder that cannot be made (under a file)."""
    if not folder.exists():
        check_dir(folder, "report folder")
        return
    if not folder.is_dir():
        raise DataError(f"report folder {folder} is a file: give a folder for index.html and img/")
    refuse_live_holder(folder / REPORT_LOCK)  # another report writing it now, before this one computes anything
    if not any(not p.name.startswith(".") for p in folder.iterdir()):  # empty, but for hidden files (a stale lock)
        return
    index = folder / "index.html"
    try:
        ours = index.is_file() and any(mark in index.read_text(encoding="utf-8", errors="replace")
                                       for mark in (GENERATOR, OLDER_REPORT_MARK))
    except OSError:
        ours = False
    if not ours and not index.exists():  # a report interrupted before its page: only pictures of its own in img/
        entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
        ours = [p.name for p in entries] == ["img"] and (folder / "img").is_dir() and all(
            _OWN_PICTURE.fullmatch(p.name) or p.name.startswith(".") for p in (folder / "img").iterdir())
    if not ours:
        what = "an index.html that no infercam report wrote" if index.exists() else "other files"
        raise DataError(f"report folder {folder} holds {what}: a report writes index.html and img/ into an empty "
                        "folder of its own (or over an earlier report); give another --out")


# the names save_picture gives (and those of reports before it, without the digest)
_OWN_PICTURE = re.compile(r"(g\d+_\d+|photo_.+_\d+)(-[0-9a-f]{12})?\.png")


def _remove_unused_pictures(folder: Path, body: str) -> None:
    """Remove pictures an earlier report into ``folder`` wrote and this page no longer shows (a rerun with fewer
    images), so that img/ holds what index.html shows; files of other names are left alone."""
    shown = set(re.findall(r'src="img/([^"]+)"', body))
    for picture in (folder / "img").glob("*.png"):
        if _OWN_PICTURE.fullmatch(picture.name) and picture.name not in shown:
            picture.unlink(missing_ok=True)


__all__ = ["ImageRow", "MethodScore", "PhotoRow", "Report", "check_report_folder", "threshold_plot", "write_page",
           "write_report"]
