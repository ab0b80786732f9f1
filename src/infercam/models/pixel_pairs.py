"""Pixel pairs within a radius on a feature grid, in psa's layout (AffinityNet, CVPR 2018).

A pair joins a *source* pixel to a *destination* at one of the offsets of :func:`search_offsets`
(a half disc, so each unordered pair appears once). As in psa, the sources are only the pixels from
which every offset stays inside the grid: rows ``< H - radius + 1`` and columns in
``[radius - 1, W - radius + 1)``. So, as in psa, a few cells have no pair at all: for radius 5 the
first four of the top row and three in each bottom corner (their random walk leaves them as they
are). Arrays of pairs are (D, F): D offsets by F sources.
"""
from __future__ import annotations

import functools

import numpy as np
import torch

from ..classes import IGNORE_INDEX
from ..errors import InferCamError


def search_offsets(radius: int) -> list[tuple[int, int]]:
    """psa's neighbour offsets (dy, dx) with dx² + dy² < radius²: (0, 1..r-1) first, then rows dy = 1..r-1."""
    if radius < 2:
        raise InferCamError(f"affinity radius must be at least 2, got {radius}")
    offsets = [(0, dx) for dx in range(1, radius)]
    offsets += [(dy, dx) for dy in range(1, radius) for dx in range(1 - radius, radius)
                if dx * dx + dy * dy < radius * radius]
    return offsets


@functools.lru_cache(maxsize=32)
def pair_indices(height: int, width: int, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices of the pairs of an H x W grid: sources (F,) and destinations (D, F), read-only."""
    offsets = search_offsets(radius)
    margin = radius - 1
    rows, cols = height - margin, width - 2 * margin
    if rows < 1 or cols < 1:
        raise InferCamError(f"a {height}x{width} feature grid is too small for affinity radius {radius}: "
                            f"it needs at least {radius}x{2 * radius - 1} cells ({8 * margin + 1}x{16 * margin + 1} "
                            "pixels at stride 8)")
    grid = np.arange(height * width, dtype=np.int64).reshape(height, width)
    src = grid[:rows, margin:margin + cols].reshape(-1)
    dst = np.stack([grid[dy:dy + rows, margin + dx:margin + dx + cols].reshape(-1) for dy, dx in offsets])
    src.setflags(write=False)
    dst.setflags(write=False)
    return src, dst


def pair_affinity(features: torch.Tensor, radius: int) -> torch.Tensor:
    """psa's affinity exp(-mean_c |f_i - f_j|) of every pair of (N, C, H, W) features: (N, D, F)."""
    n, c, h, w = features.shape
    src, dst = (torch.tensor(a, device=features.device) for a in pair_indices(h, w, radius))
    flat = features.reshape(n, c, h * w)
    f_src = flat[:, :, src].unsqueeze(2)
    f_dst = flat[:, :, dst.reshape(-1)].view(n, c, dst.shape[0], dst.shape[1])
    return torch.exp(-(f_dst - f_src).abs().mean(1))


def dense_affinity(pair_aff: torch.Tensor, height: int, width: int, radius: int) -> torch.Tensor:
    """The symmetric (HW, HW) affinity matrix of one image's pair affinities (D, F), ones on the diagonal."""
    src, dst = (torch.tensor(a, device=pair_aff.device) for a in pair_indices(height, width, radius))
    src = src.expand_as(dst)
    n = height * width
    mat = torch.zeros(n, n, dtype=pair_aff.dtype, device=pair_aff.device)
    mat[src, dst] = pair_aff
    mat[dst, src] = pair_aff
    mat.fill_diagonal_(1.0)
    return mat


def affinity_labels(label: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """psa's pair labels of an H x W label map (0 background, 255 unknown): background-positive,
    foreground-positive and negative pairs, each (D, F) float32; pairs touching 255 are in none
    (a pair of two background pixels is always valid)."""
    src, dst = pair_indices(label.shape[0], label.shape[1], radius)
    flat = np.asarray(label).reshape(-1)
    a, b = flat[src][None, :], flat[dst]
    valid = (a != IGNORE_INDEX) & (b != IGNORE_INDEX)
    same = a == b
    bg_pos = same & (a == 0)
    fg_pos = same & (a != 0) & valid
    neg = ~same & valid
    return bg_pos.astype(np.float32), fg_pos.astype(np.float32), neg.astype(np.float32)
