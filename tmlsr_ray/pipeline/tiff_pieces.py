"""Whether a TIFF's compressed strips and tiles hold the picture they are said to (no Ray, no HTTP).

libtiff, which OpenCV decodes TIFFs through, takes from a piece as many bytes as its rows need and
says nothing of the rest: an LZW or Deflate piece damaged part way decoded to garbage (its codes
still codes, its zlib checksum never read), and a piece of no bytes to whatever the buffer held.
Each piece is inflated here to how long it decodes, without keeping its pixels: Deflate by zlib,
LZW by its codes alone, a few thousand codes at a time (numpy): about 35 MB of LZW a second.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import BinaryIO, Iterator, Optional, Tuple

import numpy as np

# TIFF tags of a picture's layout and pieces
WIDTH, HEIGHT, BITS, COMPRESSION, PHOTOMETRIC, SAMPLES, ROWS_PER_STRIP, PLANAR = 256, 257, 258, 259, 262, 277, 278, 284
STRIP_OFFSETS, STRIP_BYTES, TILE_WIDTH, TILE_LENGTH, TILE_OFFSETS, TILE_BYTES = 273, 279, 322, 323, 324, 325
LZW, DEFLATE, ADOBE_DEFLATE = 5, 8, 32946
YCBCR = 6  # its chroma may be subsampled, which changes a piece's size: not judged here
LZW_CLEAR, LZW_END = 256, 257
LZW_FIRST_ENTRY = 258
# libtiff's decoder's table: 4096 codes and 1024 more it lets a stream without a Clear code run into
LZW_TABLE_SIZE = 4096 + 1024
LZW_CODES_BEFORE_FULL = LZW_TABLE_SIZE - LZW_FIRST_ENTRY


def _lzw_code_widths() -> np.ndarray:
    """The width of the k-th code after a Clear code: TIFF's LZW widens a code as its table reaches
    511, 1023 and 2047 entries, one code early (the first code adds no entry)."""
    entries_before = np.maximum(LZW_FIRST_ENTRY + np.arange(LZW_CODES_BEFORE_FULL) - 1, LZW_FIRST_ENTRY)
    return 9 + (entries_before >= 511) + (entries_before >= 1023) + (entries_before >= 2047)


LZW_WIDTHS = _lzw_code_widths()
LZW_STARTS = np.concatenate([[0], np.cumsum(LZW_WIDTHS)[:-1]])  # each code's first bit, from the Clear code's end


@dataclass(frozen=True)
class Layout:
    """What a TIFF's first directory states of its picture's pieces."""

    width: int
    height: int
    sample_bits: int
    samples: int
    planar: bool
    compression: int
    piece_size: Optional[Tuple[int, int]]  # a tile's (width, length); None: strips
    rows_per_strip: int
    offsets: Tuple[int, ...]
    byte_counts: Tuple[int, ...]

    @property
    def kind(self) -> str:
        return "tile" if self.piece_size else "strip"

    def decoded_bytes(self, index: int) -> Tuple[int, int]:
        """How many bytes piece ``index`` decodes to: at least (its rows of the picture) and at most
        (a whole strip: a writer may fill the last one up)."""
        samples = 1 if self.planar else self.samples
        width, rows = self.piece_size or (self.width, self.rows_per_strip)
        row_bytes = (width * samples * self.sample_bits + 7) // 8
        if self.piece_size:
            return row_bytes * rows, row_bytes * rows
        strips_a_plane = -(-self.height // rows)
        rows_here = min(rows, self.height - index % strips_a_plane * rows)
        return row_bytes * rows_here, row_bytes * rows


def layout(tags) -> Optional[Layout]:
    """The layout of a TIFF whose pieces are judged here (LZW or Deflate, one depth for all its
    samples, no subsampled chroma); None for any other."""
    bits = _values(tags.get(BITS, (1,)))
    compression = _number(tags, COMPRESSION, 1)
    if compression not in (LZW, DEFLATE, ADOBE_DEFLATE) or len(set(bits)) != 1 or tags.get(PHOTOMETRIC) == YCBCR:
        return None
    tiled = TILE_WIDTH in tags
    height = _number(tags, HEIGHT, 0)
    return Layout(_number(tags, WIDTH, 0), height, bits[0], _number(tags, SAMPLES, 1), _number(tags, PLANAR, 1) == 2,
                  compression, (_number(tags, TILE_WIDTH, 0), _number(tags, TILE_LENGTH, 0)) if tiled else None,
                  max(1, min(_number(tags, ROWS_PER_STRIP, height), height)),
                  _values(tags.get(TILE_OFFSETS if tiled else STRIP_OFFSETS, ())),
                  _values(tags.get(TILE_BYTES if tiled else STRIP_BYTES, ())))


def inside_header(tags) -> Optional[str]:
    """Where a piece of the picture is said to start inside the file's own header (StripOffsets 0),
    in words; None where none is. libtiff reads the header's bytes as pixels, and garbage was
    upscaled with no word, whatever the compression. A piece of no bytes at 0 is one a sparse TIFF
    (GDAL's) leaves out, not this."""
    header_bytes = 16 if getattr(tags, "_bigtiff", False) else 8
    for offsets_tag, counts_tag, piece in ((STRIP_OFFSETS, STRIP_BYTES, "strip"), (TILE_OFFSETS, TILE_BYTES, "tile")):
        for offset, count in zip(_values(tags.get(offsets_tag, ())), _values(tags.get(counts_tag, ()))):
            if offset < header_bytes and count:
                return f"a {piece} of its picture data is said to start at byte {offset}, inside its header"
    return None


def damage(file: BinaryIO, pieces: Layout) -> Optional[str]:
    """What is wrong with the first damaged piece, in words; None where each decodes to its size."""
    file_bytes = file.seek(0, 2)
    for index, (offset, count) in enumerate(zip(pieces.offsets, pieces.byte_counts)):
        name = f"{pieces.kind} {index + 1} of {len(pieces.offsets)} of its picture data"
        if offset == 0 and count == 0:
            continue  # a sparse TIFF's piece left out (GDAL's), which libtiff reads as zeros
        if count == 0 and len(pieces.offsets) == 1 and not pieces.piece_size:
            count = file_bytes - offset  # libtiff's reading of a one-strip TIFF stating no byte count
        if count == 0:
            return f"{name} holds no bytes"
        if offset + count > file_bytes:
            return f"{name} runs past the end of the file (cut off)"
        file.seek(offset)
        data = file.read(count)
        if pieces.compression == LZW and _old_style_lzw(data):
            continue
        least, most = pieces.decoded_bytes(index)
        decoded = lzw_decoded_length(data) if pieces.compression == LZW else _inflated_length(data, most)
        if decoded is None or not least <= decoded <= most:
            return f"{name} is damaged ({_how_long(decoded, least, most)})"
    return None


def _how_long(decoded: Optional[int], least: int, most: int) -> str:
    if decoded is None:
        return "it does not decode"
    if decoded > most:
        return f"it decodes to more than {most:,} bytes"
    return f"it decodes to {decoded:,} bytes, not {least:,}"


def _inflated_length(data: bytes, most: int) -> Optional[int]:
    """How long a zlib stream inflates to, where it is whole (its checksum matching); else None.
    Inflated a block at a time and counted, not kept; past ``most`` bytes, no further."""
    inflater = zlib.decompressobj()
    length = 0
    try:
        for at in range(0, len(data), 1 << 16):
            length += len(inflater.decompress(data[at:at + (1 << 16)], 1 << 20))
            while inflater.unconsumed_tail and length <= most:
                length += len(inflater.decompress(inflater.unconsumed_tail, 1 << 20))
            if length > most:
                return length
        length += len(inflater.flush())
    except zlib.error:
        return None
    return length if inflater.eof else None


def lzw_decoded_length(data: bytes) -> Optional[int]:
    """How many bytes a TIFF LZW stream decodes to, where each code is one its table holds at that
    point; else None."""
    padded = np.frombuffer(data + b"\x00\x00\x00", np.uint8)
    total = 0
    for codes in _lzw_runs(padded, len(data) * 8):
        length = None if codes is None else _lzw_run_length(codes)
        if length is None:
            return None
        total += length
    return total


def _old_style_lzw(data: bytes) -> bool:
    """LZW as libtiff wrote it before 1991 (bits low first), which libtiff still reads: not judged."""
    return len(data) >= 2 and data[0] == 0 and data[1] & 1 == 1


def _lzw_runs(padded: np.ndarray, bits: int) -> Iterator[Optional[np.ndarray]]:
    """The codes between one Clear code and the next (or the end), each run as it is read; None
    for a run of more codes than libtiff's table holds."""
    at = 0
    while at + 9 <= bits:
        fits = int(np.searchsorted(LZW_STARTS + LZW_WIDTHS, bits - at, side="right"))
        starts, widths = at + LZW_STARTS[:fits], LZW_WIDTHS[:fits]
        byte = starts >> 3
        window = (padded[byte].astype(np.uint32) << 16) | (padded[byte + 1].astype(np.uint32) << 8) | padded[byte + 2]
        codes = (window >> (24 - (starts & 7) - widths)) & ((1 << widths) - 1)
        ends = np.flatnonzero((codes == LZW_CLEAR) | (codes == LZW_END))
        if not ends.size:
            yield codes if fits < LZW_CODES_BEFORE_FULL else None
            return
        end = int(ends[0])
        yield codes[:end]
        if codes[end] == LZW_END:
            return
        at = int(starts[end] + widths[end])


def _lzw_run_length(codes: np.ndarray) -> Optional[int]:
    """How many bytes one run of codes from a fresh table decodes to; None where a code is one the
    table does not yet hold (the first must be a byte; the k-th at most the entry it adds)."""
    if not codes.size:
        return 0
    if codes[0] >= LZW_CLEAR or (codes[1:] > LZW_END + np.arange(1, codes.size)).any():
        return None
    # entry 258 + k is the (k + 1)-th code's string and one byte more: a forest, each entry's
    # length its depth, found by doubling the reach of each entry's pointer to its parent
    table = LZW_FIRST_ENTRY + codes.size - 1
    parent = np.full(table, -1, np.int64)
    parent[LZW_FIRST_ENTRY:] = codes[:-1]
    depth = np.ones(table, np.int64)
    while (linked := parent >= 0).any():
        depth = np.where(linked, depth + depth[np.maximum(parent, 0)], depth)
        parent = np.where(linked, parent[np.maximum(parent, 0)], -1)
    return int(depth[codes].sum())


def _values(value) -> Tuple[int, ...]:
    return value if isinstance(value, tuple) else (value,)


def _number(tags, tag: int, default: int) -> int:
    """A tag's one whole number (the first, where a damaged directory gives more); else ``default``."""
    value = _values(tags.get(tag, default))[:1] or (default,)
    return value[0] if isinstance(value[0], int) else default
