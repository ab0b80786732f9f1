"""One synthetic scene: objects that spread classifier evidence unevenly, drawn in memory.

Each object is a large body with weak, class-specific texture and a small, high-contrast 'head'
that identifies the class on its own; baseline CAMs then favour the head, and erasing it makes
the classifier reveal the body, as on real photos. See docs/synthetic.md for the design;
:mod:`infercam.data.synthetic` writes a data set of such scenes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image
from scipy import ndimage

from ..classes import IGNORE_INDEX, NUM_CLASSES, VOC_CLASSES

PART_BODY, PART_HEAD = 1, 2  # values of the part mask (0 elsewhere, 255 on the border band)

# Four families of five classes share a body colour; VOC look-alikes share a family.
FAMILIES: tuple[tuple[str, ...], ...] = (
    ("cat", "dog", "cow", "horse", "sheep"),
    ("bicycle", "bus", "car", "motorbike", "train"),
    ("bottle", "chair", "diningtable", "sofa", "tvmonitor"),
    ("aeroplane", "bird", "boat", "person", "pottedplant"),
)
FAMILY_COLOURS = np.array([(148, 121, 97), (97, 117, 144), (133, 106, 130), (112, 133, 97)], np.float32)
# Body texture of the i-th class of each family: weak, but tells the family members apart.
PATTERNS: tuple[str, ...] = ("along", "across", "diagonal", "spots", "checker")
HEAD_COLOURS = np.array([(225, 35, 35), (240, 130, 20), (235, 220, 30), (40, 190, 60), (30, 200, 210),
                         (40, 70, 230), (210, 50, 200)], np.float32)  # red .. magenta
HEAD_SHAPES: tuple[str, ...] = ("disk", "square", "triangle", "cross")
# The two head colours of each family member: every pair is unique to its class (20 of the 21
# pairs of 7 colours) while each single colour is shared by several classes, also within a
# family (all but one colour slot), so one colour, even with the body colour, does not name the
# class; the pair does, early in a CNN. The head shape is a second, redundant cue.
_HEAD_PAIRS = (
    ((0, 5), (1, 5), (1, 2), (0, 4), (2, 4)),
    ((1, 6), (1, 4), (3, 6), (3, 5), (3, 4)),
    ((0, 3), (2, 3), (0, 1), (1, 3), (0, 2)),
    ((5, 6), (4, 6), (4, 5), (2, 6), (2, 5)),
)
# Area of each head shape at unit scale (the cross has arms 0.35 as wide as they are long).
_SHAPE_AREA = {"disk": math.pi, "square": 4.0, "triangle": 3 * math.sqrt(3) / 4, "cross": 2.31}


@dataclass(frozen=True)
class ClassLook:
    """How one class is drawn: body family colour and texture, head colours and shape."""

    family: int
    pattern: str
    head_colours: tuple[int, int]
    head_shape: str


def _class_looks() -> tuple[ClassLook, ...]:
    looks: dict[str, ClassLook] = {}
    for f, (members, pairs) in enumerate(zip(FAMILIES, _HEAD_PAIRS)):
        for k, (name, pattern, colours) in enumerate(zip(members, PATTERNS, pairs)):
            looks[name] = ClassLook(f, pattern, colours, HEAD_SHAPES[(k + f) % len(HEAD_SHAPES)])
    return tuple(looks[name] for name in VOC_CLASSES)


CLASS_LOOKS: tuple[ClassLook, ...] = _class_looks()


@dataclass(frozen=True)
class SceneDesign:
    """The knobs of a scene: class mix, decoys, object and head sizes, texture contrast, outputs."""

    class_mix: tuple[float, ...] = (0.6, 0.3, 0.1)  # P(1 class), P(2 classes), P(3 classes)
    second_instance_prob: float = 0.25  # a class appears twice
    decoy_prob: float = 0.15  # one headless body of an absent class, labelled background
    hidden_head_prob: float = 0.25  # a labelled object shows only its body
    body_length: tuple[float, float] = (0.55, 0.9)  # long axis / image side, for a lone object
    head_fraction: tuple[float, float] = (0.13, 0.19)  # head area / object area
    body_contrast: float = 20.0  # amplitude of the body texture, in 0..255 grey levels
    border_width: int = 1  # 255 band on each side of object outlines; 0 for none
    jpeg_quality: int = 90

    def __post_init__(self) -> None:
        mix = np.asarray(self.class_mix, dtype=np.float64)
        if mix.ndim != 1 or not 1 <= mix.size <= NUM_CLASSES or (mix < 0).any() or abs(mix.sum() - 1) > 1e-6:
            raise ValueError(f"class_mix must be 1..{NUM_CLASSES} probabilities summing to 1, got {self.class_mix}")
        for name in ("second_instance_prob", "decoy_prob", "hidden_head_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        for name in ("body_length", "head_fraction"):
            lo, hi = getattr(self, name)
            if not 0.0 < lo <= hi < 1.0:
                raise ValueError(f"{name} must be a range inside (0, 1), got {getattr(self, name)}")
        if self.border_width < 0 or not 1 <= self.jpeg_quality <= 100:
            raise ValueError("border_width must be >= 0 and jpeg_quality in 1..100")


@dataclass
class SceneObject:
    """One labelled object of a scene: class index (0..19), 1-based VOC box, truncation flag."""

    class_index: int
    box: tuple[int, int, int, int]  # xmin, ymin, xmax, ymax, inclusive, 1-based
    truncated: bool


@dataclass
class Scene:
    """A rendered image with its class mask (0 bg, 1..20, 255 border) and part mask (0/1/2/255)."""

    image: np.ndarray
    classes: np.ndarray
    parts: np.ndarray
    objects: list[SceneObject] = field(default_factory=list)

    def labels(self) -> np.ndarray:
        """The image-level 20-vector (float32) of the classes visible in the class mask."""
        present = np.unique(self.classes)
        vector = np.zeros(NUM_CLASSES, dtype=np.float32)
        vector[present[(present >= 1) & (present <= NUM_CLASSES)] - 1] = 1.0
        return vector


def image_rng(seed: int, index: int) -> np.random.Generator:
    """The random generator of image ``index``: depends on (seed, index) only, not on the worker."""
    return np.random.default_rng(np.random.SeedSequence([seed, index]))


# ---------------------------------------------------------------- geometry

@dataclass
class _Window:
    """A box of the image around a shape, with coordinates in the shape's rotated frame."""

    rows: slice
    cols: slice
    u: np.ndarray  # along the shape's axis
    v: np.ndarray  # across it


