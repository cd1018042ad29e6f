"""Whether an H.264 packet starts at a recovery point, an H.264 or HEVC packet holds no picture,
or an HEVC packet a leading picture, and which pictures an H.264 stream after start codes lacks,
read from its NAL unit headers (no decoding): an
intra-refresh stream flags keyframes at recovery points, predicted pictures that a column of intra
blocks sweeps from, and a decoder started at one gives none of its frames until its pictures are
whole (H.264 7.4.1.2, D.2.8)."""

from __future__ import annotations

import heapq
import re
from typing import Dict, Iterator, List, NamedTuple, Optional, Tuple, Union

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
# and the SEI that goes before a picture (HEVC's suffix SEI is the picture's before), which holds
# what the decoder gives with the next frame: HDR10's mastering display and light level
PREFIX_SEI_NAL_TYPES = {"h264": (6,), "hevc": (39,)}
HEVC_PICTURE_NAL_TYPES = range(32)  # its VCL NAL units, slices of a picture
HEVC_RASL_TYPES = (8, 9)  # random access skipped leading pictures, RASL_N and RASL_R
SEQUENCE_PARAMETER_SET, PICTURE_PARAMETER_SET = 7, 8
EMULATION_PREVENTION = re.compile(b"\x00\x00\x03")
# profiles whose SPS carries chroma format, bit depths and scaling matrices (H.264 7.3.2.1.1)
HIGH_PROFILES = (100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135)
# of a parameter set or a slice header: an SPS's scaling matrices, a slice's weight table
SLICE_HEADER_READ = 256
NAL_REFERENCE_BITS = 0x60  # nal_ref_idc
NON_ZERO = re.compile(b"[^\x00]")
P_SLICE, B_SLICE, SP_SLICE = 0, 1, 3  # slice_type modulo 5
MEMORY_RESET = 5  # memory_management_control_operation 5: references, frame_num and count start over
# the Exp-Golomb fields each memory_management_control_operation takes (H.264 7.3.3.3)
MEMORY_OPERATION_FIELDS = {1: 1, 2: 1, 3: 2, 4: 1, 6: 1}
# what is left of a start code a bit error hit: only what H.264 7.4.1 keeps out of every NAL unit,
# 00 00 00 (zeros before a start code's 01 are trailing_zero_8bits), 00 00 02, and 00 00 03 before
# a byte above 03 (03 ends a NAL unit only before a start code's or trailing zeros' 00). 00 00 04 to
# FF are valid data (x264's slices hold them), so a 3-byte start code hit to 00 00 81 is not told.
# A start code or a damaged one (its group): a packet's units and its damage found in one scan,
# 00 00 first (a literal prefix the scan skips ahead by)
START_CODE_OR_BROKEN = re.compile(b"\x00\x00(?:\x01|(\x00+[^\x00\x01]|\x02|\x03[\x04-\xff]))")
ACCESS_UNIT_DELIMITER = 0x09  # its NAL header: nal_ref_idc 0, type 9
ORDER_WINDOW = 32  # pictures held back for display order: twice what a decoder may hold (16)
STEP_KINDS = 64  # steps between counts told apart: more keep to no step
BYTE_BITS = [f"{byte:08b}" for byte in range(256)]


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
    """Whether the packet's first picture is a predicted one other than IDR: an
    intra-refresh stream's keyframe (or a keyframe flag on any picture). An open GOP's keyframe,
    an intra picture, is whole at once; a packet whose headers are unreadable holds no slice.
    Read up to its first slice, whose type a picture's others share: it runs on every keyframe,
    and an all-intra 4K stream's took 1.4 ms each to find all start codes of."""
    units = ((unit[0] & NAL_TYPE_BITS, unit[1:]) for unit in _nal_units(data, length_size))
    kind, header = next(((kind, header) for kind, header in units if kind in (NON_IDR_SLICE, IDR_SLICE)), (None, b""))
    return kind == NON_IDR_SLICE and not _intra(header)


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
    return _holds_any(data, length_size, PARAMETER_SET_NAL_TYPES[codec], codec)


