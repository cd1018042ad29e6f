"""The colour a HEIC or AVIF states in an ``nclx`` box (ITU-T H.273 code points) as an ICC profile.

Phones and Chrome tag a photo's colour with the box alone, no ICC profile: PNG and JPEG have no
such tag, so without a profile the output was shown as sRGB (a Display P3 photo less saturated).
The profile is matrix/TRC, ICC v4: colourants adapted to D50 (Bradford), the transfer as a
parametric curve. HDR transfers (PQ, HLG) are not display curves an ICC matrix/TRC holds: none
(a PNG states them in its cICP chunk instead). An ICC v4.4 profile may state them all the same, in
its ``cicp`` tag, read here.
"""

from __future__ import annotations

import struct
from typing import Optional

import numpy as np

from tmlsr_ray.pipeline.colour import PRIMARIES, bradford, rgb_to_xyz, xyz_of

# transfer_characteristics: ICC parametric curve type 3, Y = (aX + b)^g for X >= d, else cX
SRGB_CURVE = (2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045)
BT709_CURVE = (1 / 0.45, 1 / 1.099, 0.099 / 1.099, 1 / 4.5, 0.081)  # what Chrome shows these as too
TRANSFERS = {1: BT709_CURVE, 6: BT709_CURVE, 14: BT709_CURVE, 15: BT709_CURVE, 13: SRGB_CURVE,
             4: (2.2, 1.0, 0.0, 0.0, 0.0), 5: (2.8, 1.0, 0.0, 0.0, 0.0), 8: (1.0, 1.0, 0.0, 0.0, 0.0)}
SRGB = (1, 13)  # what a viewer assumes untagged: no profile needed
D50 = np.array([0.9642, 1.0, 0.8249])  # ICC's PCS white
CICP_SIGNATURE = int.from_bytes(b"cicp", "big")


def displayable(primaries: int, transfer: int) -> bool:
    """Whether these code points state an SDR colour a matrix/TRC profile holds (sRGB's needs none)."""
    return (primaries, transfer) == SRGB or (primaries in PRIMARIES and transfer in TRANSFERS)


def icc_from_nclx(primaries: int, transfer: int) -> Optional[bytes]:
    """An ICC profile for these code points; None for sRGB, unspecified, unknown or HDR ones."""
    if (primaries, transfer) == SRGB or not displayable(primaries, transfer):
        return None
    to_xyz = rgb_to_xyz(PRIMARIES[primaries])
    adapt = bradford(xyz_of(PRIMARIES[primaries][3]), D50)
    colourants = adapt @ to_xyz  # columns: red, green, blue as a D50 display shows them
    curve = b"para" + bytes(4) + struct.pack(">HH", 3, 0) + b"".join(_s15(v) for v in TRANSFERS[transfer])
    tags = [(b"desc", _mluc(f"nclx {primaries}/{transfer}")), (b"cprt", _mluc("No copyright")),
            (b"wtpt", _xyz(D50)), (b"chad", b"sf32" + bytes(4) + b"".join(_s15(v) for v in adapt.flat)),
            (b"rXYZ", _xyz(colourants[:, 0])), (b"gXYZ", _xyz(colourants[:, 1])), (b"bXYZ", _xyz(colourants[:, 2])),
            (b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve)]
    return _profile(tags)


def icc_cicp(profile: Optional[bytes]) -> Optional[bytes]:
    """The four code point bytes (primaries, transfer, matrix, full range) of an RGB ICC profile's
    ``cicp`` tag (ICC.1:2022, v4.4); None where it has none, or its tag table is cut short. Not read
    in a profile of other samples (CMYK, gray, Lab: ICC.1:2022, 9.2.17, allows the tag in none of
    them): its matrix 0 speaks of RGB samples."""
    if not profile or len(profile) < 132 or profile[16:20] != b"RGB ":
        return None
    count = min(struct.unpack(">I", profile[128:132])[0], (len(profile) - 132) // 12)
    # signatures compared all at once, no tag's body copied but the cicp tag's: a table may list
    # millions of tags, each the whole profile (looking at each one's body took minutes)
    entries = np.frombuffer(profile, ">u4", count=3 * count, offset=132).reshape(count, 3)
    found = np.flatnonzero(entries[:, 0] == CICP_SIGNATURE)
    if not found.size:
        return None
    offset, size = (int(v) for v in entries[found[0], 1:])
    body = profile[offset:offset + 12]
    return body[8:12] if size >= 12 and len(body) == 12 and body[:4] == b"cicp" else None


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
