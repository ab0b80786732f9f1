"""Decode image files into H x W x 3 uint8 RGB arrays, with clear errors for files that cannot be used.

One decode serves both the CAM and the patches (the authors' code decoded twice, with two libraries).
EXIF orientation is NOT applied: PASCAL VOC's ground truth masks are aligned with the stored pixel
grid, as psa's PIL decode reads it. Size limits (:class:`SizeLimits`) are checked from the file's
header, before decoding.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..errors import ImageError

# Decompression-bomb guard: PIL warns from ~89 Mpx; refuse clearly instead.
MAX_PIXELS = 16384 * 16384
MIN_SIDE = 8  # the networks' output stride: a shorter side gives a CAM of a single cell
DEFAULT_MAX_SIDE = 1280  # worst case (a square image, psa's ResNet-38, default scales, CPU) about 17 GB: BENCHMARKS.md, "Memory"


@dataclass(frozen=True)
class SizeLimits:
    """The image sizes a computation accepts: shorter side >= ``min_side``, longer side <= ``max_side``."""

    min_side: int = 1
    max_side: int | None = None

    def check(self, width: int, height: int, path: str) -> None:
        """Raise :class:`ImageError` naming the size if ``width`` x ``height`` is outside the limits."""
        if min(width, height) < self.min_side:
            raise ImageError(f"image too small ({width}x{height} px): the shorter side is under the minimum of "
                             f"{self.min_side} px: {path}")
        if self.max_side is not None and max(width, height) > self.max_side:
            raise ImageError(f"image too large ({width}x{height} px): the longer side is over the limit of "
                             f"{self.max_side} px (--max-side; downscale the image or raise the limit): {path}")


def to_rgb_array(img: Image.Image) -> np.ndarray:
    """Convert any PIL mode to H x W x 3 uint8 RGB (16-bit is scaled to 8-bit, alpha is dropped)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.int64)
        peak = 65535 if arr.max(initial=0) > 255 or img.mode.startswith("I;16") else 255
        arr8 = np.clip(np.round(arr * (255.0 / peak)), 0, 255).astype(np.uint8)
        return np.repeat(arr8[:, :, None], 3, axis=2)
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        arr8 = np.clip(np.round(arr), 0, 255).astype(np.uint8)
        return np.repeat(arr8[:, :, None], 3, axis=2)
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img, dtype=np.uint8).copy()


def load_image(path: str | os.PathLike, limits: SizeLimits = SizeLimits()) -> np.ndarray:
    """Read an image file as H x W x 3 uint8 RGB; raise :class:`ImageError` saying what is wrong."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ImageError(f"image not found: {path}")
    if os.path.isdir(path):
        raise ImageError(f"image path is a folder: {path}")
    if os.path.getsize(path) == 0:
        raise ImageError(f"image file is empty (0 bytes): {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                if img.width * img.height > MAX_PIXELS:
                    raise ImageError(f"image too large ({img.width}x{img.height} px): {path}")
                limits.check(img.width, img.height, path)
                img.load()
                return to_rgb_array(img)
    except ImageError:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise ImageError(f"image too large to decode safely ({exc}): {path}") from None
    except Image.UnidentifiedImageError:
        raise ImageError(f"not an image file (format not recognised): {path}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"cannot decode image (corrupt or truncated?): {path}: {exc}") from None


def fit(image: np.ndarray, max_side: int) -> np.ndarray:
    """``image`` resized (PIL bicubic) so that its longer side is at most ``max_side`` (e.g. PASCAL VOC's 500 px, or a thumbnail)."""
    height, width = image.shape[:2]
    scale = max_side / max(height, width)
    if scale >= 1:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(image).resize(size, resample=Image.BICUBIC))


def check_image(image: np.ndarray | Image.Image) -> np.ndarray:
    """An H x W x 3 uint8 RGB array, or a clear error saying how to convert what was given.

    Taken: an H x W x 3 uint8 array (any strides), an H x W x 3 uint8 tensor (on any device), and a PIL Image of any
    mode, converted as image files are (:func:`to_rgb_array`: grayscale and palette to RGB, alpha dropped, 16-bit
    scaled). Refused, with the conversion to make: floats (0..1 or 0..255: which is not known), other integer types,
    grayscale or RGBA arrays, C x H x W (a tensor's layout) and batches."""
    if isinstance(image, Image.Image):
        return to_rgb_array(image)
    if isinstance(image, (str, bytes, os.PathLike)):
        raise ImageError(f"image is a path ({image!r}), not pixels: read it with "
                         "infercam.data.images.load_image(path) (as the commands read files) or PIL")
    if hasattr(image, "detach") and hasattr(image, "cpu"):  # a torch tensor, on any device
        image = image.detach().cpu().numpy()
    image = np.asarray(image)
    shape = tuple(image.shape)
    if image.ndim == 4 and shape[0] == 1:
        raise ImageError(f"image has shape {shape}, a batch of 1 image: pass one image at a time, e.g. image[0]")
    if image.ndim == 2 or image.ndim == 3 and shape[2] == 1:
        raise ImageError(f"image has shape {shape}, a grayscale image: InferCam takes H x W x 3 RGB; repeat it, "
                         "np.repeat(image.reshape(image.shape[:2] + (1,)), 3, axis=2), or pass a PIL Image "
                         "(converted to RGB)")
    if image.ndim == 3 and shape[0] in (1, 3, 4) and shape[2] not in (3, 4):
        raise ImageError(f"image has shape {shape}, C x H x W (a tensor's layout): InferCam takes H x W x 3; "
                         "pass image.permute(1, 2, 0) (numpy: image.transpose(1, 2, 0))")
    if image.ndim == 3 and shape[2] == 4:
        raise ImageError(f"image has shape {shape}, RGBA: InferCam takes H x W x 3 RGB; drop the alpha channel "
                         "with image[..., :3] (as the commands do with RGBA files)")
    if image.ndim != 3 or shape[2] != 3:
        raise ImageError(f"image must be an H x W x 3 RGB array, got shape {shape}")
    if image.dtype.kind == "f":
        raise ImageError(f"image must be uint8 (0..255), got {image.dtype}: convert an image in 0..1 with "
                         "(image * 255).round().astype(np.uint8), one in 0..255 with image.round().astype(np.uint8)")
    if image.dtype.kind in "iu" and image.dtype != np.uint8:
        raise ImageError(f"image must be uint8 (0..255), got {image.dtype}: convert values in 0..255 with "
                         "image.astype(np.uint8)")
    if image.dtype != np.uint8:
        raise ImageError(f"image must be uint8 (0..255), got {image.dtype}")
    if min(shape[:2]) < 1:
        raise ImageError(f"image is empty: shape {shape}")
    return np.ascontiguousarray(image)
