"""Colour of videos: HDR detection, mastering metadata, and the tone-map to SDR (no Ray here).

HDR stays HDR by default: the frames are decoded to 16-bit RGB in the stream's own primaries and
transfer (BT.2020, HLG or PQ), upscaled as they are, and encoded back with the same tags. Only
``hdr: "sdr"`` converts: light from the HDR signal (PQ's EOTF, or HLG's inverse OETF and its OOTF
for a 1000-nit display), ITU-R BT.2390's EETF on each pixel's brightest component (so hues keep
their ratios) from the stream's peak to an SDR display whose white is HDR reference white (203
nits, BT.2408), the stream's primaries → BT.709 in linear light, and the BT.1886 display gamma
(a photo's: sRGB's curve, by which viewers show an untagged photo). The peak is the stream's,
fixed for the whole video (MaxCLL, else the mastering display's peak, else 1000 nits; HLG's is its
1000-nit display): a peak measured per batch would make a constant grey jump whenever a highlight
comes or goes. FFmpeg's own ``tonemap`` filter needs
``zscale`` to linearise first, which PyAV's FFmpeg build lacks: hence this operator.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import av
import numpy as np

from tmlsr_ray.models.yuv import SWS_MATRIX_TAG, UNTAGGED, nearest_sws_matrix
from tmlsr_ray.pipeline.video_info import VideoInfo


TRC_PQ, TRC_HLG = 16, 18  # ITU-T H.273 transfer characteristics
HDR_TRANSFERS = {TRC_PQ: "smpte2084", TRC_HLG: "arib-std-b67"}
SDR_BT709 = {"color_primaries": 1, "color_trc": 1, "colorspace": 1, "color_range": 1}
REFERENCE_WHITE_NITS = 203.0
# BT.2408 puts HDR reference white at SDR's 100%, so SDR white is shown as 203 nits (libplacebo's
# SDR white too): the tone map's target peak.
SDR_WHITE_NITS = REFERENCE_WHITE_NITS
HLG_DISPLAY_NITS = 1000.0

DEFAULT_PQ_PEAK_NITS = 1000.0  # a PQ stream that states no light level: the usual grading peak

Chromaticity = Tuple[float, float]
D65, ILLUMINANT_C, DCI_WHITE = (0.3127, 0.3290), (0.310, 0.316), (0.314, 0.351)
# ITU-T H.273 colour primaries: red, green, blue and white (x, y).
PRIMARIES: Dict[int, Tuple[Chromaticity, Chromaticity, Chromaticity, Chromaticity]] = {
    1: ((0.640, 0.330), (0.300, 0.600), (0.150, 0.060), D65),  # BT.709
    4: ((0.670, 0.330), (0.210, 0.710), (0.140, 0.080), ILLUMINANT_C),  # BT.470 M
    5: ((0.640, 0.330), (0.290, 0.600), (0.150, 0.060), D65),  # BT.470 BG
    6: ((0.630, 0.340), (0.310, 0.595), (0.155, 0.070), D65),  # SMPTE 170M
    7: ((0.630, 0.340), (0.310, 0.595), (0.155, 0.070), D65),  # SMPTE 240M
    8: ((0.681, 0.319), (0.243, 0.692), (0.145, 0.049), ILLUMINANT_C),  # generic film
    9: ((0.708, 0.292), (0.170, 0.797), (0.131, 0.046), D65),  # BT.2020 / BT.2100
    11: ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060), DCI_WHITE),  # SMPTE RP 431-2 (DCI-P3)
    12: ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060), D65),  # SMPTE EG 432-1 (Display P3)
    22: ((0.630, 0.340), (0.295, 0.605), (0.155, 0.077), D65),  # EBU Tech 3213-E
}
BT2020 = 9
BRADFORD = np.array([[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]])


def written_colour(info: VideoInfo) -> Dict[str, int]:
    """The tags of what the encoder writes for a source: a matrix swscale has none for (BT.2020
    constant luminance, YCgCo, ICtCp) is decoded and written in the nearest it has, and tagged so.

    An untagged matrix is read and written as BT.601, as FFmpeg does, so the YUV comes back as it
    was; players take an untagged stream for BT.601 below HD size only (mpv's rule; VLC's looks at
    the height alone), so an untagged SD source's output, upscaled to HD, says BT.601 (untagged,
    it showed with its hues shifted: reds toward orange, greens toward yellow). An untagged HD
    source stays untagged and shows as it did. An RGB source's YUV is ours (BT.601), and says so
    at every size."""
    color = info.color
    if color["colorspace"] in UNTAGGED and (_rgb(info.pix_fmt) or not _taken_for_bt709(info)):
        return {**color, "colorspace": SWS_MATRIX_TAG["ITU601"]}
    matrix = nearest_sws_matrix(color["colorspace"], color["color_primaries"])
    return color if matrix is None else {**color, "colorspace": SWS_MATRIX_TAG[matrix]}


def _taken_for_bt709(info: VideoInfo) -> bool:
    return info.coded_width >= 1280 or info.coded_height > 576


def _rgb(pix_fmt: str) -> bool:
    try:
        return pix_fmt == "pal8" or av.VideoFormat(pix_fmt).is_rgb
    except ValueError:  # a format FFmpeg does not name: nothing says it is RGB
        return False


def is_hdr(color: Dict[str, int]) -> bool:
    return color.get("color_trc") in HDR_TRANSFERS


@dataclass(frozen=True)
class ToneMap:
    """HDR → SDR BT.709 for one stream: the same curve for every frame of the video."""

    transfer: int
    peak_nits: float
    to_bt709: np.ndarray  # linear RGB in the stream's primaries → linear BT.709
    # a photo's levels follow sRGB's curve, which browsers and viewers show an untagged photo by; a
    # video's BT.1886 2.4 gamma read so lifts its shadows (1 nit shown as 2.4)
    srgb: bool = False

    @classmethod
    def for_stream(cls, color: Dict[str, int], mastering: Optional[Dict[str, str]], srgb: bool = False) -> "ToneMap":
        transfer = color["color_trc"]
        peak = HLG_DISPLAY_NITS if transfer == TRC_HLG else content_peak_nits(mastering)
        return cls(transfer, peak, primaries_to_bt709(color.get("color_primaries")), srgb)

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """HDR RGB frames (uint16, full-scale code values) → SDR BT.709 (or sRGB) uint8 RGB."""
        signal = frames.astype(np.float32) / 65535.0
        nits = pq_to_nits(signal) if self.transfer == TRC_PQ else hlg_to_nits(signal)
        brightest = np.maximum(_brightest(nits), np.float32(1e-6))
        mapped = pq_to_nits(bt2390_eetf(nits_to_pq(brightest), self.peak_nits, SDR_WHITE_NITS))
        linear = nits * (mapped / (brightest * np.float32(SDR_WHITE_NITS)))
        bt709 = np.clip(linear @ self.to_bt709.T, 0.0, 1.0)
        return np.round((srgb_encoded(bt709) if self.srgb else bt709 ** (1 / 2.4)) * 255.0).astype(np.uint8)


def srgb_encoded(linear: np.ndarray) -> np.ndarray:
    """IEC 61966-2-1's inverse EOTF: linear light (0 to 1) → sRGB signal (0 to 1)."""
    return np.where(linear <= 0.0031308, linear * np.float32(12.92),
                    np.float32(1.055) * np.power(linear, np.float32(1 / 2.4)) - np.float32(0.055))


