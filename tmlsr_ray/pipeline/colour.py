"""Colour of videos: HDR detection, mastering metadata, and the tone-map to SDR (no Ray here).

HDR stays HDR by default: the frames are decoded to 16-bit RGB in the stream's own primaries and
transfer (BT.2020, HLG or PQ), upscaled as they are, and encoded back with the same tags. Only
``hdr: "sdr"`` converts: light from the HDR signal (PQ's EOTF, or HLG's inverse OETF and its OOTF
for a 1000-nit display), the Hable filmic curve on each pixel's brightest component (so hues keep
their ratios) with HDR reference white (203 nits, BT.2408) at the SDR curve's knee, BT.2020 →
BT.709 primaries in linear light, and the BT.1886 display gamma. FFmpeg's own ``tonemap`` filter
needs ``zscale`` to linearise first, which PyAV's FFmpeg build lacks: hence this operator.
"""

from __future__ import annotations

import struct
from typing import Dict, Optional

import numpy as np

from tmlsr_ray.models.yuv import SWS_MATRIX_TAG, nearest_sws_matrix

TRC_PQ, TRC_HLG = 16, 18  # ITU-T H.273 transfer characteristics
HDR_TRANSFERS = {TRC_PQ: "smpte2084", TRC_HLG: "arib-std-b67"}
SDR_BT709 = {"color_primaries": 1, "color_trc": 1, "colorspace": 1, "color_range": 1}
REFERENCE_WHITE_NITS = 203.0
HLG_DISPLAY_NITS = 1000.0

BT2020_TO_BT709 = np.array([[1.6605, -0.5876, -0.0728],
                            [-0.1246, 1.1329, -0.0083],
                            [-0.0182, -0.1006, 1.1187]], dtype=np.float32)


def written_colour(color: Dict[str, int]) -> Dict[str, int]:
    """The tags of what the encoder writes: a matrix swscale has none for (BT.2020 constant
    luminance, YCgCo, ICtCp) is decoded and written in the nearest it has, and tagged so."""
    matrix = nearest_sws_matrix(color["colorspace"], color["color_primaries"])
    return color if matrix is None else {**color, "colorspace": SWS_MATRIX_TAG[matrix]}


def is_hdr(color: Dict[str, int]) -> bool:
    return color.get("color_trc") in HDR_TRANSFERS


def tone_map_to_sdr(frames: np.ndarray, transfer: int) -> np.ndarray:
    """HDR RGB frames (uint16, full-scale code values, BT.2020) → SDR BT.709 uint8 RGB."""
    signal = frames.astype(np.float32) / 65535.0
    nits = pq_to_nits(signal) if transfer == TRC_PQ else hlg_to_nits(signal)
    linear = nits / REFERENCE_WHITE_NITS
    peak = float(linear.max(initial=1.0))
    brightest = np.maximum(linear.max(axis=-1, keepdims=True), 1e-6)
    mapped = linear * (_hable(brightest) / _hable(np.float32(max(peak, 1.0))) / brightest)
    bt709 = np.clip(mapped @ BT2020_TO_BT709.T, 0.0, 1.0)
    return np.round(bt709 ** (1 / 2.4) * 255.0).astype(np.uint8)


def pq_to_nits(signal: np.ndarray) -> np.ndarray:
    """SMPTE ST 2084 EOTF."""
    m1, m2 = 2610 / 16384, 2523 / 4096 * 128
    c1, c2, c3 = 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32
    powered = np.power(np.clip(signal, 0, 1), 1 / m2)
    return 10000.0 * np.power(np.maximum(powered - c1, 0) / (c2 - c3 * powered), 1 / m1)


def hlg_to_nits(signal: np.ndarray, display_nits: float = HLG_DISPLAY_NITS) -> np.ndarray:
    """BT.2100 HLG: inverse OETF to scene light, then the OOTF of a ``display_nits`` display."""
    a, b = 0.17883277, 0.28466892
    c = 0.5 - a * np.log(4 * a)
    signal = np.clip(signal, 0, 1)
    scene = np.where(signal <= 0.5, signal * signal / 3.0, (np.exp((signal - c) / a) + b) / 12.0)
    gamma = 1.2 + 0.42 * np.log10(display_nits / 1000.0)
    luminance = scene @ np.array([0.2627, 0.6780, 0.0593], dtype=np.float32)
    return display_nits * np.power(np.maximum(luminance, 1e-9), gamma - 1)[..., None] * scene


def _hable(x):
    a, b, c, d, e, f = 0.15, 0.50, 0.10, 0.20, 0.02, 0.30
    return (x * (a * x + c * b) + d * e) / (x * (a * x + b) + d * f) - e / f


def mastering_params(side_data) -> Optional[Dict[str, str]]:
    """HDR10 static metadata of a decoded frame (mastering display, content light level) in the
    notation the x264 and x265 parameters take, or ``None`` when the frame carries none."""
    params: Dict[str, str] = {}
    for item in side_data:
        kind = getattr(item.type, "name", str(item.type))
        if kind == "MASTERING_DISPLAY_METADATA":
            params["master_display"] = _master_display(bytes(item))
        elif kind == "CONTENT_LIGHT_LEVEL":
            max_cll, max_fall = struct.unpack_from("<II", bytes(item))
            params["cll"] = f"{max_cll},{max_fall}"
    return params or None


def _master_display(raw: bytes) -> str:
    """AVMasteringDisplayMetadata (rationals: R, G, B primaries x/y, white point, min and max
    luminance) as ``G(x,y)B(x,y)R(x,y)WP(x,y)L(max,min)`` in units of 1/50000 and 1/10000 cd/m²."""
    values = struct.unpack_from("<20i", raw)
    ratio = [values[i] / values[i + 1] if values[i + 1] else 0.0 for i in range(0, 20, 2)]
    (rx, ry, gx, gy, bx, by, wx, wy, low, high) = ratio

    def chroma(x, y):
        return f"({round(x * 50000)},{round(y * 50000)})"
    return (f"G{chroma(gx, gy)}B{chroma(bx, by)}R{chroma(rx, ry)}WP{chroma(wx, wy)}"
            f"L({round(high * 10000)},{round(low * 10000)})")
