"""What an AV1 bitstream's OBUs state, read without decoding (no Ray, no HTTP): the picture size
its sequence header states (AV1 spec 5.5; an AVIF's ``ispe`` may state another, and libavif
scales the coded picture to it), and where its second frame starts."""

from __future__ import annotations

from typing import Iterator, Optional, Tuple

OBU_SEQUENCE_HEADER = 1
FRAME_STARTS = (3, 6)  # OBU_FRAME_HEADER, OBU_FRAME: each begins a frame (AV1 spec 7.5)
SEQUENCE_HEADER_BYTES = 512  # its fields up to the largest frame size, 32 operating points of every option


class _Bits:
    """An AV1 bit reader: most significant bit first."""

    def __init__(self, data: bytes):
        self._value, self._left = int.from_bytes(data, "big"), len(data) * 8

    def read(self, count: int) -> int:
        if count > self._left:
            raise ValueError("the sequence header is cut short")
        self._left -= count
        return (self._value >> self._left) & ((1 << count) - 1)

    def uvlc(self) -> int:
        zeros = 0
        while not self.read(1):
            zeros += 1
            if zeros >= 32:
                raise ValueError("a uvlc field of 32 zeros")
        return self.read(zeros) + (1 << zeros) - 1


def largest_frame_size(obus: bytes) -> Optional[Tuple[int, int]]:
    """(max_frame_width, max_frame_height) of the sequence header among the first OBUs of ``obus``
    (an AVIF picture's data holds it, after a temporal delimiter where libaom writes one); None
    where none is found before an OBU without a size, or it cannot be read."""
    for kind, _, at, end in _obus(obus):
        if kind == OBU_SEQUENCE_HEADER:
            try:
                return _frame_size(_Bits(obus[at:min(end, at + SEQUENCE_HEADER_BYTES)]))
            except ValueError:
                return None
    return None


def first_frame(obus: bytes) -> bytes:
    """``obus`` up to its second frame: an AVIF picture's data is one frame, which libavif shows;
    what follows is not decoded (an item of thousands of small frames each decoded to its whole
    picture held them all: 2,000 of 109 bytes, 1024x1024, took 2 GB)."""
    starts = (start for kind, start, _, _ in _obus(obus) if kind in FRAME_STARTS)
    next(starts, None)
    return obus[:next(starts, len(obus))]


def _obus(data: bytes) -> Iterator[Tuple[int, int, int, int]]:
    """(type, where its header starts, where its payload starts, where it ends) of each OBU of
    ``data``, in order; one stating no size runs to the end."""
    at = 0
    while at + 2 <= len(data):
        start, kind, extension, sized = at, (data[at] >> 3) & 0xF, data[at] & 0x04, data[at] & 0x02
        at += 2 if extension else 1
        size, at = _leb128(data, at) if sized else (len(data) - at, at)
        yield kind, start, at, at + size
        at += size


def _leb128(data: bytes, at: int) -> Tuple[int, int]:
    """An OBU's size (little-endian base 128) and where what follows it starts."""
    value = 0
    for shift in range(0, 56, 7):
        byte = data[at] if at < len(data) else 0
        value, at = value | (byte & 0x7F) << shift, at + 1
        if not byte & 0x80:
            break
    return value, at


def _frame_size(bits: _Bits) -> Tuple[int, int]:
    bits.read(3)  # seq_profile
    bits.read(1)  # still_picture
    if bits.read(1):  # reduced_still_picture_header
        bits.read(5)  # seq_level_idx
    else:
        _skip_operating_points(bits)
    width_bits, height_bits = bits.read(4) + 1, bits.read(4) + 1
    return bits.read(width_bits) + 1, bits.read(height_bits) + 1


def _skip_operating_points(bits: _Bits) -> None:
    """timing_info, decoder_model_info and each operating point, as the spec orders them."""
    decoder_model, buffer_delay_bits = False, 0
    if bits.read(1):  # timing_info_present_flag
        bits.read(32), bits.read(32)  # num_units_in_display_tick, time_scale
        if bits.read(1):  # equal_picture_interval
            bits.uvlc()
        decoder_model = bool(bits.read(1))
        if decoder_model:
            buffer_delay_bits = bits.read(5) + 1
            bits.read(32), bits.read(5), bits.read(5)
    display_delay = bool(bits.read(1))
    for _ in range(bits.read(5) + 1):
        bits.read(12)  # operating_point_idc
        if bits.read(5) > 7:  # seq_level_idx
            bits.read(1)  # seq_tier
        if decoder_model and bits.read(1):
            bits.read(buffer_delay_bits), bits.read(buffer_delay_bits), bits.read(1)
        if display_delay and bits.read(1):
            bits.read(4)
