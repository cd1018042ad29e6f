"""SMPTE timecodes as FFmpeg reads and writes them: ``01:02:03:04``, and ``01:02:03;04`` where
the frames are counted drop-frame (no Ray, no PyAV here)."""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Optional

# FFmpeg's form: any separator before the frames other than ':' marks drop-frame counting
_LABEL = re.compile(r"(\d+):(\d+):(\d+)(\D)(\d+)")
TEN_MINUTES_DROP_FRAME = 17982  # frames of 29.97 fps video in ten minutes: 18,000 less 2 a minute, bar the tenth


def written_timecode(label: str, rate: Optional[Fraction], frames_later: int = 0) -> Optional[str]:
    """The timecode of the frame ``frames_later`` frames after the one ``label`` names, in a video
    of ``rate`` frames a second; None where ``label`` is no timecode. Drop-frame counting exists
    only at rates that round to a multiple of 30 (29.97, 59.94; FFmpeg's rule): elsewhere a
    drop-frame label (a 25 fps source's ``;``) names the frame of the same digits counted non-drop,
    and FFmpeg's MP4 muxer refused it, leaving the timecode out unsaid. With no rate, or no frame
    later, the label stays as given."""
    match = _LABEL.fullmatch(label.strip())
    if not match:
        return None
    fps = round(rate) if rate else 0
    drop = match[4] != ":" and fps % 30 == 0
    if not fps or (not frames_later and (drop or match[4] == ":")):
        return label
    hours, minutes, seconds, frames = (int(match[n]) for n in (1, 2, 3, 5))
    number = ((hours * 60 + minutes) * 60 + seconds) * fps + frames
    if drop:
        number -= _dropped_by(hours * 60 + minutes, fps)
    number = (number + frames_later) % _frames_a_day(fps, drop)  # timecode runs round the clock
    return _label(_with_dropped(number, fps) if drop else number, fps, drop, len(match[5]))


def _dropped_by(minutes: int, fps: int) -> int:
    """Labels drop-frame counting skipped before a minute: 2 a minute at 29.97 (4 at 59.94), bar
    every tenth."""
    return fps // 30 * 2 * (minutes - minutes // 10)


def _with_dropped(number: int, fps: int) -> int:
    """A frame's number counted with the labels drop-frame skips (FFmpeg's
    av_timecode_adjust_ntsc_framenum2)."""
    skipped, ten_minutes = fps // 30 * 2, fps // 30 * TEN_MINUTES_DROP_FRAME
    tens, rest = divmod(number, ten_minutes)
    return number + 9 * skipped * tens + skipped * (max(0, rest - skipped) // (ten_minutes // 10))


def _frames_a_day(fps: int, drop: bool) -> int:
    return 24 * 6 * (fps // 30 * TEN_MINUTES_DROP_FRAME) if drop else 24 * 3600 * fps


def _label(number: int, fps: int, drop: bool, frame_digits: int) -> str:
    seconds, frames = divmod(number, fps)
    return (f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
            f"{';' if drop else ':'}{frames:0{max(2, frame_digits)}d}")
