"""InferCam: baseline CAM -> split (the mode's cut: corner patches, or the whole image) -> class-conditional
erasing rounds per patch -> merge.

    from infercam import InferCam
    engine = InferCam(model, mode="default")
    result = engine(image, labels)   # image: H x W x 3 uint8 RGB (or a PIL Image); labels: class indices
    result.cams[14]                  # refined H x W float32 map of class 14

``engine.prepare(image)`` builds the image's input pyramid (CPU work, no model) ahead of time, e.g. in a
loader thread; ``engine(...)``, ``baseline`` and ``split`` take the :class:`Prepared` in place of the image,
with identical results.
"""
from __future__ import annotations

import contextlib
import platform
from numbers import Integral, Real
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..data.images import check_image
from ..errors import ConfigError, InferCamError, LabelError
from ..models.registry import normalization
from .cam import (DEFAULT_SCALES, CamJob, MultiScaleCam, check_normalization, check_patch_scales, check_scaled_sizes,
                  check_scales, normalize_cam)
from .forward import CamForward, check_precision
from .modes import MODES, Recipe, recipe
from .refine import PatchState, RefineConfig, refine
from .split import DEFAULT_MARGINS, Box, corner_boxes, mass_center, patch_boxes


@dataclass
class InferCamResult:
    """Refined and baseline maps of one image, with the geometry that produced them."""

    cams: dict[int, np.ndarray]
    baseline: dict[int, np.ndarray]
    boxes: list[Box]
    centers: list[tuple[int, int]] = field(default_factory=list)
    rounds: list[int] = field(default_factory=list)  # rounds run per distinct patch, round 0 included


@dataclass(frozen=True)
class Prepared:
    """A checked image and its baseline input pyramid on the CPU (:meth:`InferCam.prepare`)."""

    image: np.ndarray
    pyramid: list[torch.Tensor]
    recipe: tuple  # the (scales, mean, std) it was built with


DEVICE_HELP = "use cpu, cuda, cuda:N or mps"


