"""Planar YUV 4:2:0 and RGB samples, both ways, in torch, as swscale converts them, so that a GPU
replica takes the decoder's planes and hands the encoder its planes: half the bytes cross the
bus each way, and the CPU, whose cores are the decoders' and encoders', skips both conversions
(about 4 ms per 720p frame in, a fifth of x264 veryfast's time per 2560×1440 frame out).

Out (rgb24/rgb48le to yuv420p/yuv420p10le, bilinear with accurate rounding), equal to swscale
within one level: luma from each pixel; chroma from the RGB of each horizontal pair averaged,
then rows filtered 1-3-3-1 / 8 to half height (chroma sited between two rows, the edge rows
repeated); 16-bit input read as if white were 65280 (255·256); limited range 16–235 / 16–240 (×4
at 10 bits), full range 0–top with chroma centred on top / 2.

In (yuv420p to rgb24 with the decoder's flags, full chroma interpolation and accurate rounding),
equal to swscale within one level: chroma upsampled bilinearly on each axis, by where the decoder
sites it (a frame's chroma location, which swscale honours): between two samples (3/4 of the
nearer chroma sample, 1/4 of the farther) or on the even one (it, then the mean of it and the
next), edge samples repeated. H.264, HEVC and MPEG-2 site it left (co-sited horizontally,
between rows), JPEG and unmarked frames at the centre, BT.2020 streams often top-left.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import numpy as np
import torch

# (Kr, Kb) by swscale's matrix names
MATRICES = {"ITU709": (0.2126, 0.0722), "ITU601": (0.299, 0.114), "SMPTE240M": (0.212, 0.087),
            "BT2020": (0.2627, 0.0593)}
# swscale's matrix for an FFmpeg colorspace tag (BT.2020 NCL and CL share one YUV matrix; absent:
# untagged, or one swscale has no matrix for)
SWS_MATRIX = {1: "ITU709", 5: "ITU601", 6: "ITU601", 7: "SMPTE240M", 9: "BT2020", 10: "BT2020"}
UNTAGGED = (0, 2)  # swscale reads these as BT.601
# the matrix tag swscale puts on the frames it converts to each matrix
SWS_MATRIX_TAG = {"ITU709": 1, "ITU601": 6, "SMPTE240M": 7, "BT2020": 9}
SWS_READS = {0, 1, 2, 4, 5, 6, 7, 9}  # tags swscale takes as they are (FCC too); it refuses the others
YCGCO = 8  # no swscale matrix either, but a fixed transform: decoded exactly (pipeline/decode.py)
# Matrices read as that of the primaries: BT.2020 constant luminance (its non-constant twin),
# chroma-derived ones (derived from the primaries), reserved values. The others are refused.
BY_PRIMARIES = {3, 10, 12, 13}
REFUSED_MATRICES = {11: "SMPTE ST 2085", 14: "ICtCp", 15: "IPT-C2", 16: "YCgCo-Re", 17: "YCgCo-Ro"}


def nearest_sws_matrix(colorspace: int, primaries: int) -> Optional[str]:
    """None where swscale reads the tag itself; else the matrix of the primaries, the nearest it
    has: what a matrix it lacks is read in (see BY_PRIMARIES) and written in (YCgCo too)."""
    if colorspace in SWS_READS:
        return None
    return {9: "BT2020", 1: "ITU709"}.get(primaries, "ITU601")


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


Siting = Tuple[bool, bool]  # chroma on the even luma sample: (horizontally, vertically)
SITINGS: Dict[str, Siting] = {"center": (False, False), "left": (True, False), "top": (False, True),
                              "topleft": (True, True)}


@dataclass(frozen=True)
class Yuv420Frames:
    """Decoded frames as the decoder's 8-bit 4:2:0 planes, (N, H·3/2, W) as PyAV's ``to_ndarray``
    gives them, to become RGB where the model runs; ``quarter_turns`` counter-clockwise turn them
    upright (a phone's rotation)."""

    planes: np.ndarray
    layout: Yuv420
    quarter_turns: int = 0
    siting: Siting = SITINGS["center"]  # unmarked frames'; a decoder's are measured (decode.py)

    def __len__(self) -> int:
        return len(self.planes)

    @property
    def size(self) -> Tuple[int, int]:
        """(height, width) upright."""
        height, width = self.planes.shape[1] * 2 // 3, self.planes.shape[2]
        return (width, height) if self.quarter_turns % 2 else (height, width)

    def rgb(self) -> np.ndarray:
        """(N, H, W, 3) uint8 RGB upright, as the decoder's swscale would have made them; a frame at
        a time (a 4K batch's float work at once would take gigabytes)."""
        out = np.empty((len(self), *self.size, 3), np.uint8)
        with torch.inference_mode():
            for index in range(len(self)):
                frame = upright_rgb(torch.from_numpy(self.planes[index:index + 1]), self)[0]
                out[index] = frame.permute(1, 2, 0).to(torch.uint8).numpy()
        return out


def decoded_layout(pix_fmt: str, colorspace: int, color_range: int, width: int, height: int) -> Optional[Yuv420]:
    """The layout of a decoder's frames where :func:`yuv420_to_rgb` converts them as swscale
    does: 8-bit 4:2:0 of even size in a matrix swscale has (else None: the decoder converts)."""
    if pix_fmt not in ("yuv420p", "yuvj420p") or width % 2 or height % 2:
        return None
    matrix = "ITU601" if colorspace in UNTAGGED else SWS_MATRIX.get(colorspace)
    if matrix is None:
        return None
    return Yuv420(matrix, pix_fmt == "yuvj420p" or color_range == 2, 8)


def upright_rgb(planes: torch.Tensor, frames: Yuv420Frames) -> torch.Tensor:
    """Planes of ``frames``'s layout (any device) → (n, 3, H, W) RGB samples upright."""
    rgb = yuv420_to_rgb(planes, frames.layout, frames.siting)
    return torch.rot90(rgb, frames.quarter_turns, dims=(2, 3)) if frames.quarter_turns else rgb


def yuv420_to_rgb(planes: torch.Tensor, layout: Yuv420, siting: Siting = SITINGS["center"]) -> torch.Tensor:
    """(N, H·3/2, W) 8-bit planes → (N, 3, H, W) RGB samples, float whole numbers in 0..255."""
    count, rows, width = planes.shape
    height = rows * 2 // 3
    samples = planes.to(torch.float32)
    chroma = samples[:, height:].reshape(count, 2, height // 2, width // 2)
    kr, kb = MATRICES[layout.matrix]
    if layout.full_range:
        luma = samples[:, :height] / 255.0
        blue, red = (_double(chroma[:, 0], siting) - 128.0) / 255.0, (_double(chroma[:, 1], siting) - 128.0) / 255.0
    else:
        luma = (samples[:, :height] - 16.0) / 219.0
        blue, red = (_double(chroma[:, 0], siting) - 128.0) / 224.0, (_double(chroma[:, 1], siting) - 128.0) / 224.0
    r = luma + 2 * (1 - kr) * red
    b = luma + 2 * (1 - kb) * blue
    g = (luma - kr * r - kb * b) / (1 - kr - kb)
    return torch.stack([r, g, b], dim=1).mul_(255.0).round_().clamp_(0, 255)


def _double(plane: torch.Tensor, siting: Siting) -> torch.Tensor:
    """(N, h, w) → (N, 2h, 2w)."""
    return _double_axis(_double_axis(plane, 1, siting[1]), 2, siting[0])


def _double_axis(plane: torch.Tensor, axis: int, cosited: bool) -> torch.Tensor:
    length = plane.shape[axis]
    before = torch.cat([plane.narrow(axis, 0, 1), plane.narrow(axis, 0, length - 1)], dim=axis)
    after = torch.cat([plane.narrow(axis, 1, length - 1), plane.narrow(axis, -1, 1)], dim=axis)
    if cosited:  # on the even sample: it, then halfway to the next
        pair = [plane, 0.5 * plane + 0.5 * after]
    else:  # between two samples: 3/4 the nearer chroma sample
        pair = [0.75 * plane + 0.25 * before, 0.75 * plane + 0.25 * after]
    shape = list(plane.shape)
    shape[axis] *= 2
    return torch.stack(pair, dim=axis + 1).reshape(shape)


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
