"""The upscale stage for SeedVR2: output sizes, images as one-frame videos, the final resize.

SeedVR2 has no native scale: it renders frames whose short side is a given length. The output size
is decided first (``resolution`` = output height, else the usual scale fields), and the model runs
at that size's short side, so the final resize only absorbs rounding.
"""

from __future__ import annotations

from typing import Callable, Tuple

import cv2
import numpy as np

from tmlsr_ray.models.seedvr2.pipeline import RestoreOptions, SeedVR2Model
from tmlsr_ray.pipeline.upscale import check_stop, resize_frames

def restore_frames(model: SeedVR2Model, frames: np.ndarray, target: Tuple[int, int], options: RestoreOptions,
                   should_stop: Callable[[], bool] = lambda: False) -> np.ndarray:
    """RGB frames (N, H, W, 3), uint8 or uint16 → restored frames at ``target`` = (width, height)."""
    restored = model.restore(frames, options, checkpoint=lambda: check_stop(should_stop))
    return resize_frames(restored, target)


def restore_image(model: SeedVR2Model, image: np.ndarray, target: Tuple[int, int], options: RestoreOptions,
                  should_stop: Callable[[], bool] = lambda: False) -> np.ndarray:
    """A gray/BGR/BGRA image (uint8 or uint16) as a one-frame video; alpha follows by resizing,
    since SeedVR2 restores colour only."""
    if image.ndim == 2:
        rgb = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    else:
        rgb = cv2.cvtColor(np.ascontiguousarray(image[:, :, :3]), cv2.COLOR_BGR2RGB)
    restored = restore_frames(model, rgb[None], target, options, should_stop)[0]
    if image.ndim == 2:
        return cv2.cvtColor(restored, cv2.COLOR_RGB2GRAY)
    bgr = cv2.cvtColor(restored, cv2.COLOR_RGB2BGR)
    if image.shape[2] == 3:
        return bgr
    alpha = cv2.resize(np.ascontiguousarray(image[:, :, 3]), target, interpolation=cv2.INTER_LANCZOS4)
    return np.dstack([bgr, alpha])

