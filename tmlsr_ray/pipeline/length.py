"""The longest video a task takes, and a reading of a video's length as its packets are demuxed (no Ray here).

A source that states no length (a browser's MediaRecorder WebM, a live Matroska, a fragmented MP4 or a
capture's transport stream) is only measured by reading its packets: a multi-GB recording far over the
limits was demuxed whole, twice (the timeline's scan, the packet index), before it was refused. Each scan
keeps a :class:`LengthMeter`, which refuses as soon as what it has read is over the limits.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Optional

from tmlsr_ray.errors import InputError

# The longest step between two frames that counts as length: a longer one may be a jump of the clock
# (closed, or its time kept, later) or a stray time, so it counts for nothing
COUNTED_STEP_S = Fraction(1)


@dataclass(frozen=True)
class LengthLimits:
    """A task's longest video, in frames and in seconds (the service's max_video_frames and max_video_duration_s)."""

    frames: int
    seconds: float

    @classmethod
    def of(cls, settings) -> "LengthLimits":
        return cls(settings.max_video_frames, settings.max_video_duration_s)

    def check(self, frames: int, seconds: Optional[float], whole: bool = True) -> None:
        """Refuses (InputError) a video of ``frames`` frames lasting ``seconds`` (None: not known) over the
        limits; ``whole``: those are its whole length, not only as far as a scan has read, which says
        it is longer (60 s read of a 10-minute video under a limit of 60 s is not its length)."""
        if frames > self.frames:
            limit = f"the limit of {self.frames:,} (max_video_frames)"
            raise InputError(f"video has {frames:,} frames, over {limit}" if whole
                             else f"video has more frames than {limit}")
        if seconds and seconds > self.seconds:
            limit = f"the limit of {_in_seconds(self.seconds)} (max_video_duration_s)"
            shown = _in_seconds(seconds, over=self.seconds) if whole else None
            raise InputError(f"video lasts {shown}, over {limit}" if shown else f"video lasts longer than {limit}")


def _in_seconds(value: float, over: Optional[float] = None) -> Optional[str]:
    """``value`` s to the fewest decimals (at most 3) that read as it or, given ``over``, that read
    over that, never rounded up (None: none do). Rounded to whole seconds, 60.04 s over a limit of
    60 s read '60 s, over the limit of 60 s', and 0.7 s over one of 0.5 s read '1 s'."""
    for places in range(4):
        shown = round(value, places)
        if over is not None and shown > value:
            shown -= 10 ** -places
        if (shown > over) if over is not None else shown == value:
            return f"{shown:,.{places}f} s"
    return None if over is not None else f"{value:,.3f} s"


class LengthMeter:
    """One video stream's frames and length as far as its packets are read, never more than the
    packet index counts and spans once the timeline has closed its clock's jumps: from its first keyframe on,
    a frame counts where its decode time passes the latest one reached (a fragment written twice, a
    part after a restart, counts from where it passes the part before), and its step counts where
    it is a frame's, at most :data:`COUNTED_STEP_S` (a jump counts nothing), once a later frame passes
    it (a stray time forward, which the timeline places or which leaves the index untimed, counts nothing).
    Checked before each packet is added: the last packet read, which the index may drop as cut
    off, is never the one over the limit. Where the index cannot time the frames (a raw stream's
    times are decode times), its reading is the only length a source that states none is held to."""

    def __init__(self, limits: LengthLimits, stream_index: int):
        self._limits, self._index = limits, stream_index
        self.frames, self.ticks = 0, 0
        self._tick: Optional[Fraction] = None
        self._first: Optional[int] = None  # the first keyframe's presentation time: frames shown before it are not
        self._latest_decoded: Optional[int] = None  # the latest decode time counted, in ticks (its step once passed)
        self._latest: Optional[int] = None  # the latest time reached, from the first keyframe's shown time on
        self._most_ticks = self._step_ticks = 0

    @classmethod
    def where_limited(cls, limits: Optional[LengthLimits], stream_index: int) -> Optional["LengthMeter"]:
        """A meter of the stream where there are limits to hold it to; None where none are given."""
        return cls(limits, stream_index) if limits is not None else None

    def offer(self, packet) -> None:
        """Counts a packet of the metered stream (others are passed over); refuses once over the limits."""
        if packet.stream.index != self._index or not packet.size or packet.is_discard:
            return
        time = packet.dts if packet.dts is not None else packet.pts
        if time is None or (self._first is None and not self._start(packet, time)):
            return
        if self.frames > self._limits.frames or self.ticks > self._most_ticks:
            self._limits.check(self.frames, float(self.ticks * self._tick), whole=False)
        if time > self._latest_decoded and (packet.pts is None or packet.pts >= self._first):
            self.frames += 1
            self._reach(self._latest_decoded)  # passed by this frame: no stray time, which the index may place
            self._latest_decoded = time

    def _reach(self, time: int) -> None:
        """Counts the step to ``time`` where it passes the latest time reached, a frame's step."""
        if time > self._latest:
            self.ticks += time - self._latest if time - self._latest <= self._step_ticks else 0
            self._latest = time

    def _start(self, packet, time: int) -> bool:
        """Starts at the stream's first keyframe (False before it): counted from the time it shows at,
        as the packet index spans the frames' presentation times (a decode time may be earlier)."""
        if not packet.is_keyframe or packet.time_base is None:
            return False
        self._tick = Fraction(packet.time_base)
        self._most_ticks = int(Fraction(self._limits.seconds) // self._tick)
        self._step_ticks = int(COUNTED_STEP_S // self._tick)
        self._first = packet.pts if packet.pts is not None else time
        self._latest_decoded, self._latest = time - 1, self._first
        return True
