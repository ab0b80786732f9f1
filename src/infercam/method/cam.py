"""Multi-scale, flipped CAM passes and the normalised class activation map.

A *pyramid* is the image resized (PIL bicubic, Python ``round`` for the sizes) to every scale and
normalised. Each level is run twice through ``forward_cam``: as is and horizontally flipped. The 2S
maps are upsampled (bilinear, align_corners=False) to the output size, the flipped ones un-flipped,
summed, restricted to the labelled classes and divided by each class's maximum + 1e-5.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..data.images import MIN_SIDE
from ..errors import ConfigError, ImageError, InferCamError, check_class_range
from .split import CORNERS

DEFAULT_SCALES: tuple[float, ...] = (1.0, 0.5, 1.5, 2.0)
NORM_EPS = 1e-5
MAX_SCALE = 16.0  # a larger scale of a VOC-sized image needs tens of GB per pass


def scaled_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """(h, w) of a side-scaled image: Python's round (half to even), at least 1 px."""
    return max(1, round(height * scale)), max(1, round(width * scale))


def check_scales(scales: Sequence[float]) -> tuple[float, ...]:
    """Validate a scale list: a non-empty sequence, every scale a positive finite number (a ConfigError)."""
    usage = f"`scales` must be a sequence of numbers, e.g. (1.0, 0.5, 1.5, 2.0), got {scales!r}"
    if isinstance(scales, (str, bytes)) or not isinstance(scales, Iterable):
        raise ConfigError(usage)
    try:
        values = list(scales)
        if any(isinstance(s, (str, bytes, bool, np.bool_)) for s in values):
            raise TypeError(usage)
        scales = tuple(float(s) for s in values)
    except (TypeError, ValueError, RuntimeError):
        raise ConfigError(usage) from None
    if not scales:
        raise ConfigError("no scales given: at least one scale is needed, e.g. 1.0,0.5,1.5,2.0")
    bad = [s for s in scales if not (np.isfinite(s) and 0 < s <= MAX_SCALE)]
    if bad:
        raise ConfigError(f"invalid scales {bad}: every scale must be a positive number, at most {MAX_SCALE:g}")
    return scales


def check_scaled_sizes(height: int, width: int, scales: Sequence[float]) -> None:
    """An ImageError when a scale makes the image's shorter side smaller than the networks' output stride
    (``MIN_SIDE``): that level's CAM would be a single cell, a constant that localises nothing (all zero for
    ``--scales 0.01`` on a VOC image)."""
    for scale in scales:
        h, w = scaled_size(height, width, scale)
        if min(h, w) < MIN_SIDE:
            raise ImageError(f"scale {scale:g} makes this {width}x{height} image {w}x{h} px, under the networks' "
                             f"minimum input of {MIN_SIDE} px (their output stride): leave the scale out or use a "
                             "larger one")


def check_patch_scales(height: int, width: int, scales: Sequence[float], index: int, image: tuple[int, int]) -> None:
    """An ImageError when every scale makes corner patch ``index`` (0-3, height x width, of an ``image`` of height x
    width) shorter than ``MIN_SIDE``: each level's CAM would be a single cell, so the patch's map is a constant. A
    corner patch can be so even when the whole image passed :func:`check_scaled_sizes` (an 11 px patch at a centre
    near the corner, at scale 0.5). A patch with at least one usable scale runs as the published method runs it:
    its smaller levels add a near-constant to its map, and refusing them would fail ordinary images whose centre
    lies within a few pixels of an edge."""
    scale = max(scales)  # the patch's largest level: if it is too small, every level is
    h, w = scaled_size(height, width, scale)
    if min(h, w) < MIN_SIDE:
        raise ImageError(f"every scale makes patch {index + 1} ({CORNERS[index]}, {width}x{height} px) of this "
                         f"{image[1]}x{image[0]} image under the networks' minimum input of {MIN_SIDE} px (their "
                         f"output stride; scale {scale:g} makes it {w}x{h} px): its map would be a constant: add a "
                         "larger scale")


