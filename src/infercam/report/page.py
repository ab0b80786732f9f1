"""A self-contained HTML report of a demo run: summary table, mIoU-vs-threshold plot (inline SVG), and per
image the picture, its ground truth, the CAMs and the label maps at each method's best threshold.

Everything sits in one folder: ``index.html`` and ``img/`` with the PNGs it references by relative path.
"""
from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..classes import voc_colormap
from ..evaluation import cam_to_label
from ..io import atomic_path, ensure_dir, overlay, save_image
from ..method.split import Box

if TYPE_CHECKING:
    from ..demo.run import DemoSummary

COLOURS = {"baseline": "#888888", "infercam-default": "#d62728", "infercam-fixed": "#2ca02c",
           "infercam-reference": "#1f77b4"}
PALETTE = voc_colormap()


def colour_labels(label: np.ndarray) -> np.ndarray:
    """A label map in VOC colours (ignore 255 shown white)."""
    rgb = PALETTE[label]
    rgb[label == 255] = 255
    return rgb


def draw_boxes(image: np.ndarray, boxes: list[Box]) -> np.ndarray:
    """The image with the four patch boxes outlined (1 px, in distinct colours)."""
    out = image.copy()
    for box, colour in zip(boxes, ((255, 255, 0), (0, 255, 255), (255, 0, 255), (255, 128, 0))):
        b, r = box.bottom - 1, box.right - 1
        out[box.top, box.left:box.right] = out[b, box.left:box.right] = colour
        out[box.top:box.bottom, box.left] = out[box.top:box.bottom, r] = colour
    return out


def outline(image: np.ndarray, mask: np.ndarray, colour=(0, 255, 0)) -> np.ndarray:
    """The image with the border of a bool mask drawn (e.g. an object's hand-drawn boxes)."""
    out = image.copy()
    inner = mask.copy()
    inner[1:-1, 1:-1] = mask[1:-1, 1:-1] & mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:]
    out[mask & ~inner] = colour
    return out


def threshold_plot(summary: "DemoSummary", width: int = 560, height: int = 300) -> str:
    """mIoU against background threshold for every method, as inline SVG."""
    left, right, top, bottom = 48, 150, 12, 36
    pw, ph = width - left - right, height - top - bottom
    curves = {m: sorted((float(t), v) for t, v in s.per_threshold.items()) for m, s in summary.methods.items()}
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
        colour = COLOURS.get(method, "#2ca02c")
        points = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in curve)
        best = summary.methods[method]
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>'
                     f'<circle cx="{x(best.best_threshold):.1f}" cy="{y(best.miou):.1f}" r="3.5" fill="{colour}"/>'
                     f'<line x1="{left + pw + 10}" x2="{left + pw + 30}" y1="{top + 14 + 18 * i}" '
                     f'y2="{top + 14 + 18 * i}" stroke="{colour}" stroke-width="3"/>'
                     f'<text x="{left + pw + 34}" y="{top + 18 + 18 * i}">{html.escape(method)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _summary_table(summary: "DemoSummary") -> str:
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{m.miou:.2f}</td><td>{m.best_threshold:.2f}</td>"
        f"<td>{m.fg_recall:.1f}</td><td>{m.fg_precision:.1f}</td><td>{m.mass['head'] * 100:.1f}%</td>"
        f"<td>{m.mass['body'] * 100:.1f}%</td><td>{m.mass['outside'] * 100:.1f}%</td></tr>"
        for name, m in summary.methods.items())
    diffs = "".join(f"<li>{html.escape(k)}: <b>{v.difference:+.2f}</b> mIoU points, {int(v.level * 100)}% "
                    f"paired bootstrap interval [{v.low:+.2f}, {v.high:+.2f}]</li>"
                    for k, v in summary.differences.items())
    return ("<table><tr><th>method</th><th>mIoU (%)</th><th>best threshold</th><th>object recall (%)</th>"
            "<th>object precision (%)</th><th>CAM mass on head</th><th>on body</th><th>outside object</th></tr>"
            f"{rows}</table><ul>{diffs}</ul>")


