"""OpenCV's ``INTER_LANCZOS4`` resize in torch, so frames can be resized where the model ran
(no Ray here).

The same semantics as ``cv2.resize``: source position ``(d + 0.5) * scale - 0.5``, 8 taps from
``floor - 3`` to ``floor + 4``, OpenCV's coefficients (its sine recurrence, normalised to sum 1, a
single 1 at the centre for a zero fraction), taps outside the image clamped to the edge, no
antialiasing when shrinking.

Separable, and each axis is a band matrix: 8 weights per output. A dense matrix product per axis
would do a whole row's work for each output (5,120 multiply-adds per sample of a ×4 720p frame
resized to ×2, against 8), so the outputs go in blocks of :data:`BLOCK`, each a matrix product
with only the source window its taps reach: still batched matrix products, which a GPU runs fast
and which keep the result exact up to float rounding, at a twentieth of the dense work. The taps
cost more to compute than a resize of one frame, so a :class:`Lanczos4` keeps them on its device.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Dict, Tuple

import numpy as np
import torch

_S45 = 0.70710678118654752440084436210485
_CS = np.array(((1, 0), (-_S45, -_S45), (0, 1), (_S45, -_S45), (-1, 0), (_S45, _S45), (0, -1), (-_S45, _S45)))
TAPS = 8
BLOCK = 64  # outputs per matrix product: wide enough to fill a GEMM, narrow enough to keep windows short


@functools.lru_cache(maxsize=64)
def lanczos4_taps(source: int, destination: int) -> Tuple[np.ndarray, np.ndarray]:
    """(destination, 8) source indices (clamped to the edge) and their weights, as OpenCV's."""
    scale = source / destination
    position = (np.arange(destination) + 0.5) * scale - 0.5
    start = np.floor(position)
    fraction = (position - start)[:, None]
    y0 = -(fraction + 3) * np.pi * 0.25
    y = -(fraction + 3 - np.arange(TAPS)) * np.pi * 0.25
    with np.errstate(divide="ignore", invalid="ignore"):  # y = 0 only where the fraction is zero
        values = ((_CS[:, 0] * np.sin(y0) + _CS[:, 1] * np.cos(y0)) / (y * y)).astype(np.float32).astype(np.float64)
        weights = values / values.sum(axis=1, keepdims=True)
    weights[fraction[:, 0] < np.finfo(np.float32).eps] = np.eye(TAPS)[3]
    indices = np.clip(start.astype(np.int64)[:, None] - 3 + np.arange(TAPS), 0, source - 1)
    for array in (indices, weights):
        array.setflags(write=False)  # shared by every caller through the cache
    return indices, weights


@dataclass(frozen=True)
class AxisPlan:
    """One axis's band matrix in blocks: block b maps source[window[b]] to outputs b·BLOCK onward."""

    destination: int
    windows: np.ndarray  # (blocks, length) source indices
    weights: np.ndarray  # (blocks, length, BLOCK)


@functools.lru_cache(maxsize=64)
def axis_plan(source: int, destination: int) -> AxisPlan:
    indices, weights = lanczos4_taps(source, destination)
    blocks = -(-destination // BLOCK)
    block_of = np.arange(destination) // BLOCK
    lowest = np.minimum.reduceat(indices.min(axis=1), np.arange(0, destination, BLOCK))
    highest = np.maximum.reduceat(indices.max(axis=1), np.arange(0, destination, BLOCK))
    length = int((highest - lowest).max()) + 1
    starts = np.minimum(lowest, source - length)  # every window the same length, inside the source
    matrix = np.zeros((blocks, length, BLOCK), np.float64)
    rows = np.broadcast_to(block_of[:, None], indices.shape)
    columns = np.broadcast_to((np.arange(destination) % BLOCK)[:, None], indices.shape)
    np.add.at(matrix, (rows, indices - starts[rows], columns), weights)  # clamped taps add up
    return AxisPlan(destination, starts[:, None] + np.arange(length), matrix)


class Lanczos4:
    """Resizes (N, C, H, W) samples on one device, keeping each axis's plan there."""

    def __init__(self):
        self._plans: Dict[tuple, Tuple[int, torch.Tensor, torch.Tensor]] = {}

    def __call__(self, frames: torch.Tensor, target: Tuple[int, int]) -> torch.Tensor:
        """Samples of any float or integer dtype → (N, C, height, width) in the same dtype;
        integer results are rounded and clamped to their range, as OpenCV saturates."""
        width, height = target
        resized = frames.to(torch.float32)
        if resized.shape[3] != width:
            destination, windows, weights = self._plan(resized.shape[3], width, resized.device)
            across = torch.einsum("nchbl,blo->nchbo", resized[..., windows], weights)
            resized = across.flatten(3)[..., :destination]
        if resized.shape[2] != height:
            destination, windows, weights = self._plan(resized.shape[2], height, resized.device)
            down = torch.einsum("ncblw,blo->ncbow", resized[:, :, windows], weights)
            resized = down.flatten(2, 3)[:, :, :destination]
        if frames.dtype.is_floating_point:
            return resized.to(frames.dtype)
        info = torch.iinfo(frames.dtype)
        return resized.round().clamp(info.min, info.max).to(frames.dtype)

    def _plan(self, source: int, destination: int, device: torch.device):
        key = (source, destination, device)
        if key not in self._plans:
            plan = axis_plan(source, destination)
            self._plans[key] = (plan.destination, torch.from_numpy(plan.windows).to(device),
                                torch.from_numpy(plan.weights).to(device, torch.float32))
        return self._plans[key]


def lanczos4_resize(frames: torch.Tensor, target: Tuple[int, int]) -> torch.Tensor:
    """One resize with a fresh plan (a model keeps a :class:`Lanczos4` to reuse its plans)."""
    return Lanczos4()(frames, target)