def _window(size: int, cx: float, cy: float, theta: float, radius: float) -> _Window:
    """The part of the image within ``radius`` of (cx, cy); empty if that lies outside."""
    y0, y1 = max(int(cy - radius), 0), min(int(cy + radius) + 2, size)
    x0, x1 = max(int(cx - radius), 0), min(int(cx + radius) + 2, size)
    ys = (np.arange(y0, y1, dtype=np.float32) + 0.5 - cy)[:, None]
    xs = (np.arange(x0, x1, dtype=np.float32) + 0.5 - cx)[None, :]
    c, s = math.cos(theta), math.sin(theta)
    return _Window(slice(y0, y1), slice(x0, x1), xs * c + ys * s, ys * c - xs * s)


def _blob(w: _Window, a: float, b: float, power: float, wobble: float, phase: float) -> np.ndarray:
    """A superellipse with half axes (a, b) whose outline wobbles a little."""
    un, vn = np.abs(w.u) / a, np.abs(w.v) / b
    radius = (un ** power + vn ** power) ** (1.0 / power)
    return radius <= 1.0 + wobble * np.sin(3.0 * np.arctan2(w.v / b, w.u / a) + phase)


def _shape(w: _Window, shape: str, scale: float) -> np.ndarray:
    """A head-like shape of the given scale centred in the window (the triangle points along u)."""
    u, v = w.u, w.v
    if shape == "disk":
        return u * u + v * v <= scale * scale
    if shape == "square":
        return np.maximum(np.abs(u), np.abs(v)) <= scale
    if shape == "triangle":
        half = 0.5 * scale
        return (-u <= half) & (0.5 * u + 0.866 * v <= half) & (0.5 * u - 0.866 * v <= half)
    arm = 0.35 * scale  # cross
    au, av = np.abs(u), np.abs(v)
    return ((au <= scale) & (av <= arm)) | ((av <= scale) & (au <= arm))


def _pattern(w: _Window, pattern: str, period: float) -> np.ndarray:
    """A texture in [-1, 1] in the shape's frame, so it turns with the shape."""
    k = 2.0 * math.pi / period
    if pattern == "along":
        return np.cos(k * w.v)
    if pattern == "across":
        return np.cos(k * w.u)
    if pattern == "diagonal":
        return np.cos(k * 0.7071 * (w.u + w.v))
    grid = np.cos(k * w.u) * np.cos(k * w.v)
    if pattern == "spots":
        return np.tanh(4.0 * (grid - 0.3))
    return np.sign(grid)  # checker


def _superellipse_area(a: float, b: float, power: float) -> float:
    return 4.0 * a * b * math.gamma(1 + 1 / power) ** 2 / math.gamma(1 + 2 / power)


# ---------------------------------------------------------------- colours and background

