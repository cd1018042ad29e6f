"""RGB samples to planar YUV 4:2:0 in torch, as swscale converts them for the encoder, so that a
GPU replica hands the encoder YUV: half the bytes cross the bus, and the CPU, whose cores are
the encoders', skips the conversion (about a fifth of x264 veryfast's time per 2560×1440 frame).

swscale's semantics (rgb24/rgb48le to yuv420p/yuv420p10le, bilinear with accurate rounding),
which these equal within one level: luma from each pixel; chroma from the RGB of each horizontal
pair averaged, then rows filtered 1-3-3-1 / 8 to half height (chroma sited between two rows, the
edge rows repeated); 16-bit input read as if white were 65280 (255·256); limited range 16–235 /
16–240 (×4 at 10 bits), full range 0–top with chroma centred on top / 2.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# (Kr, Kb) by swscale's matrix names
MATRICES = {"ITU709": (0.2126, 0.0722), "ITU601": (0.299, 0.114), "SMPTE240M": (0.212, 0.087),
            "BT2020": (0.2627, 0.0593)}


@dataclass(frozen=True)
class Yuv420:
    """The encoder's input: 4:2:0 planes of ``bits`` (8 or 10) in this matrix and range."""

    matrix: str = "ITU601"
    full_range: bool = False
    bits: int = 8

    @property
    def pix_fmt(self) -> str:
        return "yuv420p" if self.bits == 8 else "yuv420p10le"

    @property
    def top(self) -> int:
        return (1 << self.bits) - 1


def converts_like_swscale(layout: Yuv420, sixteen_bit_source: bool, width: int, height: int) -> bool:
    """Whether :func:`rgb_to_yuv420` gives what swscale would: not for 16-bit samples to 8 bits
    (swscale dithers those), nor for odd sizes (4:2:0 needs even ones)."""
    return not (sixteen_bit_source and layout.bits == 8) and width % 2 == 0 and height % 2 == 0


def rgb_to_yuv420(frames: torch.Tensor, white: float, layout: Yuv420) -> torch.Tensor:
    """(N, 3, H, W) RGB samples (float, whole numbers in 0..255 or 0..65535; H and W even) to
    (N, H·3/2, W) planes as PyAV's ``VideoFrame.from_ndarray`` takes them: Y, then U and V, each
    (H/2)·(W/2) samples laid out in H/4 rows of W; uint8 for 8 bits, int32 for 10."""
    count, _, height, width = frames.shape
    kr, kb = MATRICES[layout.matrix]
    unit = 1 << (layout.bits - 8)
    if layout.full_range:
        luma_offset, luma_range, chroma_offset, chroma_range = 0.0, layout.top, layout.top / 2, layout.top
    else:
        luma_offset, luma_range, chroma_offset, chroma_range = 16.0 * unit, 219.0 * unit, 128.0 * unit, 224.0 * unit
    rgb = frames.to(torch.float32) / (65280.0 if white > 255 else 255.0)
    luma = luma_offset + luma_range * _luma(rgb, kr, kb)
    pairs = (rgb[..., 0::2] + rgb[..., 1::2]) / 2
    pair_luma = _luma(pairs, kr, kb)
    blue = _halve_rows(chroma_offset + chroma_range * (pairs[:, 2] - pair_luma) / (2 * (1 - kb)))
    red = _halve_rows(chroma_offset + chroma_range * (pairs[:, 0] - pair_luma) / (2 * (1 - kr)))
    planes = torch.cat([luma.reshape(count, -1), blue.reshape(count, -1), red.reshape(count, -1)], dim=1)
    planes = planes.round_().clamp_(0, layout.top).reshape(count, height * 3 // 2, width)
    return planes.to(torch.uint8 if layout.bits == 8 else torch.int32)


def _luma(rgb: torch.Tensor, kr: float, kb: float) -> torch.Tensor:
    return kr * rgb[:, 0] + (1 - kr - kb) * rgb[:, 1] + kb * rgb[:, 2]


def _halve_rows(plane: torch.Tensor) -> torch.Tensor:
    """(N, H, w) → (N, H/2, w): rows 2k-1, 2k, 2k+1, 2k+2 weighted 1, 3, 3, 1 (edges repeated)."""
    padded = torch.cat([plane[:, :1], plane, plane[:, -1:]], dim=1)
    return (padded[:, 0:-3:2] + 3 * padded[:, 1:-2:2] + 3 * padded[:, 2:-1:2] + padded[:, 3::2]) / 8
