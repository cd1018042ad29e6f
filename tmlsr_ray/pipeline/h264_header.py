"""Whether an H.264 packet starts at a recovery point, read from its NAL unit headers (no
decoding): an intra-refresh stream flags keyframes at recovery points, predicted pictures that a
column of intra blocks sweeps from, and a decoder started at one gives none of its frames until
its pictures are whole (H.264 7.4.1.2, D.2.8)."""

from __future__ import annotations

import re
from typing import List, Optional, Tuple, Union

BytesLike = Union[bytes, memoryview]

NON_IDR_SLICE = 1
IDR_SLICE = 5
NAL_TYPE_BITS = 0x1F
START_CODE = re.compile(b"\x00\x00\x01")
INTRA_SLICE_TYPES = (2, 4)  # I and SI, of slice_type modulo 5 (H.264 table 7-6)
SLICE_HEADER_BYTES = 8  # enough for first_mb_in_slice and slice_type of any picture size
AVCC_VERSION = 1  # the first byte of an MP4's or Matroska's decoder configuration (ISO 14496-15 5.3.3.1)


def nal_length_size(extradata: Optional[bytes]) -> int:
    """The bytes each NAL unit's length takes in packets of a stream with this decoder
    configuration (its lengthSizeMinusOne), else 4."""
    return (extradata[4] & 3) + 1 if extradata and len(extradata) > 4 and extradata[0] == AVCC_VERSION else 4


def starts_at_recovery_point(data: BytesLike, length_size: int = 4) -> bool:
    """Whether the packet holds a predicted picture other than IDR and no IDR picture: an
    intra-refresh stream's keyframe (or a keyframe flag on any picture). An open GOP's keyframe,
    an intra picture, is whole at once; a packet whose headers are unreadable holds no slice."""
    units = _nal_units(bytes(data), length_size)
    slices = [header for kind, header in units if kind == NON_IDR_SLICE]
    return bool(slices) and IDR_SLICE not in (kind for kind, _ in units) and not _intra(slices[0])


def _nal_units(data: bytes, length_size: int) -> List[Tuple[int, bytes]]:
    """The packet's NAL units, each its type and its first bytes after the NAL header: after
    start codes (a raw stream's, a transport stream's), else each after its length (MP4, Matroska)."""
    if data.startswith(b"\x00\x00\x01") or data.startswith(b"\x00\x00\x00\x01"):
        starts = [found.end() for found in START_CODE.finditer(data) if found.end() < len(data)]
        return [(data[at] & NAL_TYPE_BITS, data[at + 1:at + 1 + SLICE_HEADER_BYTES]) for at in starts]
    units, at = [], 0
    while at + length_size < len(data):
        header = at + length_size
        units.append((data[header] & NAL_TYPE_BITS, data[header + 1:header + 1 + SLICE_HEADER_BYTES]))
        at = header + int.from_bytes(data[at:header], "big")
    return units


def _intra(slice_header: bytes) -> bool:
    """Whether a slice header's slice_type, after first_mb_in_slice (both Exp-Golomb), is I or SI."""
    bits = "".join(f"{byte:08b}" for byte in slice_header)
    _, at = _exp_golomb(bits, 0)
    slice_type, _ = _exp_golomb(bits, at)
    return slice_type is not None and slice_type % 5 in INTRA_SLICE_TYPES


def _exp_golomb(bits: str, at: int) -> Tuple[Optional[int], int]:
    """The unsigned Exp-Golomb number at bit ``at`` and the bit after it (None: the bits run out)."""
    zeros = bits.find("1", at) - at
    end = at + 2 * zeros + 1
    if zeros < 0 or end > len(bits):
        return None, len(bits)
    return int(bits[at + zeros:end], 2) - 1, end
