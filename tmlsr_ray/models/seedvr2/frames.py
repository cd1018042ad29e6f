"""SeedVR2's frame pre- and post-processing, and the wavelet colour fix (torch, no Ray).

Layouts: frames are uint8 (T, H, W, 3) RGB; the model side is float (C, T, H, W) in [-1, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np
import torch
import torch.nn.functional as F

PAD_MULTIPLE = 16
WAVELET_LEVELS = 5


@dataclass(frozen=True)
class Prepared:
    video: torch.Tensor  # (C, T', H', W') in [-1, 1]; T' = 4n+1, H', W' multiples of 16
    frames: int  # T before temporal padding
    height: int  # size after the resize, before spatial padding
    width: int


def resized_size(height: int, width: int, resolution: int) -> Tuple[int, int]:
    """The short side becomes ``resolution``; the long side scales with it (truncated)."""
    if height <= width:
        return resolution, int(resolution * width / height)
    return int(resolution * height / width), resolution


def preprocess(frames: torch.Tensor, resolution: int) -> Prepared:
    count, height, width, _ = frames.shape
    new_h, new_w = resized_size(height, width, resolution)
    video = frames.float().div(255.0).permute(0, 3, 1, 2)  # (T, 3, H, W)
    # PIL-style antialiased bicubic (a = -0.5), even when enlarging, as the reference does.
    video = F.interpolate(video, size=(new_h, new_w), mode="bicubic", antialias=True, align_corners=False)
    video = video.clamp(0.0, 1.0)
    video = F.pad(video, (0, -new_w % PAD_MULTIPLE, 0, -new_h % PAD_MULTIPLE), value=0.0)
    video = (video - 0.5) / 0.5
    extra = (-(count - 1)) % 4  # 4n+1 frames: repeat the last one
    if extra:
        video = torch.cat([video, video[-1:].expand(extra, -1, -1, -1)])
    return Prepared(video.permute(1, 0, 2, 3).contiguous(), count, new_h, new_w)


def trim(video: torch.Tensor, prepared: Prepared) -> torch.Tensor:
    """Drops the temporal and spatial padding again: (C, T', H', W') → (C, T, h, w)."""
    return video[:, : prepared.frames, : prepared.height, : prepared.width]


def _wavelet_blur(image: torch.Tensor, radius: int) -> torch.Tensor:
    weights = torch.tensor([[1, 2, 1], [2, 4, 2], [1, 2, 1]], dtype=image.dtype, device=image.device) / 16
    channels = image.shape[1]
    kernel = weights.expand(channels, 1, 3, 3)
    padded = F.pad(image, (radius,) * 4, mode="replicate")
    return F.conv2d(padded, kernel, groups=channels, dilation=radius)


def _wavelet_split(image: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """(high frequencies summed over the levels, the last low-pass)."""
    high = torch.zeros_like(image)
    for level in range(WAVELET_LEVELS):
        low = _wavelet_blur(image, 2**level)
        high = high + (image - low)
        image = low
    return high, image


def wavelet_color_fix(content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """Detail of ``content`` (the decoded frames) on the colours of ``style`` (the input), both
    (C, T, H, W); frames are processed as a batch."""
    content_high, _ = _wavelet_split(content.permute(1, 0, 2, 3))
    _, style_low = _wavelet_split(style.permute(1, 0, 2, 3))
    return (content_high + style_low).permute(1, 0, 2, 3)


def to_samples(video: torch.Tensor, dtype: np.dtype) -> torch.Tensor:
    """(C, T, H, W) in [-1, 1] → (T, H, W, 3) integer samples (uint8 or uint16), half to even."""
    top, torch_dtype = (65535.0, torch.int32) if np.dtype(dtype) == np.uint16 else (255.0, torch.uint8)
    scaled = (video.clamp(-1.0, 1.0) * 0.5 + 0.5) * top
    # torch has no uint16 arithmetic on every device: int32 holds 0..65535 exactly.
    return torch.round(scaled).to(torch_dtype).permute(1, 2, 3, 0).contiguous()
