"""A video's plan of segments as data (no Ray, no HTTP, no media library): the packets the index
reads, the segments cut from them, how they are cut. Apart from ``segments``, which makes them, so
that what only reads a plan (the runner's checks, the re-keying, the settings) imports no demuxer.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Optional, Tuple


@dataclass(frozen=True)
class PacketEntry:
    pts: Optional[int]
    dts: Optional[int]
    keyframe: bool
    discard: bool = False  # decoded as a reference, never shown (before an MP4 edit list's start)
    duration: int = 0  # how long its frame shows (0: the container does not say)
    size: int = 0  # bytes
    palette: bool = False  # it states a palette (a pal8 codec's, in AVI or QuickTime: at the start, and on changes)
    # a keyframe at a recovery point, no IDR picture (H.264 intra refresh): a decoder started there
    # gives no frame until its pictures are whole
    recovery: bool = False


@dataclass(frozen=True)
class Segment:
    """One unit of work: the frames whose timestamps are in ``pts`` (sorted), decoded from packets
    ``first_packet`` … ``last_packet`` (decode order, inclusive). ``pts`` empty = the whole stream."""

    index: int
    first_packet: int
    last_packet: int
    pts: Tuple[int, ...]
    shift: int = 0  # added to its packets' timestamps in the segment file (NUT holds no negative pts)
    rekeyed: bool = False  # its frames decoded in the cutting pass and stored without loss (see rekey)
    damaged_packets: int = 0  # of its frames, left out as damaged by that decode (a re-keyed one's)
    # Packets at its file's start, the GOP before its keyframe where that keyframe is damaged (a
    # task that repeats damaged frames): decoded apart, for the frame shown before its own
    gop_before: int = 0

    @property
    def whole(self) -> bool:
        return not self.pts


@dataclass(frozen=True)
class SegmentPlan:
    segments: Tuple[Segment, ...]
    frames: int  # frames of the stream, as the packet index counts them
    fingerprint: str  # changes when the input or the cuts change: pieces of another plan are not reused
    last_frame_ticks: Optional[int] = None  # how long the last frame shows (None: not known)
    # The source's first frame, frames before its first keyframe too (what its timecode labels;
    # those an edit list hides are not shown); None where the stream is not cut by its times.
    first_pts: Optional[int] = None
    average_rate: Optional[Fraction] = None  # the frames' (see frames_rate); None: none stated or measured
    # From the first frame shown to the end of the last, as the packet index times them (None where
    # the stream is not cut by its times): the length of an input that states none (a live WebM)
    span_ticks: Optional[int] = None
    # The largest picture a sample of its keyframes decodes to, where larger than the stream's header
    # says (a browser's WebRTC recording starts small and grows as the bandwidth allows); else None
    picture_size: Optional[Tuple[int, int]] = None
    frame_times_lost: bool = False  # see frame_times_lost: one segment, each frame a step after the last

    @property
    def whole(self) -> bool:
        return len(self.segments) == 1 and self.segments[0].whole


@dataclass(frozen=True)
class Cutting:
    segment_s: float = 10.0
    max_frames: int = 600  # per segment, so a 4K segment's piece stays bounded
    max_preroll_frames: int = 300  # frames decoded and dropped before a cut inside a GOP
    rekey_max_bytes: int = 256 << 20  # a re-keyed segment's decoded frames, at most (0: never re-key)
    max_bytes: int = 256 << 20  # a segment's packets, about (0: unbounded)