def _image_rows(folder: Path, summary: "DemoSummary", rows: list[dict[str, Any]]) -> str:
    methods = list(summary.methods)
    out = []
    for row in rows:
        name, image = row["name"], row["image"]
        cells = [("image + patches", draw_boxes(image, row["boxes"])), ("ground truth", colour_labels(row["gt"]))]
        for method in methods:
            cams = row["cams"][method]
            top = np.max(np.stack(list(cams.values())), axis=0)
            cells.append((f"{method} CAM", overlay(image, top)))
        for method in methods:
            label = cam_to_label(row["cams"][method], summary.methods[method].best_threshold, row["gt"].shape)
            cells.append((f"{method} labels", colour_labels(label)))
        tds = []
        for k, (caption, picture) in enumerate(cells):
            rel = f"img/{name}_{k}.png"
            save_image(folder / rel, picture)
            tds.append(f'<td><img src="{rel}" alt="{html.escape(caption)}" width="{picture.shape[1]}" '
                       f'height="{picture.shape[0]}"></td>')
        out.append(f"<tr><th>{html.escape(name)}</th>{''.join(tds)}</tr>")
    captions = ["image + patches", "ground truth"] + [f"{m} CAM" for m in methods] + [f"{m} labels" for m in methods]
    head = "<tr><th>name</th>" + "".join(f"<th>{html.escape(c)}</th>" for c in captions) + "</tr>"
    return f"<table class='images'>{head}{''.join(out)}</table>"


def _photo_section(folder: Path, summary: "DemoSummary", rows: list[dict[str, Any]]) -> str:
    """The real-photo panels: the photo with its boxes, then each method's map (maximum over the photo's classes),
    and the mean scores against the boxes."""
    if not rows:
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in summary.photo_notes)
        return f"<h2>Real photos</h2><p>Skipped:</p><ul>{notes}</ul>"
    means = summary.photo_means()
    table = "".join(f"<tr><td>{html.escape(m)}</td><td>{share:.3f}</td><td>{iou:.3f}</td></tr>"
                    for m, (share, iou) in means.items())
    methods = list(rows[0]["maps"])
    out = []
    for row in rows:
        image = row["image"]
        boxes = np.any(np.stack(list(row["regions"].values())), axis=0)
        cells = [outline(image, boxes)]
        cells += [overlay(image, np.max(np.stack(list(row["maps"][m].values())), axis=0)) for m in methods]
        tds = []
        for k, picture in enumerate(cells):
            rel = f"img/photo_{row['name']}_{k}.png"
            save_image(folder / rel, picture)
            tds.append(f'<td><img src="{rel}" alt="{html.escape(row["name"])}" width="{picture.shape[1] // 2}" '
                       f'height="{picture.shape[0] // 2}"></td>')
        classes = ", ".join(html.escape(n) for n in row["classes"].values())
        out.append(f"<tr><th>{html.escape(row['name'])}<br><small>{classes}</small></th>{''.join(tds)}</tr>")
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


def write_report(folder: str | Path, summary: "DemoSummary", rows: list[dict[str, Any]],
                 photo_rows: list[dict[str, Any]] = ()) -> Path:
    """Write ``folder/index.html`` (and its images): the synthetic split's figures and images, then the real
    photos' panels; returns the HTML path."""
    folder = ensure_dir(folder, "report folder")
    ensure_dir(folder / "img", "report image folder")
    body = (f"<div id='broken'></div><h1>infercam demo: baseline CAM vs InferCam</h1><p>{summary.images} held-out synthetic images; "
            f"label maps use each method's best background threshold; run time {summary.seconds:.0f} s.</p>"
            f"<h2>Summary</h2>{_summary_table(summary)}<h2>mIoU against threshold</h2>{threshold_plot(summary)}"
            f"<h2>Images</h2>{_image_rows(folder, summary, rows)}{_photo_section(folder, summary, list(photo_rows))}")
    page = f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>infercam demo</title><style>{STYLE}</style>" \
           f"</head><body>{body}{CHECK_SCRIPT}</body></html>\n"
    path = folder / "index.html"
    with atomic_path(path) as tmp:
        Path(tmp).write_text(page, encoding="utf-8")
    return path


__all__ = ["colour_labels", "draw_boxes", "outline", "threshold_plot", "write_report"]