def _muted(rng: np.random.Generator, max_saturation: float = 0.2) -> np.ndarray:
    """A random desaturated colour: clutter never has the saturation of heads or bodies."""
    colour = rng.uniform(0, 255, 3)
    grey = rng.uniform(40, 215)
    return (grey + rng.uniform(0, max_saturation) * (colour - colour.mean())).astype(np.float32)


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Unit-variance noise smooth over ``size / cells`` pixels (bilinear upsampling)."""
    coarse = rng.standard_normal((cells, cells)).astype(np.float32)
    return np.asarray(Image.fromarray(coarse, mode="F").resize((size, size), Image.BILINEAR))


def _background(rng: np.random.Generator, size: int, contrast: float) -> np.ndarray:
    """A desaturated, textured background with clutter shapes (some head-like, some striped)."""
    grey = rng.uniform(80, 180) + 30 * _smooth_noise(rng, size, 4) + 12 * _smooth_noise(rng, size, 12)
    tint = np.stack([8 * _smooth_noise(rng, size, 6) for _ in range(3)], axis=-1)
    rgb = grey[..., None] + tint + rng.uniform(-8, 8, 3).astype(np.float32)
    for _ in range(int(rng.integers(10, 23))):
        kind = str(rng.choice(("blob", "bar") + HEAD_SHAPES))
        scale = size * rng.uniform(0.03, 0.09 if kind in HEAD_SHAPES else 0.2)
        w = _window(size, rng.uniform(0, size), rng.uniform(0, size), rng.uniform(0, 2 * math.pi), 1.5 * scale)
        if kind == "blob":
            mask = _blob(w, scale, scale * rng.uniform(0.3, 1.0), rng.uniform(2, 4), 0.1, rng.uniform(0, 6.3))
        elif kind == "bar":
            mask = (np.abs(w.u) <= scale) & (np.abs(w.v) <= rng.uniform(1.0, 3.0))
        else:
            mask = _shape(w, kind, scale)
        colour = np.broadcast_to(_muted(rng), mask.shape + (3,))
        if rng.random() < 0.4:
            texture = contrast * _pattern(w, str(rng.choice(PATTERNS)), rng.uniform(5.0, 7.5))
            colour = colour + texture[..., None]
        rgb[w.rows, w.cols][mask] = colour[mask]
    return rgb


# ---------------------------------------------------------------- objects

@dataclass
class _Placed:
    """One object's geometry: its class (-1 - class for a decoy), masks and how to paint them."""

    class_index: int
    look: ClassLook
    body: _Window
    body_mask: np.ndarray
    body_half_length: float
    head: _Window | None = None
    head_mask: np.ndarray | None = None


def _place(rng: np.random.Generator, size: int, class_index: int, look: ClassLook, length: float,
           show_head: bool, design: SceneDesign) -> _Placed:
    """Sample position, pose and shape of one object (its centre lies inside the image)."""
    a = 0.5 * length
    b = a * rng.uniform(0.5, 0.75)
    power = rng.uniform(2.0, 3.5)
    theta = rng.uniform(0, 2 * math.pi)
    cx, cy = rng.uniform(0.1, 0.9, 2) * size
    body = _window(size, cx, cy, theta, 1.15 * a)
    placed = _Placed(class_index, look, body, _blob(body, a, b, power, rng.uniform(0, 0.08), rng.uniform(0, 6.3)), a)
    if show_head:
        f = rng.uniform(*design.head_fraction)
        scale = math.sqrt(f / (1 - f) * _superellipse_area(a, b, power) / _SHAPE_AREA[look.head_shape])
        d = a - 0.25 * scale
        hx, hy = cx + d * math.cos(theta), cy + d * math.sin(theta)
        placed.head = _window(size, hx, hy, theta + rng.uniform(-0.35, 0.35), 1.3 * scale)
        placed.head_mask = _shape(placed.head, look.head_shape, scale)
    return placed


def _plan(rng: np.random.Generator, design: SceneDesign) -> list[tuple[int, bool]]:
    """The (class index, head shown) of each object, decoys as (class, False) with index -1 - class."""
    n_classes = 1 + int(rng.choice(len(design.class_mix), p=design.class_mix))
    chosen = rng.choice(NUM_CLASSES, n_classes, replace=False)
    plan = []
    for c in chosen:
        for _ in range(1 + int(rng.random() < design.second_instance_prob)):
            plan.append((int(c), bool(rng.random() >= design.hidden_head_prob)))
    if rng.random() < design.decoy_prob and n_classes < NUM_CLASSES:
        absent = np.setdiff1d(np.arange(NUM_CLASSES), chosen)
        plan.append((-1 - int(rng.choice(absent)), False))
    return [plan[i] for i in rng.permutation(len(plan))]  # random depth order


