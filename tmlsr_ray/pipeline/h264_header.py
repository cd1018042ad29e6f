"""Whether an H.264 packet starts at a recovery point, or holds no picture, read from its NAL unit
headers (no decoding): an intra-refresh stream flags keyframes at recovery points, predicted
pictures that a column of intra blocks sweeps from, and a decoder started at one gives none of its
frames until its pictures are whole (H.264 7.4.1.2, D.2.8)."""

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
# SEI, access unit delimiter, end of sequence, end of stream, filler data (H.264 table 7-1): NAL
# units with no picture and nothing a later picture is decoded with
NO_PICTURE_NAL_TYPES = (6, 9, 10, 11, 12)


def nal_length_size(extradata: Optional[bytes]) -> int:
    """The bytes each NAL unit's length takes in packets of a stream with this decoder
    configuration (its lengthSizeMinusOne), else 0: NAL units after start codes (a raw stream's, a
    transport stream's)."""
    return (extradata[4] & 3) + 1 if extradata and len(extradata) > 4 and extradata[0] == AVCC_VERSION else 0


def starts_at_recovery_point(data: BytesLike, length_size: int = 0) -> bool:
    """Whether the packet holds a predicted picture other than IDR and no IDR picture: an
    intra-refresh stream's keyframe (or a keyframe flag on any picture). An open GOP's keyframe,
    an intra picture, is whole at once; a packet whose headers are unreadable holds no slice."""
    units = [(nal_header & NAL_TYPE_BITS, after) for nal_header, after in _nal_units(bytes(data), length_size)]
    slices = [header for kind, header in units if kind == NON_IDR_SLICE]
    return bool(slices) and IDR_SLICE not in (kind for kind, _ in units) and not _intra(slices[0])


def holds_no_picture(data: BytesLike, length_size: int = 0) -> bool:
    """Whether the packet's NAL units are all of NO_PICTURE_NAL_TYPES, read whole (no forbidden
    bit, no reference flag): what an encoder or muxer leaves after a raw stream's last picture,
    which FFmpeg's parser makes a packet of and its decoder refuses ('no frame!') as if damaged."""
    units = _nal_units(bytes(data), length_size)
    return bool(units) and all(nal_header in NO_PICTURE_NAL_TYPES for nal_header, _ in units)


def _nal_units(data: bytes, length_size: int) -> List[Tuple[int, bytes]]:
    """The packet's NAL units, each its NAL header byte and its first bytes after it: each after
    its length of ``length_size`` bytes (MP4, Matroska), or after start codes (0). Told apart by
    the packet's first bytes, a length of 256 to 511 bytes read as a start code, and an MP4's
    P-frame as SEI."""
    if not length_size:
        starts = [found.end() for found in START_CODE.finditer(data) if found.end() < len(data)]
        return [(data[at], data[at + 1:at + 1 + SLICE_HEADER_BYTES]) for at in starts]
    units, at = [], 0
    while at + length_size < len(data):
        header = at + length_size
        units.append((data[header], data[header + 1:header + 1 + SLICE_HEADER_BYTES]))
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
