"""The colour a HEIC or AVIF states in an ``nclx`` box (ITU-T H.273 code points) as an ICC profile.

Phones and Chrome tag a photo's colour with the box alone, no ICC profile: PNG and JPEG have no
such tag, so without a profile the output was shown as sRGB (a Display P3 photo less saturated).
The profile is matrix/TRC, ICC v4: colourants adapted to D50 (Bradford), the transfer as a
parametric curve. HDR transfers (PQ, HLG) are not display curves an ICC matrix/TRC holds: none
(a PNG states them in its cICP chunk instead).
"""

from __future__ import annotations

import struct
from typing import Dict, Optional, Tuple

import numpy as np

# colour_primaries: red, green, blue and white (x, y)
PRIMARIES: Dict[int, Tuple[Tuple[float, float], ...]] = {
    1: ((0.640, 0.330), (0.300, 0.600), (0.150, 0.060), (0.3127, 0.3290)),  # BT.709 / sRGB
    5: ((0.640, 0.330), (0.290, 0.600), (0.150, 0.060), (0.3127, 0.3290)),  # BT.601 625
    6: ((0.630, 0.340), (0.310, 0.595), (0.155, 0.070), (0.3127, 0.3290)),  # BT.601 525
    7: ((0.630, 0.340), (0.310, 0.595), (0.155, 0.070), (0.3127, 0.3290)),  # SMPTE 240M
    9: ((0.708, 0.292), (0.170, 0.797), (0.131, 0.046), (0.3127, 0.3290)),  # BT.2020
    11: ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060), (0.314, 0.351)),  # DCI-P3
    12: ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060), (0.3127, 0.3290)),  # Display P3
}
# transfer_characteristics: ICC parametric curve type 3, Y = (aX + b)^g for X >= d, else cX
SRGB_CURVE = (2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045)
BT709_CURVE = (1 / 0.45, 1 / 1.099, 0.099 / 1.099, 1 / 4.5, 0.081)  # what Chrome shows these as too
TRANSFERS = {1: BT709_CURVE, 6: BT709_CURVE, 14: BT709_CURVE, 15: BT709_CURVE, 13: SRGB_CURVE,
             4: (2.2, 1.0, 0.0, 0.0, 0.0), 5: (2.8, 1.0, 0.0, 0.0, 0.0), 8: (1.0, 1.0, 0.0, 0.0, 0.0)}
SRGB = (1, 13)  # what a viewer assumes untagged: no profile needed
D50 = np.array([0.9642, 1.0, 0.8249])
BRADFORD = np.array([[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]])


def icc_from_nclx(primaries: int, transfer: int) -> Optional[bytes]:
    """An ICC profile for these code points; None for sRGB, unspecified, unknown or HDR ones."""
    if (primaries, transfer) == SRGB or primaries not in PRIMARIES or transfer not in TRANSFERS:
        return None
    to_xyz, white = _rgb_to_xyz(PRIMARIES[primaries])
    adapt = _bradford(white, D50)
    colourants = adapt @ to_xyz  # columns: red, green, blue as a D50 display shows them
    curve = b"para" + bytes(4) + struct.pack(">HH", 3, 0) + b"".join(_s15(v) for v in TRANSFERS[transfer])
    tags = [(b"desc", _mluc(f"nclx {primaries}/{transfer}")), (b"cprt", _mluc("No copyright")),
            (b"wtpt", _xyz(D50)), (b"chad", b"sf32" + bytes(4) + b"".join(_s15(v) for v in adapt.flat)),
            (b"rXYZ", _xyz(colourants[:, 0])), (b"gXYZ", _xyz(colourants[:, 1])), (b"bXYZ", _xyz(colourants[:, 2])),
            (b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve)]
    return _profile(tags)


def _rgb_to_xyz(primaries) -> Tuple[np.ndarray, np.ndarray]:
    def xyz(x, y):
        return np.array([x / y, 1.0, (1 - x - y) / y])
    columns = np.stack([xyz(*p) for p in primaries[:3]], axis=1)
    white = xyz(*primaries[3])
    return columns * np.linalg.solve(columns, white), white


def _bradford(source_white: np.ndarray, target_white: np.ndarray) -> np.ndarray:
    gains = (BRADFORD @ target_white) / (BRADFORD @ source_white)
    return np.linalg.inv(BRADFORD) @ np.diag(gains) @ BRADFORD


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz(values) -> bytes:
    return b"XYZ " + bytes(4) + b"".join(_s15(v) for v in values)


def _mluc(text: str) -> bytes:
    raw = text.encode("utf-16-be")
    return b"mluc" + bytes(4) + struct.pack(">II2s2sII", 1, 12, b"en", b"US", len(raw), 28) + raw


def _profile(tags) -> bytes:
    """Header, tag table and tags, each on a 4-byte boundary (ICC.1:2022, section 7)."""
    offset = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for signature, body in tags:
        body += bytes(-len(body) % 4)
        table += signature + struct.pack(">II", offset + len(data), len(body))
        data += body
    header = (struct.pack(">I", offset + len(data)) + bytes(4) + bytes([4, 0x30, 0, 0]) + b"mntrRGB XYZ "
              + bytes(12) + b"acsp" + bytes(4) + bytes(4) + bytes(4) + bytes(4) + bytes(8) + bytes(4)
              + _xyz(D50)[8:] + bytes(4) + bytes(16) + bytes(28))
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + data
