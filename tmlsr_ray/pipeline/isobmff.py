"""Boxes of the ISO base media file format (MP4, MOV, HEIF, AVIF): the one reader of their layout
(no Ray here), for the few fields FFmpeg and Pillow neither read nor write as needed."""

from __future__ import annotations

import struct
from typing import BinaryIO, Iterator, List, Optional, Tuple


def boxes(data: bytes, start: int = 0, end: Optional[int] = None) -> Iterator[Tuple[bytes, int, int]]:
    """(type, where its payload starts, where it ends) of each box in ``data[start:end]``; a box
    that runs past ``end`` ends the listing."""
    end = len(data) if end is None else end
    at = start
    while at + 8 <= end:
        size, kind = struct.unpack(">I4s", data[at:at + 8])
        header = 8
        if size == 1:
            if at + 16 > end:
                return
            size, header = struct.unpack(">Q", data[at + 8:at + 16])[0], 16
        elif size == 0:  # it runs to the end
            size = end - at
        if size < header or at + size > end:
            return
        yield kind, at + header, at + size
        at += size


def payloads(data: bytes) -> List[Tuple[bytes, bytes]]:
    """(type, payload) of each box in ``data``."""
    return [(kind, data[start:end]) for kind, start, end in boxes(data)]


def top_level_box(file: BinaryIO, wanted: bytes, limit: Optional[int] = None) -> Optional[Tuple[int, bytes]]:
    """Where the file's first top-level box of type ``wanted`` has its payload, and the payload
    (one running to the end of the file read up to ``limit`` bytes); None where the file has no
    such box, or its payload is over ``limit`` bytes."""
    for kind, at, header, size in _top_level_heads(file):
        if kind != wanted:
            continue
        if size == 0:
            file.seek(at + header)
            return at + header, file.read(-1 if limit is None else limit)
        if size < header or (limit is not None and size - header > limit):
            return None
        file.seek(at + header)
        return at + header, file.read(size - header)
    return None


def has_top_level_box(file: BinaryIO, wanted: bytes) -> bool:
    """Whether the file has a top-level box of type ``wanted``, its payload left unread."""
    return any(kind == wanted for kind, *_ in _top_level_heads(file))


def _top_level_heads(file: BinaryIO) -> Iterator[Tuple[bytes, int, int, int]]:
    """(type, where it starts, its header's length, its size: 0 where it runs to the end) of each
    top-level box, read from its header alone."""
    at = 0
    while True:
        file.seek(at)
        head = file.read(16)
        if len(head) < 8:
            return
        size, kind = struct.unpack(">I4s", head[:8])
        header = 8
        if size == 1:
            if len(head) < 16:
                return
            size, header = struct.unpack(">Q", head[8:16])[0], 16
        yield kind, at, header, size
        if size < header:  # size 0 (the rest of the file) or broken: nothing follows
            return
        at += size