def _brightest(rgb: np.ndarray) -> np.ndarray:
    """Each pixel's largest component (channel slices: numpy reduces a trailing axis of 3 slowly)."""
    return np.maximum(np.maximum(rgb[..., 0], rgb[..., 1]), rgb[..., 2])[..., None]


def bt2390_eetf(signal: np.ndarray, source_peak_nits: float, target_peak_nits: float) -> np.ndarray:
    """ITU-R BT.2390's EETF on PQ ``signal``: what a display reaching ``target_peak_nits`` shows of
    content reaching ``source_peak_nits`` (PQ out). In PQ relative to the source's peak it is the
    identity below the knee KS = 1.5 maxLum − 0.5 and a Hermite spline above it, reaching the
    target's peak at the source's; what lies above the source's stated peak shows at the target's.
    Both blacks are 0, so BT.2390's black-level lift adds nothing and is left out."""
    source_peak = np.float32(nits_to_pq(np.float32(source_peak_nits)))
    max_lum = np.float32(nits_to_pq(np.float32(target_peak_nits))) / source_peak
    knee = 1.5 * max_lum - 0.5
    if knee >= 1.0:  # the target reaches as high as the content: nothing to compress
        return signal
    e1 = np.minimum(signal / source_peak, np.float32(1.0))
    t = np.maximum((e1 - knee) / (1.0 - knee), np.float32(0.0))
    t2, t3 = t * t, t * t * t
    spline = (2 * t3 - 3 * t2 + 1) * knee + (t3 - 2 * t2 + t) * (1.0 - knee) + (-2 * t3 + 3 * t2) * max_lum
    return np.where(e1 < knee, e1, spline) * source_peak