def check_normalization(mean: Sequence[float], std: Sequence[float]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Validate an input normalisation on pixel/255: three means in 0..1 and three standard deviations in (0, 1]
    (RGB)."""
    try:
        mean, std = tuple(float(m) for m in mean), tuple(float(v) for v in std)
    except (TypeError, ValueError):
        raise InferCamError(f"mean and std must be three numbers each (RGB), got {mean!r} and {std!r}") from None
    if len(mean) != 3 or len(std) != 3:
        raise InferCamError(f"mean and std must be three numbers each (RGB), got {len(mean)} and {len(std)}")
    if not all(np.isfinite(mean)) or not all(np.isfinite(v) and v > 0 for v in std):
        raise InferCamError(f"invalid normalisation mean {mean} / std {std}: means must be finite, "
                            "standard deviations positive")
    if not all(0.0 <= m <= 1.0 for m in mean) or max(std) > 1.0:
        raise InferCamError(f"normalisation mean {mean} / std {std} is not on the pixel/255 scale (0..1), which "
                            "mean and std apply to: divide 0..255 values by 255")
    return mean, std


def normalization_table(mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """3 x 256 float32: (v/255 - mean)/std for every byte value, computed in float64 as psa does."""
    values = np.arange(256, dtype=np.float64)[None, :] / 255.0
    return ((values - np.asarray(mean, np.float64)[:, None]) / np.asarray(std, np.float64)[:, None]).astype(np.float32)


def normalize_image(image: np.ndarray, mean: Sequence[float], std: Sequence[float],
                    table: np.ndarray | None = None) -> torch.Tensor:
    """H x W x 3 uint8 -> 3 x H x W float32 (pixel/255 - mean)/std, by table look-up (psa's exact values)."""
    table = normalization_table(mean, std) if table is None else table
    return torch.from_numpy(np.stack([table[c][image[..., c]] for c in range(3)]))


def image_pyramid(image: np.ndarray, scales: Sequence[float], mean: Sequence[float],
                  std: Sequence[float]) -> list[torch.Tensor]:
    """The normalised inputs of every scale (3 x h_s x w_s each), resized with PIL bicubic."""
    height, width = image.shape[:2]
    pil = Image.fromarray(image)
    table = normalization_table(mean, std)
    levels = []
    for s in scales:
        h, w = scaled_size(height, width, s)
        resized = image if (h, w) == (height, width) else np.asarray(pil.resize((w, h), resample=Image.BICUBIC))
        levels.append(normalize_image(resized, mean, std, table))
    return levels


def erase(x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Replace the pixels of ``x`` (3 x h x w) where ``keep`` is False with x's per-channel mean."""
    mean = x.mean(dim=(1, 2), keepdim=True)
    return torch.where(keep, x, mean)


def resize_mask(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest-neighbour resize of a boolean h x w mask (torch's default 'nearest')."""
    if tuple(mask.shape) == tuple(size):
        return mask
    return F.interpolate(mask[None, None].float(), size=size, mode="nearest")[0, 0] > 0.5


def pass_keep_masks(keep: torch.Tensor, sizes: Sequence[tuple[int, int]], reference: bool) -> list[torch.Tensor]:
    """Keep-masks of the 2S passes (scale s, then its flip, for each level), from the patch's mask.

    Default: each level's mask is resized from the full-resolution one and flipped with its input.
    ``reference`` reproduces the authors' code: each pass's mask is resized from the previous pass's
    resized mask (1.0, 1.0-flip, 0.5, ...), and flipped passes get the mask un-flipped.
    """
    masks = []
    current = keep
    for size in sizes:
        if reference:
            current = resize_mask(current, size)
            masks += [current, current]
        else:
            level = resize_mask(keep, size)
            masks += [level, level.flip(-1)]
    return masks


@dataclass
class CamJob:
    """One multi-scale CAM to compute: a pyramid, the output size, and optional per-pass keep-masks."""

    pyramid: Sequence[torch.Tensor]
    out_size: tuple[int, int]
    keep: Sequence[torch.Tensor] | None = None

    def inputs(self) -> list[torch.Tensor]:
        """The 2S pass inputs: each level and its horizontal flip, erased where not kept."""
        out = []
        for i, level in enumerate(self.pyramid):
            for j, x in enumerate((level, level.flip(-1))):
                out.append(x if self.keep is None else erase(x, self.keep[2 * i + j]))
        return out


class MultiScaleCam:
    """Computes normalised multi-scale CAMs with a network's ``forward_cam``, batching passes that share a size."""

    def __init__(self, forward: Callable[[torch.Tensor], torch.Tensor], scales: Sequence[float],
                 mean: Sequence[float], std: Sequence[float], device: torch.device, batch_size: int = 8) -> None:
        self.forward = forward
        self.scales = check_scales(scales)
        self.mean, self.std = check_normalization(mean, std)
        self.device = device
        self.batch_size = max(1, int(batch_size))
        self.forward_passes = 0  # inputs run through the network, and their pixels (for cost reports)
        self.input_pixels = 0

    def cpu_pyramid(self, image: np.ndarray) -> list[torch.Tensor]:
        """The image's normalised pyramid on the CPU (no model involved: safe to build in another thread)."""
        return image_pyramid(image, self.scales, self.mean, self.std)

    def to_device(self, levels: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Pyramid levels on the compute device."""
        return [t.to(self.device) for t in levels]

    def pyramid(self, image: np.ndarray) -> list[torch.Tensor]:
        """The image's normalised pyramid on the compute device."""
        return self.to_device(self.cpu_pyramid(image))

    def _forward(self, inputs: list[torch.Tensor], classes: list[int]) -> list[torch.Tensor]:
        """forward_cam of every input (grouped by size into batches), the labelled channels only."""
        outputs: list[torch.Tensor | None] = [None] * len(inputs)
        groups: dict[tuple[int, int], list[int]] = {}
        for idx, x in enumerate(inputs):
            groups.setdefault(tuple(x.shape[-2:]), []).append(idx)
        for members in groups.values():
            for start in range(0, len(members), self.batch_size):
                chunk = members[start:start + self.batch_size]
                batch = torch.stack([inputs[i] for i in chunk])
                if getattr(self.forward, "takes_classes", False):  # e.g. Grad-CAM: only the labelled classes
                    cams = check_maps(self.forward(batch, classes), len(chunk)).float()
                else:
                    cams = check_maps(self.forward(batch), len(chunk))
                    check_class_range(classes, cams.shape[1])
                    cams = cams[:, classes].float()  # reduced-precision maps: fp32 from here on
                self.forward_passes += len(chunk)
                self.input_pixels += len(chunk) * inputs[chunk[0]].shape[-2] * inputs[chunk[0]].shape[-1]
                for i, cam in zip(chunk, cams):
                    outputs[i] = cam
        return outputs  # type: ignore[return-value]

    def compute_raw(self, jobs: Sequence[CamJob], classes: Sequence[int]) -> list[torch.Tensor]:
        """Summed, unnormalised multi-scale CAMs (L x H x W, one channel per class in ``classes``) of every job."""
        classes = list(classes)
        flat: list[torch.Tensor] = []
        for job in jobs:
            flat += job.inputs()
        outputs = self._forward(flat, classes)
        per_job = 2 * len(self.scales)
        results = [summed_passes(outputs[j * per_job:(j + 1) * per_job], job.out_size) for j, job in enumerate(jobs)]
        if results:
            check_values(outputs, results)
        return results

    def compute(self, jobs: Sequence[CamJob], classes: Sequence[int]) -> list[torch.Tensor]:
        """Normalised CAMs (L x H x W, one channel per class in ``classes``) of every job."""
        return [normalize_cam(total) for total in self.compute_raw(jobs, classes)]


def summed_passes(outputs: Sequence[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
    """One multi-scale CAM from its passes' maps (each level's plain pass, then its flipped one): upsampling is linear
    and mirror-symmetric, so each flipped map is un-flipped and added to its plain one first, upsampled once to
    ``size`` (bilinear) and summed over the levels."""
    total = None
    for plain, flipped in zip(outputs[0::2], outputs[1::2]):
        up = F.interpolate((plain + flipped.flip(-1))[None], size=size, mode="bilinear", align_corners=False)[0]
        total = up if total is None else total + up
    return total


def check_values(outputs: Sequence[torch.Tensor], results: Sequence[torch.Tensor]) -> None:
    """An InferCamError if a pass's maps are negative (a CAM head without its ReLU: normalising by the peak would
    then turn the map upside down without a word) or a summed map holds NaN or infinite values; one sync per call."""
    finite = torch.stack([r.isfinite().all() for r in results]).all().float()
    lowest = torch.stack([o.amin() for o in outputs]).min().float()
    finite, lowest = torch.stack([finite, lowest]).tolist()
    if not finite:
        raise InferCamError("forward_cam returned NaN or infinite values (with precision fp16 an overflow: "
                            "use bf16 or fp32)")
    if lowest < 0:
        raise InferCamError(f"forward_cam returned negative values (the lowest {lowest:.4g}): class maps must be "
                            "non-negative, as psa's and IRN's are after their ReLU; apply F.relu as forward_cam's "
                            "last step (after any resizing, which can undershoot)")


def check_maps(maps: object, count: int) -> torch.Tensor:
    """``maps`` if it is what ``forward_cam`` must return for a batch of ``count`` inputs, an (N, C, h, w) tensor,
    else an InferCamError saying what it returned (not a shape error deep in the upsampling)."""
    if not isinstance(maps, torch.Tensor) or maps.dim() != 4:
        got = f"a tensor of shape {tuple(maps.shape)}" if isinstance(maps, torch.Tensor) else f"a {type(maps).__name__}"
        raise InferCamError(f"forward_cam must return an (N, C, h, w) tensor of class maps; it returned {got}")
    if maps.shape[0] != count:
        raise InferCamError(f"forward_cam returned maps of {maps.shape[0]} input(s) for a batch of {count}")
    return maps


def normalize_cam(cam: torch.Tensor) -> torch.Tensor:
    """Divide each class map (L x H x W) by its maximum + 1e-5."""
    return cam / (cam.amax(dim=(-2, -1), keepdim=True) + NORM_EPS)
