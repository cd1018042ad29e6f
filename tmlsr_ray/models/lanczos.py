"""OpenCV's ``INTER_LANCZOS4`` resize in torch, so frames can be resized where the model ran
(no Ray here).

The same semantics as ``cv2.resize``: source position ``(d + 0.5) * scale - 0.5``, 8 taps from
``floor - 3`` to ``floor + 4``, OpenCV's coefficients (its sine recurrence, normalised to sum 1, a
single 1 at the centre for a zero fraction), taps outside the image clamped to the edge, no
antialiasing when shrinking. Separable: one dense weight matrix per axis, applied as two matrix
products, which the GPU runs fast and which keep the result exact up to float rounding.
"""

from __future__ import annotations

import math
from typing import Tuple

import numpy as np
import torch

_S45 = 0.70710678118654752440084436210485
_CS = ((1, 0), (-_S45, -_S45), (0, 1), (_S45, -_S45), (-1, 0), (_S45, _S45), (0, -1), (-_S45, _S45))


def lanczos4_weights(source: int, destination: int) -> np.ndarray:
    """(destination, source) matrix: row d holds the weights of output sample d."""
    scale = source / destination
    weights = np.zeros((destination, source), np.float64)
    for d in range(destination):
        position = (d + 0.5) * scale - 0.5
        start = math.floor(position)
        for tap, coefficient in enumerate(_coefficients(position - start)):
            weights[d, min(max(start - 3 + tap, 0), source - 1)] += coefficient
    return weights


def _coefficients(fraction: float) -> np.ndarray:
    if fraction < np.finfo(np.float32).eps:
        return np.eye(8)[3]
    y0 = -(fraction + 3) * math.pi * 0.25
    s0, c0 = math.sin(y0), math.cos(y0)
    values = np.empty(8)
    for i in range(8):
        y = -(fraction + 3 - i) * math.pi * 0.25
        values[i] = np.float32((_CS[i][0] * s0 + _CS[i][1] * c0) / (y * y))
    return values / values.sum()


def lanczos4_resize(frames: torch.Tensor, target: Tuple[int, int]) -> torch.Tensor:
    """(N, C, H, W) samples (any float or integer dtype) → (N, C, height, width) in the same
    dtype; integer results are rounded and clamped to their range, as OpenCV saturates."""
    width, height = target
    _, _, rows, cols = frames.shape
    compute = torch.float32
    across = torch.from_numpy(lanczos4_weights(cols, width)).to(frames.device, compute)
    down = torch.from_numpy(lanczos4_weights(rows, height)).to(frames.device, compute)
    resized = down @ (frames.to(compute) @ across.T)
    if frames.dtype.is_floating_point:
        return resized.to(frames.dtype)
    info = torch.iinfo(frames.dtype)
    return resized.round().clamp(info.min, info.max).to(frames.dtype)
