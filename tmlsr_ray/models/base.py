"""The protocol every model backend implements (no Ray, no HTTP)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


class ModelError(Exception):
    """A model file that cannot be used (unknown architecture, broken file)."""


@runtime_checkable
class SuperResolutionModel(Protocol):
    """A loaded model that upscales batches of frames at its native scale.

    ``upscale`` takes float32 RGB frames shaped (N, H, W, 3) with values in [0, 1] and returns
    float32 frames shaped (N, H * scale, W * scale, 3), clamped to [0, 1]. Any H and W are
    accepted; padding an architecture needs is the backend's business.

    A backend may also offer ``upscale_samples(frames)``: uint8/uint16 frames in, the same type out,
    equal to rounding ``upscale`` on the same scale; the video path then prefers it, since it lets a
    GPU do the conversions.
    """

    name: str
    scale: int
    architecture: str
    device: str

    def upscale(self, frames: np.ndarray) -> np.ndarray: ...
