"""Whether an H.264 packet starts at a recovery point, an H.264 or HEVC packet holds no picture,
or an HEVC packet a leading picture, read from its NAL unit headers (no decoding): an
intra-refresh stream flags keyframes at recovery points, predicted pictures that a column of intra
blocks sweeps from, and a decoder started at one gives none of its frames until its pictures are
whole (H.264 7.4.1.2, D.2.8)."""

from __future__ import annotations

import re
from typing import Iterator, Optional, Tuple, Union

BytesLike = Union[bytes, memoryview]

NON_IDR_SLICE = 1
IDR_SLICE = 5
NAL_TYPE_BITS = 0x1F
FORBIDDEN_BIT = 0x80
HEVC_NAL_TYPE_BITS = 0x7E  # of its NAL header's first byte, between the forbidden bit and nuh_layer_id's
HEVC_TEMPORAL_ID_BITS = 0x07  # of its second byte: TemporalId plus 1, never 0
START_CODE = re.compile(b"\x00\x00\x01")
INTRA_SLICE_TYPES = (2, 4)  # I and SI, of slice_type modulo 5 (H.264 table 7-6)
SLICE_HEADER_BYTES = 8  # enough for first_mb_in_slice and slice_type of any picture size
NAL_BYTES_READ = 2 + SLICE_HEADER_BYTES  # HEVC's NAL header takes 2 bytes, H.264's 1
# the first byte of an MP4's or Matroska's decoder configuration (ISO 14496-15 5.3.3.1, 8.3.3.1)
CONFIGURATION_VERSION = 1
# where its lengthSizeMinusOne is: avcC's fifth byte, hvcC's 22nd
LENGTH_SIZE_AT = {"h264": 4, "hevc": 21}
# NAL units with no picture (H.264 table 7-1, HEVC table 7-1): SEI, parameter sets, access unit
# delimiter, end of sequence, end of stream (bitstream), filler data. The parameter sets a later
# picture needs come in its packet: FFmpeg's parser and MP4's samples put them there.
NO_PICTURE_NAL_TYPES = {"h264": (6, 7, 8, 9, 10, 11, 12, 13, 15), "hevc": (32, 33, 34, 35, 36, 37, 38, 39, 40)}
# of those, the parameter sets (H.264: SPS, PPS, SPS extension, subset SPS; HEVC: VPS, SPS, PPS),
# which the pictures after them refer to
PARAMETER_SET_NAL_TYPES = {"h264": (7, 8, 13, 15), "hevc": (32, 33, 34)}
HEVC_PICTURE_NAL_TYPES = range(32)  # its VCL NAL units, slices of a picture
HEVC_RASL_TYPES = (8, 9)  # random access skipped leading pictures, RASL_N and RASL_R


def nal_length_size(extradata: Optional[bytes], codec: str = "h264") -> int:
    """The bytes each NAL unit's length takes in packets of a ``codec`` stream with this decoder
    configuration (its lengthSizeMinusOne), else 0: NAL units after start codes (a raw stream's, a
    transport stream's)."""
    at = LENGTH_SIZE_AT[codec]
    return (extradata[at] & 3) + 1 if extradata and len(extradata) > at and _configuration(extradata, codec) else 0


def _configuration(extradata: bytes, codec: str) -> bool:
    """Whether ``extradata`` is a decoder configuration, not NAL units after start codes, as
    FFmpeg's decoders tell: H.264's of version 1, HEVC's any not starting with a start code (early
    muxers wrote hvcC of version 0, whose slices read after start codes could pass as SEI)."""
    if codec == "h264":
        return extradata[0] == CONFIGURATION_VERSION
    return bool(extradata[0] or extradata[1] or extradata[2] > 1)


def starts_at_recovery_point(data: BytesLike, length_size: int = 0) -> bool:
    """Whether the packet holds a predicted picture other than IDR and no IDR picture: an
    intra-refresh stream's keyframe (or a keyframe flag on any picture). An open GOP's keyframe,
    an intra picture, is whole at once; a packet whose headers are unreadable holds no slice."""
    units = [(unit[0] & NAL_TYPE_BITS, unit[1:]) for unit in _nal_units(data, length_size)]
    slices = [header for kind, header in units if kind == NON_IDR_SLICE]
    return bool(slices) and IDR_SLICE not in (kind for kind, _ in units) and not _intra(slices[0])


def holds_no_picture(data: BytesLike, length_size: int = 0, codec: str = "h264") -> bool:
    """Whether the ``codec`` packet's NAL units are all of its NO_PICTURE_NAL_TYPES, their headers
    whole: what an encoder or muxer leaves after a raw stream's last picture, which FFmpeg's parser
    makes a packet of and its decoder refuses ('no frame!') as if damaged. Read up to its first unit
    of a picture only: it runs on every packet, and a 4K keyframe's start codes took milliseconds
    to find all of."""
    no_picture = (_nal_type(unit, codec) in NO_PICTURE_NAL_TYPES[codec] for unit in _nal_units(data, length_size))
    return next(no_picture, False) and all(no_picture)


def holds_parameter_sets(data: BytesLike, length_size: int = 0, codec: str = "h264") -> bool:
    """Whether any of the ``codec`` packet's NAL units is one of its PARAMETER_SET_NAL_TYPES."""
    return any(_nal_type(unit, codec) in PARAMETER_SET_NAL_TYPES[codec] for unit in _nal_units(data, length_size))


def holds_skipped_leading_picture(data: BytesLike, length_size: int = 0) -> bool:
    """Whether the HEVC packet's picture is a RASL picture: one of an open GOP's keyframe (CRA)
    that comes before it in time and refers to pictures before it in decode order, which a decode
    started at or inside the GOP before does not have (HEVC 8.1.3)."""
    types = (_nal_type(unit, "hevc") for unit in _nal_units(data, length_size))
    # a picture's slices are all of one type (HEVC 7.4.2.2): its first tells
    return next((kind for kind in types if kind in HEVC_PICTURE_NAL_TYPES), None) in HEVC_RASL_TYPES


def _nal_type(unit: BytesLike, codec: str) -> Optional[int]:
    """The NAL unit's type, None where its header is not whole: its forbidden bit set, or HEVC's
    TemporalId plus 1 zero. H.264's nal_ref_idc is not read: some encoders set it on SEI, and a
    decoder reads the unit alike."""
    if not unit or unit[0] & FORBIDDEN_BIT:
        return None
    if codec == "h264":
        return unit[0] & NAL_TYPE_BITS
    return (unit[0] & HEVC_NAL_TYPE_BITS) >> 1 if len(unit) > 1 and unit[1] & HEVC_TEMPORAL_ID_BITS else None


def _nal_units(data: BytesLike, length_size: int) -> Iterator[memoryview]:
    """The packet's NAL units in order, each its first bytes, its NAL header's among them: each
    after its length of ``length_size`` bytes (MP4, Matroska), or after start codes (0), as the
    stream's configuration says: told apart by the packet's first bytes, a length of 256 to 511
    bytes read as a start code, and an MP4's P-frame as SEI. Found one at a time, on a view of the
    packet, not a copy: a reader that stops at a picture's unit leaves the slice data unscanned."""
    data = memoryview(data)
    if not length_size:
        yield from (data[found.end():found.end() + NAL_BYTES_READ] for found in START_CODE.finditer(data)
                    if found.end() < len(data))
        return
    at = 0
    while at + length_size < len(data):
        header = at + length_size
        yield data[header:header + NAL_BYTES_READ]
        at = header + int.from_bytes(data[at:header], "big")


def _intra(slice_header: BytesLike) -> bool:
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
