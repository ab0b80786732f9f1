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


def check_image(image: np.ndarray) -> np.ndarray:
    """An H x W x 3 uint8 array, or a clear error."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ImageError(f"image must be an H x W x 3 RGB array, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise ImageError(f"image must be uint8 (0..255), got {image.dtype}")
    if min(image.shape[:2]) < 1:
        raise ImageError(f"image is empty: shape {image.shape}")
    return np.ascontiguousarray(image)
