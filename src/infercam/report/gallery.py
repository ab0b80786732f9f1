"""The gallery of a report: per image a row of pictures (the photo, its ground truth, each run's map) with each
run's IoU under its picture, sortable in the page by name, by a run's IoU or by the difference between two runs,
filterable by class, and shown a page at a time.

The page's state lives in its address (``index.html#sort=diff:1:0&class=dog&page=2``), so a view can be shared and
a test can open the page in a given state. Pictures are saved as PNG thumbnails beside the page.
"""
from __future__ import annotations

import hashlib
import html
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.images import fit
from ..io import save_image

PAGE_SIZE = 50  # images shown at once
THUMB_SIDE = 200  # longest side of a saved picture, px


@dataclass
class Panel:
    """One picture of an image's row and its caption."""

    caption: str
    picture: np.ndarray  # H x W x 3 uint8


@dataclass
class GalleryItem:
    """One image of the gallery: its pictures (the image's own ones, then one or more per run), each run's IoU on
    it (NaN or absent where not scored) and the names of the classes it shows (for the class filter)."""

    name: str
    panels: list[Panel]
    ious: dict[str, float] = field(default_factory=dict)  # run -> per-image IoU (%)
    classes: list[str] = field(default_factory=list)


def save_picture(folder: Path, stem: str, picture: np.ndarray) -> str:
    """Save ``picture`` as ``img/<stem>-<digest of its pixels>.png`` under ``folder`` and return that relative path:
    named by its content, so that a report rewritten over an earlier one (and interrupted) never changes a picture
    the earlier page shows under another caption."""
    digest = hashlib.sha1(repr(picture.shape).encode() + np.ascontiguousarray(picture).tobytes()).hexdigest()[:12]
    rel = f"img/{stem}-{digest}.png"
    save_image(folder / rel, picture)
    return rel


def _sort_options(runs: list[str]) -> list[tuple[str, str]]:
    """(value, label) of every sort the page offers."""
    options = [("name", "name")]
    options += [(f"iou:{i}", f"IoU of {run} (lowest first)") for i, run in enumerate(runs)]
    options += [(f"diff:{i}:{j}", f"{runs[i]} − {runs[j]} (largest first)")
                for i in range(len(runs)) for j in range(len(runs)) if i != j]
    return options


def sort_value(sort: str, runs: list[str]) -> str:
    """The page's sort for a ``--sort`` word: ``name``; ``iou`` (the first run's IoU, lowest first); ``gain`` /
    ``loss`` (the last run's IoU minus the first's, largest / smallest first)."""
    last = len(runs) - 1
    return {"name": "name", "iou": "iou:0", "gain": f"diff:{last}:0" if last else "iou:0",
            "loss": f"diff:0:{last}" if last else "iou:0"}[sort]


def write_gallery(folder: Path, items: list[GalleryItem], runs: list[str], sort: str = "name",
                  page_size: int = PAGE_SIZE) -> str:
    """Save every item's pictures as thumbnails under ``folder/img/`` and return the gallery's HTML (controls,
    rows and script); ``sort`` is the initial order (a value of :func:`sort_value`)."""
    rows = []
    for n, item in enumerate(items):
        cells = []
        for k, panel in enumerate(item.panels):
            picture = fit(panel.picture, THUMB_SIDE)
            rel = save_picture(folder, f"g{n}_{k}", picture)
            cells.append(f'<figure><img src="{rel}" alt="{html.escape(panel.caption)}" width="{picture.shape[1]}" '
                         f'height="{picture.shape[0]}"><figcaption>{html.escape(panel.caption)}</figcaption></figure>')
        scores = "".join(f' data-iou{i}="{item.ious[run]:.2f}"' for i, run in enumerate(runs)
                         if run in item.ious and not math.isnan(item.ious[run]))
        classes = html.escape(" " + " ".join(c.replace(" ", "_") for c in item.classes) + " ")
        rows.append(f'<div class="item" data-name="{html.escape(item.name)}" data-classes="{classes}"{scores}>'
                    f'<h3>{html.escape(item.name)}</h3>{"".join(cells)}</div>')
    options = "".join(f'<option value="{v}"{" selected" if v == sort else ""}>{html.escape(label)}</option>'
                      for v, label in _sort_options(runs))
    names = sorted({c for item in items for c in item.classes})
    classes = "".join(f'<option value="{html.escape(c.replace(" ", "_"))}">{html.escape(c)}</option>' for c in names)
    controls = (f'<div id="controls">sort <select id="sort">{options}</select> class <select id="cls">'
                f'<option value="">all</option>{classes}</select> <button id="prev">&lt;</button> '
                f'<span id="pageinfo"></span> <button id="next">&gt;</button></div>')
    return f'{controls}<div id="gallery" data-page-size="{page_size}">{"".join(rows)}</div>{GALLERY_SCRIPT}'


# Sorting, filtering and paging in the page; the state is read from and written to location.hash.
GALLERY_SCRIPT = """<script>(function(){
var g=document.getElementById('gallery'),items=[].slice.call(g.children),size=+g.dataset.pageSize,page=0;
var sort=document.getElementById('sort'),cls=document.getElementById('cls'),info=document.getElementById('pageinfo');
function num(it,i){var v=it.getAttribute('data-iou'+i);return v===null?NaN:parseFloat(v);}
function key(it,s){var p=s.split(':');if(p[0]==='iou')return num(it,p[1]);return num(it,p[1])-num(it,p[2]);}
function cmp(s){return function(a,b){if(s==='name')return a.dataset.name<b.dataset.name?-1:1;
 var x=key(a,s),y=key(b,s);if(isNaN(x)||isNaN(y))return isNaN(x)-isNaN(y)||(a.dataset.name<b.dataset.name?-1:1);
 var d=s.indexOf('diff')===0?y-x:x-y;return d||(a.dataset.name<b.dataset.name?-1:1);};}
function show(){var s=sort.value,c=cls.value;
 var shown=items.filter(function(it){return !c||it.dataset.classes.indexOf(' '+c+' ')>=0;}).sort(cmp(s));
 var pages=Math.max(1,Math.ceil(shown.length/size));page=Math.min(Math.max(page,0),pages-1);
 items.forEach(function(it){it.hidden=true;});
 shown.forEach(function(it,k){g.appendChild(it);it.hidden=k<page*size||k>=(page+1)*size;});
 info.textContent='page '+(page+1)+' of '+pages+' ('+shown.length+' images)';
 history.replaceState(null,'','#sort='+s+'&class='+c+'&page='+(page+1));}
var h={};location.hash.slice(1).split('&').forEach(function(kv){var p=kv.split('=');h[p[0]]=decodeURIComponent(p[1]||'');});
if(h.sort&&[].some.call(sort.options,function(o){return o.value===h.sort;}))sort.value=h.sort;
if(h['class']!==undefined&&[].some.call(cls.options,function(o){return o.value===h['class'];}))cls.value=h['class'];
if(h.page)page=(+h.page||1)-1;
sort.onchange=cls.onchange=function(){page=0;show();};
document.getElementById('prev').onclick=function(){page--;show();};
document.getElementById('next').onclick=function(){page++;show();};
show();})();</script>"""

GALLERY_STYLE = """.item{border-top:1px solid #ccc;padding:6px 0}.item h3{font-size:13px;margin:2px 0}
figure{display:inline-block;margin:2px 4px;vertical-align:top}figcaption{font-size:12px;text-align:center}
#controls{position:sticky;top:0;background:#fff;padding:6px 0;border-bottom:1px solid #ccc}"""
