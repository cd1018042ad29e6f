"""Whether an H.264 packet starts its pictures afresh, read from its NAL unit headers (no
decoding): an intra-refresh stream flags keyframes at recovery points, pictures other than IDR
that a column of intra blocks sweeps from, and a decoder started at one gives none of its frames
until its pictures are whole (H.264 7.4.1.2, D.2.8)."""

from __future__ import annotations

import re
from typing import List, Optional, Union

BytesLike = Union[bytes, memoryview]

NON_IDR_SLICE = 1
IDR_SLICE = 5
NAL_TYPE_BITS = 0x1F
START_CODE = re.compile(b"\x00\x00\x01")
AVCC_VERSION = 1  # the first byte of an MP4's or Matroska's decoder configuration (ISO 14496-15 5.3.3.1)


def nal_length_size(extradata: Optional[bytes]) -> int:
    """The bytes each NAL unit's length takes in packets of a stream with this decoder
    configuration (its lengthSizeMinusOne), else 4."""
    return (extradata[4] & 3) + 1 if extradata and len(extradata) > 4 and extradata[0] == AVCC_VERSION else 4


def starts_at_recovery_point(data: BytesLike, length_size: int = 4) -> bool:
    """Whether the packet holds slices of a picture other than IDR and none of an IDR picture (a
    packet whose headers are unreadable holds neither)."""
    types = _nal_types(bytes(data), length_size)
    return NON_IDR_SLICE in types and IDR_SLICE not in types


def _nal_types(data: bytes, length_size: int) -> List[int]:
    """The packet's NAL unit types: after start codes (a raw stream's, a transport stream's), else
    each after its length (MP4, Matroska)."""
    if data.startswith(b"\x00\x00\x01") or data.startswith(b"\x00\x00\x00\x01"):
        return [data[found.end()] & NAL_TYPE_BITS for found in START_CODE.finditer(data) if found.end() < len(data)]
    types, at = [], 0
    while at + length_size < len(data):
        types.append(data[at + length_size] & NAL_TYPE_BITS)
        at += length_size + int.from_bytes(data[at:at + length_size], "big")
    return types
