"""A straightforward InferCam that follows the authors' published loop step by step.

It exists as an independent oracle for tests and as the baseline of the benchmark: one forward per
scale and flip at batch size 1, every class channel upsampled then masked by the label vector, numpy
sums, patches cut with numpy slicing and round-tripped through image files, and a whole-image patch
recomputed once per corner. Use :class:`infercam.InferCam` for real work.
"""
from __future__ import annotations

import os
import tempfile
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from scipy import ndimage

from infercam.method.cam import scaled_size


def _normalize(img: np.ndarray, mean, std) -> torch.Tensor:
    """psa's Normalize: (pixel / 255. - mean) / std per channel in float64, stored as float32."""
    out = np.empty(img.shape, np.float32)
    for c in range(3):
        out[..., c] = (img[..., c] / 255.0 - mean[c]) / std[c]
    return torch.from_numpy(out.transpose(2, 0, 1).copy())


def _msf_inputs(img: np.ndarray, scales, mean, std) -> list[torch.Tensor]:
    """Each scale and its flip, as (1, 3, h, w) tensors, in the order s1, s1-flip, s2, ..."""
    pil = Image.fromarray(img)
    out = []
    for s in scales:
        h, w = scaled_size(img.shape[0], img.shape[1], s)
        x = _normalize(np.asarray(pil.resize((w, h), resample=Image.BICUBIC)), mean, std)[None]
        out += [x, x.flip(-1)]
    return out


def _cam_round(model, inputs, size, label_vec) -> np.ndarray:
    cam_list = []
    for i, x in enumerate(inputs):
        cam = model.forward_cam(x)
        cam = F.interpolate(cam, size, mode="bilinear", align_corners=False)[0]
        cam = cam.cpu().numpy() * label_vec.reshape(-1, 1, 1)
        if i % 2 == 1:
            cam = np.flip(cam, axis=-1)
        cam_list.append(cam)
    total = np.sum(cam_list, axis=0)
    return total / (np.max(total, (1, 2), keepdims=True) + 1e-5)


def _erased(inputs, left: torch.Tensor, reference: bool) -> list[torch.Tensor]:
    out = []
    mask = left
    for i, x in enumerate(inputs):
        h, w = x.shape[-2:]
        if reference:  # chained from the previous pass's mask, never flipped
            mask = F.interpolate(mask, (h, w))
        else:  # from the full-resolution mask, flipped with its input
            mask = F.interpolate(left, (h, w))
            mask = torch.flip(mask, [-1]) if i % 2 == 1 else mask
        mean = torch.mean(x, dim=(2, 3))
        fill = torch.ones_like(x) * mean[0].view(1, 3, 1, 1)
        out.append((mask * x + (1 - mask) * fill).float())
    return out


def _refine_patch(model, patch: np.ndarray, scales, mean, std, label_vec, reference,
                  threshold=0.7, stop=0.02, max_rounds=5) -> np.ndarray:
    size = patch.shape[:2]
    inputs = _msf_inputs(patch, scales, mean, std)
    cam_matrix = np.zeros((label_vec.shape[0],) + size)
    last_left = np.ones(size)
    left_t = None
    for r in range(max_rounds):
        round_inputs = inputs if r == 0 else _erased(inputs, left_t, reference)
        norm_cam = _cam_round(model, round_inputs, size, label_vec)
        cam_matrix = np.max(np.stack((cam_matrix, norm_cam), axis=3), axis=3)
        left = (np.max(cam_matrix, axis=0) < threshold) * 1
        diff = (np.sum(last_left) - np.sum(left)) / (size[0] * size[1])
        last_left = left
        left_t = torch.from_numpy(left).unsqueeze(0).unsqueeze(0).float()
        if diff < stop:
            break
    return cam_matrix


def _roundtrip(patch: np.ndarray, folder: str, name: str, fmt: str) -> np.ndarray:
    path = os.path.join(folder, f"{name}.{fmt}")
    Image.fromarray(patch).save(path)
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


@torch.no_grad()
def naive_infercam(model, image: np.ndarray, labels: Sequence[int], mode: str = "fixed",
                   scales=(1.0, 0.5, 1.5, 2.0), mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
                   num_classes: int = 20, patch_format: str = "png", margins=(10, 20)):
    """(refined, baseline): dicts class -> H x W map, computed the authors' way: ``mode`` "reference" (their code,
    quirks included) or "fixed" (the quirks fixed); the default mode is not the published method.

    ``patch_format`` is the file format the patches are round-tripped through ('png' is lossless;
    the authors used 'jpg').
    """
    if mode not in ("fixed", "reference"):
        raise ValueError(f"the straightforward implementation has modes fixed and reference, not {mode!r}")
    reference = mode == "reference"
    label_vec = np.zeros(num_classes, np.float32)
    label_vec[list(labels)] = 1
    height, width = image.shape[:2]
    norm_cam = _cam_round(model, _msf_inputs(image, scales, mean, std), (height, width), label_vec)
    centers = []
    for c in labels:
        try:
            centers.append(list(map(int, ndimage.center_of_mass(norm_cam[c]))))
        except ValueError:
            centers.append([int(height / 2), int(width / 2)])
    mat = np.array(centers)
    if len(labels) > 2:
        patches = [image] * 4
    else:
        m = margins[0] if len(labels) == 1 else margins[1]
        y0, x0 = np.min(mat[:, 0]) - m, np.min(mat[:, 1]) - m
        if not reference:
            y0, x0 = max(0, y0), max(0, x0)
        y1, x1 = np.max(mat[:, 0]) + m, np.max(mat[:, 1]) + m
        patches = [image[0:y1, 0:x1], image[0:y1, x0:width], image[y0:height, 0:x1], image[y0:height, x0:width]]
    canvas = np.zeros((height, width, 4, num_classes))
    with tempfile.TemporaryDirectory() as folder:
        for k, patch in enumerate(patches):
            if patch_format:
                patch = _roundtrip(np.ascontiguousarray(patch), folder, f"patch_{k + 1}", patch_format)
            cams = _refine_patch(model, patch, scales, mean, std, label_vec, reference)
            ph, pw = patch.shape[:2]
            rows = slice(0, ph) if k in (0, 1) else slice(height - ph, height)
            cols = slice(0, pw) if k in (0, 2) else slice(width - pw, width)
            canvas[rows, cols, k, :] = cams.transpose(1, 2, 0)
    refined = {c: np.max(canvas[:, :, :, c], axis=2) for c in labels}
    baseline = {c: norm_cam[c] for c in labels}
    return refined, baseline
