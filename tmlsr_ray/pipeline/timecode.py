"""SMPTE timecodes as FFmpeg reads and writes them: ``01:02:03:04``, and ``01:02:03;04`` where
the frames are counted drop-frame (no Ray, no PyAV here)."""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Optional

# FFmpeg's form: any separator before the frames other than ':' marks drop-frame counting
_LABEL = re.compile(r"(\d+):(\d+):(\d+)(\D)(\d+)")


def written_timecode(label: str, rate: Optional[Fraction]) -> Optional[str]:
    """``label`` as an output of ``rate`` frames a second states it; None where it is no timecode.
    Drop-frame counting exists only at rates that round to a multiple of 30 (29.97, 59.94; FFmpeg's
    rule): elsewhere a drop-frame label (a 25 fps source's ``;``) names the frame of the same
    digits counted non-drop, and FFmpeg's MP4 muxer refused it, leaving the timecode out unsaid."""
    match = _LABEL.fullmatch(label.strip())
    if not match:
        return None
    if match[4] != ":" and rate and round(rate) % 30:
        return f"{match[1]}:{match[2]}:{match[3]}:{match[5]}"
    return label