def _layout(rng: np.random.Generator, size: int, design: SceneDesign) -> tuple[list[_Placed], np.ndarray, np.ndarray]:
    """Place the planned objects, retrying until each labelled one is at least half visible.

    Returns the objects in depth order, the instance map (object k has id k + 1; decoys and
    background 0) and the part map.
    """
    plan = _plan(rng, design)
    shrink = len(plan) ** -0.25
    min_pixels = 0.002 * size * size  # 60 px at 176 px
    for _ in range(50):
        placed = [_place(rng, size, c, CLASS_LOOKS[c if c >= 0 else -1 - c],
                         size * rng.uniform(*design.body_length) * shrink, show_head, design)
                  for c, show_head in plan]
        inst, parts, full = _rasterise(placed, size)
        visible = np.bincount(inst.ravel(), minlength=len(placed) + 1)[1:]
        labelled = np.array([p.class_index >= 0 for p in placed], dtype=bool)
        if np.all(((visible >= 0.5 * full) & (visible >= min_pixels)) | ~labelled):
            break
    return placed, inst, parts


def _rasterise(placed: list[_Placed], size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Instance map, part map and each object's unoccluded pixel count, painting in depth order."""
    inst = np.zeros((size, size), dtype=np.int32)
    parts = np.zeros((size, size), dtype=np.uint8)
    full = np.zeros(len(placed), dtype=np.int64)
    for k, p in enumerate(placed):
        ident = k + 1 if p.class_index >= 0 else 0
        inst[p.body.rows, p.body.cols][p.body_mask] = ident
        parts[p.body.rows, p.body.cols][p.body_mask] = PART_BODY if ident else 0
        full[k] = p.body_mask.sum()
        if p.head_mask is not None:
            inst[p.head.rows, p.head.cols][p.head_mask] = ident
            parts[p.head.rows, p.head.cols][p.head_mask] = PART_HEAD if ident else 0
            full[k] += p.head_mask.sum()  # the overlap counts twice: a slightly stricter check
    return inst, parts, full


def _paint(rgb: np.ndarray, rng: np.random.Generator, p: _Placed, contrast: float) -> None:
    """Paint one object: shaded family-coloured body with its weak texture, then the bicolour head."""
    body = FAMILY_COLOURS[p.look.family] * rng.uniform(0.85, 1.15) + rng.normal(0, 6, 3).astype(np.float32)
    shade = 1.0 + 0.12 * rng.uniform(-1, 1) * np.clip(p.body.u / p.body_half_length, -1, 1)
    texture = contrast * _pattern(p.body, p.look.pattern, rng.uniform(5.0, 7.0))
    colour = body * shade[..., None] + texture[..., None]
    rgb[p.body.rows, p.body.cols][p.body_mask] = colour[p.body_mask]
    if p.head_mask is not None:  # two halves, split along the body axis, in a random order
        first, second = HEAD_COLOURS[list(rng.permutation(p.look.head_colours))]
        jitter = rng.normal(0, 10, 3).astype(np.float32)
        head = np.where((p.head.v < 0)[..., None], first, second) + jitter
        rgb[p.head.rows, p.head.cols][p.head_mask] = head[p.head_mask]


def _border_band(inst: np.ndarray, width: int) -> np.ndarray:
    """Pixels within ``width`` of an outline between two instances or an instance and background."""
    if width == 0:
        return np.zeros(inst.shape, dtype=bool)
    k = 2 * width + 1
    return ndimage.maximum_filter(inst, size=k) != ndimage.minimum_filter(inst, size=k)


def render_scene(rng: np.random.Generator, size: int = 176, design: SceneDesign | None = None) -> Scene:
    """Render one image with its class and part masks and its labelled objects."""
    design = design or SceneDesign()
    rgb = _background(rng, size, design.body_contrast)
    placed, inst, parts = _layout(rng, size, design)
    for p in placed:
        _paint(rgb, rng, p, design.body_contrast)
    noise = rng.standard_normal(rgb.shape, dtype=np.float32)
    rgb = rgb * rng.uniform(0.85, 1.15) + rng.uniform(-10, 10, 3).astype(np.float32) + 3.0 * noise
    image = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)

    lut = np.array([0] + [max(p.class_index + 1, 0) for p in placed], dtype=np.uint8)
    classes = lut[inst]
    band = _border_band(inst, design.border_width)
    classes[band] = IGNORE_INDEX
    parts[band] = IGNORE_INDEX
    objects = []
    for k, p in enumerate(placed):
        ys, xs = np.nonzero((inst == k + 1) & ~band)
        if p.class_index < 0 or ys.size == 0:
            continue
        box = (int(xs.min()) + 1, int(ys.min()) + 1, int(xs.max()) + 1, int(ys.max()) + 1)
        truncated = bool(np.any(inst[[0, -1], :] == k + 1) or np.any(inst[:, [0, -1]] == k + 1))
        objects.append(SceneObject(p.class_index, box, truncated))
    return Scene(image, classes, parts, objects)
