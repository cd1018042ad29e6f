"""Track flags of a finished MP4 that FFmpeg's muxer sets by a rule of its own (no Ray here).

FFmpeg's MP4 muxer enables every track whose stream is the default, and where no track of a
kind is, the first of that kind (it has no option to leave them all off). Players show an enabled
subtitle track from the start, so subtitles a source had off came on; :func:`disable_subtitle_tracks`
clears that flag, a bit in each track header, in place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Tuple

from tmlsr_ray.pipeline.isobmff import boxes, top_level_box

SUBTITLE_HANDLERS = frozenset({b"sbtl", b"text", b"subt"})  # mov_text in MP4, in QuickTime; other text
TRACK_ENABLED = 0x000001  # tkhd flag


def _child(data: bytes, start: int, end: int, kind: bytes) -> Tuple[int, int]:
    return next(((s, e) for k, s, e in boxes(data, start, end) if k == kind), (-1, -1))


def disable_subtitle_tracks(path: Path) -> int:
    """Clears the enabled flag of every subtitle track of the MP4 at ``path``; how many it cleared."""
    cleared = 0
    with open(path, "r+b") as file:
        found = top_level_box(file, b"moov")
        if found is None:
            raise ValueError("the file has no moov box")
        offset, moov = found
        for kind, start, end in boxes(moov):
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