def holds_prefix_sei(data: BytesLike, length_size: int = 0, codec: str = "h264") -> bool:
    """Whether any of the ``codec`` packet's NAL units is one of its PREFIX_SEI_NAL_TYPES."""
    return _holds_any(data, length_size, PREFIX_SEI_NAL_TYPES[codec], codec)


def _holds_any(data: BytesLike, length_size: int, types: Tuple[int, ...], codec: str) -> bool:
    return any(_nal_type(unit, codec) in types for unit in _nal_units(data, length_size))


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


def _nal_units(data: BytesLike, length_size: int, size: int = NAL_BYTES_READ,
               start_codes: Optional["re.Pattern[bytes]"] = None) -> Iterator[memoryview]:
    """The packet's NAL units in order, each its first ``size`` bytes, its NAL header's among them: each
    after its length of ``length_size`` bytes (MP4, Matroska), or after start codes (0), as the
    stream's configuration says: told apart by the packet's first bytes, a length of 256 to 511
    bytes read as a start code, and an MP4's P-frame as SEI. Found one at a time, on a view of the
    packet, not a copy: a reader that stops at a picture's unit leaves the slice data unscanned.
    ``start_codes`` (else START_CODE) may find damaged start codes in the same scan (its group,
    START_CODE_OR_BROKEN's): each gives an empty unit, in its place."""
    data = memoryview(data)
    if not length_size:
        yield from (data[found.end():found.end() + size] if found.lastindex is None else data[:0]
                    for found in (start_codes or START_CODE).finditer(data)
                    if found.end() < len(data) or found.lastindex)
        return
    at = 0
    while at + length_size < len(data):
        header = at + length_size
        yield data[header:header + size]
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


class _Sequence(NamedTuple):
    """What an SPS tells of its slice headers."""
    frame_num_bits: int
    order_bits: Optional[int]  # of pic_order_cnt_lsb; None: the count follows frame_num (type 2)
    chroma: bool  # ChromaArrayType not 0: chroma weights in a slice's weight table
    frame_num_gaps: bool  # gaps_in_frame_num_value_allowed_flag: frame_num may skip on purpose


class _PictureSet(NamedTuple):
    """What a PPS tells of its slice headers."""
    sequence: int
    bottom_order: bool  # bottom_field_pic_order_in_frame_present_flag
    references: Tuple[int, int]  # num_ref_idx_l0_default_active, l1
    weighted: Tuple[bool, bool]  # weighted_pred_flag; weighted_bipred_idc 1 (explicit)
    redundant: bool  # redundant_pic_cnt_present_flag


class _Slice(NamedTuple):
    """A picture's first slice's header, what PictureOrderGaps reads of it."""
    frame_num: int
    order_lsb: Optional[int]  # None where the SPS puts no count in the slice headers (type 2)
    reference: bool
    idr: bool
    memory_reset: bool  # memory_management_control_operation 5
    redundant: bool