def content_peak_nits(mastering: Optional[Dict[str, str]]) -> float:
    """The brightest the content is said to get: MaxCLL, else the mastering display's peak
    (x26x notation, 1/10000 cd/m²), else :data:`DEFAULT_PQ_PEAK_NITS`; at least reference white."""
    mastering = mastering or {}
    max_cll = int(mastering.get("cll", "0,0").split(",")[0])
    display = re.search(r"L\((\d+),", mastering.get("master_display", ""))
    for nits in (max_cll, int(display.group(1)) / 10000 if display else 0):
        if nits > 0:
            return float(min(max(nits, REFERENCE_WHITE_NITS), 10000.0))
    return DEFAULT_PQ_PEAK_NITS


def primaries_to_bt709(primaries: Optional[int]) -> np.ndarray:
    """Linear RGB in H.273 ``primaries`` → linear BT.709 (Bradford-adapted to D65 where the white
    differs). Unstated or unknown primaries on an HDR stream are BT.2020, as BT.2100 defines."""
    source = PRIMARIES.get(primaries, PRIMARIES[BT2020])
    to_xyz = rgb_to_xyz(source)
    if source[3] != D65:
        to_xyz = bradford(xyz_of(source[3]), xyz_of(D65)) @ to_xyz
    return (np.linalg.inv(rgb_to_xyz(PRIMARIES[1])) @ to_xyz).astype(np.float32)


def xyz_of(chromaticity: Chromaticity) -> np.ndarray:
    """XYZ of a chromaticity at luminance 1."""
    x, y = chromaticity
    return np.array([x / y, 1.0, (1 - x - y) / y])


def rgb_to_xyz(primaries: Tuple[Chromaticity, Chromaticity, Chromaticity, Chromaticity]) -> np.ndarray:
    """Linear RGB → XYZ for red, green, blue and white chromaticities (a :data:`PRIMARIES` entry):
    its columns are the primaries, scaled so that RGB 1, 1, 1 is the white at luminance 1."""
    columns = np.stack([xyz_of(primary) for primary in primaries[:3]], axis=1)
    return columns * np.linalg.solve(columns, xyz_of(primaries[3]))


def bradford(source_white: np.ndarray, target_white: np.ndarray) -> np.ndarray:
    """The Bradford chromatic adaptation of XYZ from one white (XYZ) to another."""
    gains = (BRADFORD @ target_white) / (BRADFORD @ source_white)
    return np.linalg.inv(BRADFORD) @ np.diag(gains) @ BRADFORD


PQ_M1, PQ_M2 = 2610 / 16384, 2523 / 4096 * 128  # SMPTE ST 2084's constants
PQ_C1, PQ_C2, PQ_C3 = 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32


def pq_to_nits(signal: np.ndarray) -> np.ndarray:
    """SMPTE ST 2084 EOTF."""
    powered = np.power(np.clip(signal, 0, 1), 1 / PQ_M2)
    return 10000.0 * np.power(np.maximum(powered - PQ_C1, 0) / (PQ_C2 - PQ_C3 * powered), 1 / PQ_M1)


def nits_to_pq(nits: np.ndarray) -> np.ndarray:
    """SMPTE ST 2084 inverse EOTF."""
    powered = np.power(np.clip(nits / 10000.0, 0, 1), PQ_M1)
    return np.power((PQ_C1 + PQ_C2 * powered) / (1 + PQ_C3 * powered), PQ_M2)


def hlg_to_nits(signal: np.ndarray, display_nits: float = HLG_DISPLAY_NITS) -> np.ndarray:
    """BT.2100 HLG: inverse OETF to scene light, then the OOTF of a ``display_nits`` display."""
    a, b = 0.17883277, 0.28466892
    c = 0.5 - a * np.log(4 * a)
    signal = np.clip(signal, 0, 1)
    scene = np.where(signal <= 0.5, signal * signal / 3.0, (np.exp((signal - c) / a) + b) / 12.0)
    gamma = 1.2 + 0.42 * np.log10(display_nits / 1000.0)
    luminance = scene @ np.array([0.2627, 0.6780, 0.0593], dtype=np.float32)
    return display_nits * np.power(np.maximum(luminance, 1e-9), gamma - 1)[..., None] * scene


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