def resolve_device(device: str | torch.device) -> torch.device:
    """A torch device that exists on this machine, or a clear error."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise InferCamError(f"unknown device {device!r}: {DEVICE_HELP}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InferCamError(f"device {device!r} requested but CUDA is not available on this machine")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InferCamError(f"device {device!r} does not exist: {torch.cuda.device_count()} CUDA device(s) here")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise InferCamError(f"device {device!r} requested but MPS is not available")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise InferCamError(f"unsupported device {device!r}: {DEVICE_HELP}")
    return dev


def describe_device(device: str | torch.device) -> dict[str, str]:
    """The device a run asked for, the one it uses (``cuda`` -> ``cuda:<current>``) and its name (for manifests)."""
    dev = resolve_device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", torch.cuda.current_device() if dev.index is None else dev.index)
        name = torch.cuda.get_device_name(dev)
    else:
        name = platform.processor() or platform.machine()
    return {"requested": str(device), "used": str(dev), "name": name}


@contextlib.contextmanager
def evaluating(model: nn.Module):
    """``model`` in eval mode for the block, each module's own mode restored after it: a training loop may show
    CAMs of its model between steps without BatchNorm using batch statistics (other maps) or updating its running
    statistics, and its modes (a BatchNorm it froze) stay as it set them."""
    modes = [(module, module.training) for module in model.modules()]
    if not any(training for _, training in modes):
        yield
        return
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


def _is_index(value: object) -> bool:
    """An integer (not a bool), or a float with a whole value."""
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, (float, np.floating)):
        return float(value).is_integer()
    return isinstance(value, (int, np.integer))


def check_labels(labels: Iterable[int]) -> list[int]:
    """Sorted distinct class indices; an empty set is an error (there is nothing to localise). A 0/1 (multi-hot)
    vector or non-integer values are refused, not read as indices."""
    if isinstance(labels, torch.Tensor):  # on any device, with or without grad (numpy reads CPU tensors only)
        labels = labels.detach().cpu().numpy()
    if isinstance(labels, (set, frozenset)):
        values = list(labels)
    else:
        array = np.asarray(labels)  # a list, tuple, numpy array, tensor or a single index
        zero_one = array.ndim == 1 and np.isin(array, (0, 1)).all()
        # floats or booleans of 0/1, or integers 0/1 with repeats (indices never repeat): a multi-hot vector
        if zero_one and (array.dtype.kind in "fb" and array.size > 1 or array.dtype.kind in "iu" and array.size > 2):
            raise LabelError(f"labels look like a 0/1 vector of {array.size} entries, not class indices: "
                             "give np.flatnonzero(vector)")
        try:
            values = list(labels) if array.dtype == object else array.reshape(-1).tolist()
        except TypeError:  # None, or another object that is not a collection of indices
            raise LabelError(f"labels must be class indices (integers), got {labels!r}") from None
    bad = [c for c in values if not _is_index(c)]
    if bad and isinstance(bad[0], str):
        raise LabelError(f"labels must be class indices (integers), got {bad[0]!r}: class names are not taken: give "
                         f"the class index (a VOC network's: infercam.classes.VOC_CLASSES.index({bad[0]!r}))")
    if bad:
        raise LabelError(f"labels must be class indices (integers), got {bad[0]!r}")
    classes = sorted({int(c) for c in values})
    if not classes:
        raise LabelError("the image has no labelled class: nothing to localise")
    if classes[0] < 0:
        raise LabelError(f"class index {classes[0]} is negative")
    return classes


class InferCam:
    """Class-conditional CAM inference with any network that has ``forward_cam``.

    ``mode`` picks the recipe of rules (:mod:`infercam.method.modes`, README "Modes"): ``"default"`` whole-image rounds
    that count only near what is already covered (no spill into the scene, no seams), ``"evidence"`` the default
    plus a stop for a class once the erased image's peak for it falls below half of round 0's, ``"fixed"`` the
    published method with its code's three quirks fixed, ``"reference"`` the authors' code, quirks included (README
    "Modes" lists where it does not crash or misbehave as that code does).
    Speed options (:mod:`infercam.method.forward`, docs/speed.md): ``precision`` "fp32" (default, exact), "bf16" or
    "fp16" (autocast around forward_cam only), ``compile`` (torch.compile, done here), ``channels_last`` (the
    model is converted in place, as it is moved to ``device``). ``mean`` / ``std``: the input normalisation on
    pixel/255 (default: the network's ``mean`` / ``std`` attributes, else ImageNet's).
    Inputs of ``engine(image, labels)`` (and ``baseline``, ``split``, ``prepare``): ``image`` an H x W x 3 uint8 RGB
    array (any strides) or tensor (any device), or a PIL Image of any mode (converted to RGB as image files are:
    grayscale and palette expanded, alpha dropped); floats, C x H x W, batches, grayscale and RGBA arrays are
    refused with the conversion to make. ``labels`` class indices: a list, tuple, set, numpy array or tensor
    (duplicates and whole floats are fine; empty, negative, out-of-range, 0/1 vectors and names are refused).
    The result holds ``cams`` and ``baseline`` ({class: H x W float32}), the four patch ``boxes`` (top-left,
    top-right, bottom-left, bottom-right; the whole image four times where the mode does not cut), their
    ``centers`` and ``rounds`` (per distinct patch, round 0 included).
    Options are checked before the model is touched: a value out of range (``erase_threshold`` in (0, 1],
    ``stop_fraction`` in 0..1, ``max_rounds`` and ``batch_size`` whole numbers >= 1, ``margins`` two whole numbers
    >= 0, ``scales`` positive numbers) is a :class:`~infercam.errors.ConfigError` naming it.
    The engine uses ``model`` itself, not a copy: it is put in eval mode and moved to ``device`` in place. A model
    set back to train mode (a training loop showing its CAMs) is run in eval mode by each call, and left in the
    modes it had: BatchNorm uses and keeps its running statistics, so the maps do not depend on the mode.
    """

    def __init__(self, model: nn.Module, mode: str | Recipe = "default", scales: Sequence[float] = DEFAULT_SCALES,
                 device: str | torch.device = "cpu", mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None, *, erase_threshold: float = 0.7,
                 stop_fraction: float | None = None, max_rounds: int = 5,
                 margins: tuple[int, int] = DEFAULT_MARGINS, batch_size: int = 8, precision: str = "fp32",
                 compile: bool = False, channels_last: bool = False) -> None:
        if not isinstance(mode, Recipe) and mode not in MODES:
            raise InferCamError(f"unknown mode {mode!r}: use one of {', '.join(MODES)}")
        if not hasattr(model, "forward_cam"):
            raise InferCamError(_no_forward_cam(model))
        if not isinstance(model, nn.Module):
            raise InferCamError(f"{type(model).__name__} is not a torch.nn.Module: InferCam runs a network, an "
                                "nn.Module with forward_cam(x) -> (N, C, h, w) class maps (docs/networks.md)")
        # every option is checked before the model is touched (moved, put in eval mode): a refusal leaves it as it was
        # 0 would count every pixel as covered (a map is >= 0): each round would erase the whole image
        erase_threshold = _fraction("erase_threshold", erase_threshold, zero=False)
        stop_fraction = None if stop_fraction is None else _fraction("stop_fraction", stop_fraction)
        max_rounds, batch_size = _whole("max_rounds", max_rounds, 1), _whole("batch_size", batch_size, 1)
        margins = _margins(margins)
        scales = check_scales(scales)
        default_mean, default_std = normalization(model)
        mean, std = check_normalization(default_mean if mean is None else mean, default_std if std is None else std)
        self.device = resolve_device(device)
        check_precision(precision, self.device)
        self.model = model.to(self.device).eval()
        self.mode = mode if isinstance(mode, str) else mode.name
        self.margins = margins
        self.recipe = recipe(mode)
        self.config = RefineConfig(erase_threshold, self.recipe.stop_fraction if stop_fraction is None else stop_fraction,
                                   max_rounds)
        forward = CamForward(self.model, self.device, precision, compile, channels_last)
        self.cams = MultiScaleCam(forward, scales, mean, std, self.device, batch_size)

    @property
    def scales(self) -> tuple[float, ...]:
        return self.cams.scales

    def prepare(self, image: np.ndarray | Image.Image) -> Prepared:
        """The checked image (a copy: the caller may reuse its buffer) and its baseline input pyramid, built on the
        CPU without the model (thread-safe)."""
        image = check_image(image).copy()
        check_scaled_sizes(*image.shape[:2], self.cams.scales)
        return Prepared(image, self.cams.cpu_pyramid(image), self._recipe())

    def baseline(self, image: np.ndarray | Image.Image | Prepared, labels: Iterable[int]) -> dict[int, np.ndarray]:
        """The baseline multi-scale CAM only (step 1 of the method)."""
        prepared, classes = self._prepared(image), check_labels(labels)
        with torch.inference_mode(), evaluating(self.model):
            cam = normalize_cam(self._baseline(prepared, classes)[1])
        return _to_dict(classes, cam.cpu().numpy())

    def split(self, image: np.ndarray | Image.Image | Prepared, labels: Iterable[int]) -> InferCamResult:
        """Baseline CAM, centres of mass and the four patch boxes, without refinement (``cams`` empty)."""
        prepared, classes = self._prepared(image), check_labels(labels)
        with torch.inference_mode(), evaluating(self.model):
            _, raw, base, centers, boxes = self._split(prepared, classes)
        return InferCamResult(cams={}, baseline=_to_dict(classes, base.cpu().numpy()), boxes=boxes, centers=centers)

    def __call__(self, image: np.ndarray | Image.Image | Prepared, labels: Iterable[int]) -> InferCamResult:
        """Refined CAMs of one image (H x W x 3 uint8 RGB, or a PIL Image) for its labelled classes (indices)."""
        prepared, classes = self._prepared(image), check_labels(labels)
        image = prepared.image
        height, width = image.shape[:2]
        with torch.inference_mode(), evaluating(self.model):
            pyramid, raw, base, centers, boxes = self._split(prepared, classes)
            whole = Box(0, 0, height, width)
            self._check_patches([(b.height, b.width) for b in boxes], (height, width))
            states: dict[Box, PatchState] = {}
            for box in boxes:  # identical boxes (e.g. 3+ classes: the whole image) are run once
                if box in states:
                    continue
                if box == whole:  # round 0 of the whole image is the baseline
                    states[box] = PatchState(pyramid, (height, width))
                    states[box].update(raw, self.recipe, self.config)
                else:
                    rows, cols = box.slices()
                    states[box] = PatchState(self.cams.pyramid(image[rows, cols]), (box.height, box.width))
            refine(self.cams, list(states.values()), classes, self.recipe, self.config)
            maps = [(box, s.maxima.cpu().numpy()) for box, s in states.items()]
        refined = self.recipe.merge(maps, (len(classes), height, width))
        return InferCamResult(
            cams=_to_dict(classes, refined),
            baseline=_to_dict(classes, base.cpu().numpy()),
            boxes=boxes,
            centers=centers,
            rounds=[s.rounds for s in states.values()],
        )

    def refine_patches(self, shape: tuple[int, int], patches: Sequence[np.ndarray],
                       labels: Iterable[int]) -> InferCamResult:
        """Refined CAMs from four pre-cut corner patches (the authors' split files), placed by size."""
        classes = check_labels(labels)
        if len(patches) != 4:
            raise InferCamError(f"expected 4 patches (top-left, top-right, bottom-left, bottom-right), got {len(patches)}")
        patches = [check_image(p) for p in patches]
        try:
            boxes = corner_boxes([p.shape[:2] for p in patches], *shape)
        except ValueError as exc:
            raise InferCamError(str(exc)) from None
        self._check_patches([p.shape[:2] for p in patches], tuple(shape))
        with torch.inference_mode(), evaluating(self.model):
            states = [PatchState(self.cams.pyramid(p), p.shape[:2]) for p in patches]
            refine(self.cams, states, classes, self.recipe, self.config)
            maps = [(box, s.maxima.cpu().numpy()) for box, s in zip(boxes, states)]
        refined = self.recipe.merge(maps, (len(classes), *shape))
        return InferCamResult(cams=_to_dict(classes, refined), baseline={}, boxes=boxes,
                              rounds=[s.rounds for s in states])

    def _check_patches(self, sizes: Sequence[tuple[int, int]], shape: tuple[int, int]) -> None:
        """Refuse a patch that every scale makes smaller than the networks' stride, unless the mode runs it (the
        whole image, four times for three classes, passed :meth:`prepare`'s check)."""
        if self.recipe.checks_patches:
            for k, (h, w) in enumerate(sizes):
                check_patch_scales(h, w, self.cams.scales, k, shape)

    def _recipe(self) -> tuple:
        return self.cams.scales, self.cams.mean, self.cams.std

    def _prepared(self, image: np.ndarray | Image.Image | Prepared) -> Prepared:
        """``image`` prepared now, or as prepared earlier by an engine with the same scales and normalisation."""
        if not isinstance(image, Prepared):
            return self.prepare(image)
        if image.recipe != self._recipe():
            raise InferCamError("the image was prepared by an engine with other scales or mean/std: "
                                "prepare it with this engine")
        return image

    def _baseline(self, prepared: Prepared, classes: list[int]) -> tuple[list[torch.Tensor], torch.Tensor]:
        """(pyramid on the device, raw summed baseline CAM L x H x W) of a prepared image."""
        pyramid = self.cams.to_device(prepared.pyramid)
        return pyramid, self.cams.compute_raw([CamJob(pyramid, prepared.image.shape[:2])], classes)[0]

    def _split(self, prepared: Prepared, classes: list[int]):
        """(pyramid, raw baseline, normalised baseline L x H x W, centres, boxes) of a prepared image."""
        pyramid, raw = self._baseline(prepared, classes)
        base = normalize_cam(raw)
        base_np = base.cpu().numpy()
        centers = [mass_center(base_np[i]) for i in range(len(classes))]
        boxes = patch_boxes(centers, *prepared.image.shape[:2], self.recipe, self.margins)
        return pyramid, raw, base, centers, boxes


def _no_forward_cam(model: object) -> str:
    """The error of a model without forward_cam, with the way to get one."""
    text = f"{type(model).__name__} has no forward_cam(x) method: InferCam needs (N, C, h, w) class maps, not logits"
    hint = ""
    if isinstance(model, nn.Module):
        from ..models.torchvision_cam import forward_cam_hint

        hint = forward_cam_hint(model)
    return f"{text}: " + (hint or "give the network a forward_cam (docs/networks.md, \"Plug-ins\"), or wrap a "
                          "classifier with Grad-CAM: infercam.method.gradcam.GradCam(model, target_layer=...) "
                          "(docs/networks.md, \"Grad-CAM\")")


def _whole(name: str, value: object, low: int) -> int:
    """``value`` as an int, or a ConfigError naming ``name`` unless it is an integer (not a bool) >= ``low``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Integral) or value < low:
        raise ConfigError(f"`{name}` must be a whole number >= {low}, got {value!r}")
    return int(value)


def _fraction(name: str, value: object, zero: bool = True) -> float:
    """``value`` as a float, or a ConfigError naming ``name`` unless it is a number from 0 (above 0 unless
    ``zero``) to 1 (as the command line's options take it)."""
    number = not isinstance(value, (bool, np.bool_)) and isinstance(value, Real)
    if not number or not 0.0 <= float(value) <= 1.0 or not zero and float(value) == 0.0:
        bounds = "from 0 to 1" if zero else "above 0 and at most 1"
        raise ConfigError(f"`{name}` must be a number {bounds}, got {value!r}")
    return float(value)


def _margins(margins: object) -> tuple[int, int]:
    """The split's margins (one class, two classes) as two ints >= 0, or a ConfigError."""
    usage = (f"`margins` must be two whole numbers >= 0 (one class, two classes; default {DEFAULT_MARGINS}), "
             f"got {margins!r}")
    if isinstance(margins, (str, bytes)) or not isinstance(margins, Iterable):
        raise ConfigError(usage)
    values = tuple(margins)
    if len(values) != 2 or any(isinstance(v, (bool, np.bool_)) or not isinstance(v, Integral) or v < 0 for v in values):
        raise ConfigError(usage)
    return int(values[0]), int(values[1])


def _to_dict(classes: Sequence[int], maps: np.ndarray) -> dict[int, np.ndarray]:
    return {c: np.ascontiguousarray(maps[i], dtype=np.float32) for i, c in enumerate(classes)}
