"""Track flags of a finished MP4 that FFmpeg's muxer sets by a rule of its own (no Ray here).

FFmpeg's MP4 muxer enables every track whose stream is the default, and where no track of a
kind is, the first of that kind (it has no option to leave them all off). Players show an enabled
subtitle track from the start, so subtitles a source had off came on; :func:`disable_subtitle_tracks`
clears that flag, a bit in each track header, in place.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO, Iterator, Tuple

SUBTITLE_HANDLERS = frozenset({b"sbtl", b"text", b"subt"})  # mov_text in MP4, in QuickTime; other text
TRACK_ENABLED = 0x000001  # tkhd flag


def _boxes(data: bytes, start: int, end: int) -> Iterator[Tuple[bytes, int, int]]:
    """(type, where its payload starts, where it ends) of each box in ``data[start:end]``."""
    at = start
    while at + 8 <= end:
        size, kind = struct.unpack(">I4s", data[at:at + 8])
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", data[at + 8:at + 16])[0], 16
        elif size == 0:
            size = end - at
        if size < header:
            return
        yield kind, at + header, min(at + size, end)
        at += size


def _child(data: bytes, start: int, end: int, kind: bytes) -> Tuple[int, int]:
    return next(((s, e) for k, s, e in _boxes(data, start, end) if k == kind), (-1, -1))


def _moov(file: BinaryIO) -> Tuple[int, bytes]:
    """Where the movie box's payload starts in the file, and the payload."""
    at = 0
    while True:
        file.seek(at)
        head = file.read(16)
        if len(head) < 8:
            raise ValueError("the file has no moov box")
        size, kind = struct.unpack(">I4s", head[:8])
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", head[8:16])[0], 16
        if kind == b"moov":
            file.seek(at + header)
            return at + header, file.read(size - header)
        if size < header:
            raise ValueError("the file has no moov box")
        at += size


def disable_subtitle_tracks(path: Path) -> int:
    """Clears the enabled flag of every subtitle track of the MP4 at ``path``; how many it cleared."""
    cleared = 0
    with open(path, "r+b") as file:
        offset, moov = _moov(file)
        for kind, start, end in _boxes(moov, 0, len(moov)):
            if kind != b"trak":
                continue
            tkhd, _ = _child(moov, start, end, b"tkhd")
            mdia, mdia_end = _child(moov, start, end, b"mdia")
            hdlr, _ = _child(moov, mdia, mdia_end, b"hdlr") if mdia >= 0 else (-1, -1)
            if tkhd < 0 or hdlr < 0 or moov[hdlr + 8:hdlr + 12] not in SUBTITLE_HANDLERS:
                continue
            flags = int.from_bytes(moov[tkhd + 1:tkhd + 4], "big")  # after the version byte
            if flags & TRACK_ENABLED:
                file.seek(offset + tkhd + 1)
                file.write((flags & ~TRACK_ENABLED).to_bytes(3, "big"))
                cleared += 1
    return cleared