class PictureOrderGaps:
    """The pictures a progressive H.264 stream after start codes (raw, MPEG-TS) lacks: where a
    picture's start code is damaged, FFmpeg's parser runs its bytes into a neighbour's packet (it
    finds pictures by start codes, as this does), and the decoder gives a frame a packet, the lost
    one's left out with no word.

    A gap in the picture order counts (H.264 8.2.1.1) alone is no sign of loss: a good stream
    thinned of its unreferenced pictures (trick play), or one whose count follows capture time,
    has such gaps. A picture counts as lost only where the stream shows one went: a reference
    picture's frame_num skipped where the SPS forbids it (the standard reads that as a loss,
    8.2.5.2), or a packet holds what is left of a start code (bytes that emulation prevention
    keeps out of every NAL unit, 7.4.1; an access unit delimiter longer than its one byte). The
    counts' gaps (in steps of the smallest) then bound how many went, since a start code lost
    between two slices of one picture, or before its first (its packet then starts at its second,
    whose header is read), loses no picture; a lost unreferenced picture whose start
    code left no such bytes is not told. Counts restart at an IDR picture and at MMCO 5.
    Where the count follows frame_num (type 2, x264's without B-frames), pictures show in decode
    order and no two unreferenced ones follow each other (7.4.2.1.1): a lost reference picture
    is told by frame_num alone, every picture of x264's being one; a lost unreferenced picture
    not (the reference picture after it has its frame_num, 7.4.3), nor read from bytes, which no
    count gap bounds. Unchecked (none lacking) where the counts' offsets cycle (type 1, which no
    writer here makes), fields may be coded, or a header could not be read."""

    def __init__(self):
        self._sequences: Dict[int, _Sequence] = {}
        self._picture_sets: Dict[int, _PictureSet] = {}
        self.checked = True
        self._evidence = 0  # start codes found damaged
        self._references_lost = 0
        self._evidence_at: Optional[float] = None  # where a loss was first seen
        self._frame_num: Optional[int] = None  # the last reference picture's, where read
        self._reference = (0, 0)  # the last reference picture's count's msb and lsb
        # the period's (since an IDR or MMCO 5) pictures not yet in display order: (count, order
        # read, owned); None where one could not be read (a recording started inside the stream)
        self._pending: Optional[List[Tuple[int, int, bool]]] = []
        self._pictures_read = 0
        self._shown: Optional[int] = None  # the count of the period's last picture in display order
        # the steps between counts in display order: how many a decode's own pictures follow;
        # None where the counts keep to no step (more kinds than STEP_KINDS)
        self._steps: Optional[Dict[int, int]] = {}

    def read(self, data: BytesLike, where: Optional[float] = None, owned: bool = True) -> None:
        """Reads one packet's NAL units; ``where``: its place, in seconds, where known; ``owned``:
        whether its pictures are this decode's to count (a segment's own frame, not pre-roll whose
        segment counts it)."""
        broken, overlong, sliced = 0, False, False
        try:
            for unit in _nal_units(data, 0, SLICE_HEADER_READ, START_CODE_OR_BROKEN):
                broken += not unit
                overlong = overlong or _overlong_delimiter(unit)
                sliced = self._read_unit(unit, where, owned, not sliced) or sliced
        except ValueError:  # a header this does not read
            self.checked = False
            return
        # a damaged picture's bytes run into an access unit delimiter where no start code is left;
        # counted in pre-roll too: only a gap among the decode's own pictures counts (see order_gaps),
        # and a picture run into the last packet of the segment before leaves its gap in this one
        damaged = broken or int(overlong)
        if damaged:
            self._evidence += damaged
            self._evidence_at = where if self._evidence_at is None else self._evidence_at

    def _read_unit(self, unit: bytes, where: Optional[float], owned: bool, first_slice: bool) -> bool:
        """Reads a parameter set or a picture's slice; whether the unit is a slice."""
        kind = _nal_type(unit, "h264")
        if kind == SEQUENCE_PARAMETER_SET:
            sequence, fields = _read_sequence(RbspBits(unit[1:]))
            self._sequences[sequence] = fields
        elif kind == PICTURE_PARAMETER_SET:
            picture_set, fields = _read_picture_set(RbspBits(unit[1:]))
            self._picture_sets[picture_set] = fields
        elif kind in (NON_IDR_SLICE, IDR_SLICE):
            self._read_picture(unit, where, owned, first_slice)
        return kind in (NON_IDR_SLICE, IDR_SLICE)

    def _read_picture(self, unit: bytes, where: Optional[float], owned: bool, first_slice: bool) -> None:
        bits = RbspBits(unit[1:])
        # first_mb_in_slice: past 0, another slice of a picture read, unless the packet's first: the
        # slices before lost their start code to damage, ran into the packet before, and the
        # decoder still gives the picture (its lost slices concealed), which is not lacking
        if bits.number() != 0 and not first_slice:
            return
        slice_type = bits.number() % 5
        picture_set = self._picture_sets.get(bits.number())
        sequence = self._sequences.get(picture_set.sequence) if picture_set else None
        if sequence is None:  # before its parameter sets: a recording started inside the stream
            self._pending, self._frame_num = None, None
            return
        header = _read_slice(bits, unit[0], slice_type, picture_set, sequence)
        if header.redundant:
            return
        self._check_frame_num(header, sequence, where, owned)
        if header.idr or header.memory_reset:
            self._start_period()
        if header.order_lsb is None:  # shown in decode order: frame_num tells all its count would
            return
        count = 0 if header.memory_reset else self._count(header.order_lsb, sequence.order_bits, header.reference)
        self._add(count, owned)

    def _check_frame_num(self, header: _Slice, sequence: _Sequence, where: Optional[float], owned: bool) -> None:
        """Counts the reference pictures whose frame_num the picture's skips (H.264 7.4.3)."""
        if header.idr:
            self._frame_num = None
        whole = 1 << sequence.frame_num_bits
        if self._frame_num is not None and not sequence.frame_num_gaps and header.frame_num != self._frame_num:
            lost = (header.frame_num - self._frame_num - 1) % whole
            if owned and lost:
                self._references_lost += lost
                self._evidence_at = where if self._evidence_at is None else self._evidence_at
            # the lost ones taken as read, as a decoder infers them (8.2.5.2): each gap counted once
            self._frame_num = (header.frame_num - 1) % whole
        if header.reference:
            self._frame_num = 0 if header.memory_reset else header.frame_num

    def _start_period(self) -> None:
        """An IDR picture or MMCO 5: the pictures before are shown before it, its count is 0."""
        self._shown_in_order(self._pending or [])
        self._pending, self._shown, self._reference = [], None, (0, 0)

    def _count(self, lsb: int, order_bits: int, reference: bool) -> int:
        """The picture order count of a picture whose lsb is ``lsb`` (H.264 8-3 to 8-5)."""
        whole, (msb, before) = 1 << order_bits, self._reference
        if lsb < before and before - lsb >= whole // 2:
            msb += whole
        elif lsb > before and lsb - before > whole // 2:
            msb -= whole
        if reference:
            self._reference = (msb, lsb)
        return msb + lsb

    def _add(self, count: int, owned: bool) -> None:
        """Holds the picture until those shown before it are read: a decoder holds back no more."""
        if self._pending is None:
            return
        self._pictures_read += 1
        heapq.heappush(self._pending, (count, self._pictures_read, owned))
        if len(self._pending) > ORDER_WINDOW:
            self._shown_in_order([heapq.heappop(self._pending)])

    def _shown_in_order(self, pictures: List[Tuple[int, int, bool]]) -> None:
        if self._steps is not None:
            self._shown = _step_on(self._shown, self._steps, pictures)
            self._steps = self._steps if len(self._steps) <= STEP_KINDS else None

    def order_gaps(self) -> Optional[int]:
        """The pictures the counts skip, each step a multiple of the smallest; None where they keep
        to no step."""
        if self._steps is None:
            return None
        steps = dict(self._steps)
        _step_on(self._shown, steps, self._pending or [])
        step = min(steps, default=0)
        if not step or any(other % step for other in steps):
            return None
        return sum((other // step - 1) * owned for other, owned in steps.items())

    def missing(self) -> Tuple[int, Optional[float]]:
        """How many pictures the stream lacks, and where a loss was first seen (its packet's
        place, where known)."""
        if not self.checked:
            return 0, None
        gaps = self.order_gaps()
        # a reference picture's damaged start code shows twice: its frame_num and its bytes
        lost = max(self._references_lost, min(self._evidence, gaps) if gaps is not None else 0)
        return lost, (self._evidence_at if lost else None)


def _step_on(shown: Optional[int], steps: Dict[int, int], pictures: List[Tuple[int, int, bool]]) -> Optional[int]:
    """Adds to ``steps`` those from the count ``shown`` on through ``pictures`` (count, read,
    owned) in display order, each with how many of the decode's own pictures follow it; the last
    count."""
    for count, _, owned in sorted(pictures):
        if shown is not None and count > shown:
            steps[count - shown] = steps.get(count - shown, 0) + owned
        shown = count
    return shown


def _read_sequence(bits: "RbspBits") -> Tuple[int, _Sequence]:
    """An SPS's id and fields (H.264 7.3.2.1.1); ValueError where its slice headers are not read."""
    profile, constraints = bits.read(8), bits.read(8)
    bits.read(8)  # level_idc
    sequence = bits.number()
    if constraints & 3:  # reserved_zero_2bits set: damage, not an SPS
        raise ValueError("not a sequence parameter set")
    chroma_format = 1
    if profile in HIGH_PROFILES:
        chroma_format = bits.number()
        if chroma_format == 3 and bits.read(1):  # separate colour planes: a field more per slice
            raise ValueError("separate colour planes")
        bits.number(), bits.number(), bits.read(1)  # bit depths, qpprime_y_zero_transform_bypass_flag
        if bits.read(1):
            _skip_scaling_lists(bits, 12 if chroma_format == 3 else 8)
    frame_num_bits = bits.number() + 4
    order_type = bits.number()
    if order_type == 1:  # its counts' offsets and cycle: no writer here makes it to read against
        raise ValueError("picture order count type 1")
    order_bits = bits.number() + 4 if order_type == 0 else None
    bits.number()  # max_num_ref_frames
    frame_num_gaps = bool(bits.read(1))
    bits.number(), bits.number()  # size
    if not bits.read(1):  # frame_mbs_only_flag clear: a field a packet, two a frame
        raise ValueError("fields may be coded")
    return sequence, _Sequence(frame_num_bits, order_bits, chroma_format != 0, frame_num_gaps)


def _read_picture_set(bits: "RbspBits") -> Tuple[int, _PictureSet]:
    """A PPS's id and fields (H.264 7.3.2.2)."""
    picture_set, sequence = bits.number(), bits.number()
    bits.read(1)  # entropy_coding_mode_flag
    bottom_order = bool(bits.read(1))
    if bits.number():  # num_slice_groups_minus1: slice group maps this does not read
        raise ValueError("slice groups")
    references = (bits.number() + 1, bits.number() + 1)
    weighted = (bool(bits.read(1)), bits.read(2) == 1)
    bits.signed(), bits.signed(), bits.signed()  # pic_init_qp, pic_init_qs, chroma_qp_index_offset
    bits.read(2)  # deblocking_filter_control_present_flag, constrained_intra_pred_flag
    return picture_set, _PictureSet(sequence, bottom_order, references, weighted, bool(bits.read(1)))


def _read_slice(bits: "RbspBits", nal_header: int, slice_type: int, picture_set: _PictureSet,
                sequence: _Sequence) -> _Slice:
    """A progressive picture's slice header from frame_num on (H.264 7.3.3)."""
    idr = nal_header & NAL_TYPE_BITS == IDR_SLICE
    frame_num = bits.read(sequence.frame_num_bits)
    if idr:
        bits.number()  # idr_pic_id
    order_lsb = None if sequence.order_bits is None else bits.read(sequence.order_bits)
    if order_lsb is not None and picture_set.bottom_order:
        bits.signed()  # delta_pic_order_cnt_bottom
    redundant = picture_set.redundant and bits.number() > 0
    reference = bool(nal_header & NAL_REFERENCE_BITS)
    memory_reset = reference and not idr and _resets_memory(bits, slice_type, picture_set, sequence)
    return _Slice(frame_num, order_lsb, reference, idr, memory_reset, redundant)


def _resets_memory(bits: "RbspBits", slice_type: int, picture_set: _PictureSet, sequence: _Sequence) -> bool:
    """Whether a reference picture's dec_ref_pic_marking holds MMCO 5, read past the reference
    lists and weights before it (H.264 7.3.3 to 7.3.3.3)."""
    lists = {P_SLICE: 1, SP_SLICE: 1, B_SLICE: 2}.get(slice_type, 0)
    references = list(picture_set.references[:lists])
    if slice_type == B_SLICE:
        bits.read(1)  # direct_spatial_mv_pred_flag
    if lists and bits.read(1):  # num_ref_idx_active_override_flag
        references = [bits.number() + 1 for _ in range(lists)]
    for _ in range(lists):
        _skip_list_modification(bits)
    if lists and picture_set.weighted[lists - 1]:  # P's weighted_pred_flag, B's weighted_bipred_idc
        _skip_weights(bits, references, sequence.chroma)
    if not bits.read(1):  # adaptive_ref_pic_marking_mode_flag
        return False
    operation, operations = None, set()
    while operation != 0:  # 0 ends the operations
        operation = bits.number()
        operations.add(operation)
        for _ in range(MEMORY_OPERATION_FIELDS.get(operation, 0)):
            bits.number()
    return MEMORY_RESET in operations


def _skip_list_modification(bits: "RbspBits") -> None:
    """Past one list's ref_pic_list_modification (H.264 7.3.3.1)."""
    if bits.read(1):
        while bits.number() != 3:  # modification_of_pic_nums_idc 3 ends the list
            bits.number()


def _skip_weights(bits: "RbspBits", references: List[int], chroma: bool) -> None:
    """Past a pred_weight_table (H.264 7.3.3.2)."""
    bits.number()  # luma_log2_weight_denom
    if chroma:
        bits.number()
    for _ in range(sum(references)):
        if bits.read(1):
            bits.signed(), bits.signed()
        if chroma and bits.read(1):
            for _ in range(4):
                bits.signed()


def _overlong_delimiter(unit: memoryview) -> bool:
    """Whether the unit (its first SLICE_HEADER_READ bytes) is an access unit delimiter holding
    more than its one byte before the next start code, trailing zeros apart."""
    if not unit or unit[0] != ACCESS_UNIT_DELIMITER:
        return False
    after = START_CODE.search(unit, 1)
    return bool(NON_ZERO.search(unit, 2, after.start() if after else len(unit)))


class RbspBits:
    """A NAL unit's payload read bit by bit (emulation prevention bytes taken out, H.264 7.4.1);
    ValueError where its bits run out. ``bits``: the payload as a string of bits; ``at``: where
    the next field starts."""

    def __init__(self, payload: bytes):
        self.bits = "".join(BYTE_BITS[byte] for byte in EMULATION_PREVENTION.sub(b"\x00\x00", payload))
        self.at = 0

    def read(self, count: int) -> int:
        end = self.at + count
        if end > len(self.bits):
            raise ValueError("bits ran out")
        value = int(self.bits[self.at:end] or "0", 2)
        self.at = end
        return value

    def number(self) -> int:
        """An unsigned Exp-Golomb number."""
        value, self.at = _exp_golomb(self.bits, self.at)
        if value is None:
            raise ValueError("bits ran out")
        return value

    def signed(self) -> int:
        code = self.number()
        return (code + 1) // 2 if code % 2 else -(code // 2)


def _skip_scaling_lists(bits: RbspBits, lists: int) -> None:
    """Past an SPS's scaling lists (H.264 7.3.2.1.1.1)."""
    for index in range(lists):
        if not bits.read(1):
            continue
        last = following = 8
        for _ in range(16 if index < 6 else 64):
            if following:
                following = (last + bits.signed()) % 256
            last = following or last
