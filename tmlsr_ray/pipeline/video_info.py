"""What a video's probe found, as every stage reads it (no Ray here): its own module so that the
container and damage helpers the probe opens through can name it without importing the decoder."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Dict, List, Optional


COLOR_FIELDS = ("color_primaries", "color_trc", "colorspace", "color_range")


# The values of each colour tag that state nothing (a colour space of 0 is RGB, stated)
UNSTATED_COLOUR = {"color_primaries": (0, 2), "color_trc": (0, 2), "colorspace": (2,), "color_range": (0,)}


@dataclass(frozen=True)
class AudioInfo:
    index: int
    codec: str
    sample_rate: int
    channels: int
    language: Optional[str]


@dataclass(frozen=True)
class SubtitleInfo:
    index: int
    codec: str
    language: Optional[str]


@dataclass(frozen=True)
class VideoInfo:
    container: str
    stream_index: int
    codec: str
    width: int  # as displayed (after rotation)
    height: int
    coded_width: int
    coded_height: int
    rotation: int  # degrees counter-clockwise to display, a multiple of 90
    pix_fmt: str
    bit_depth: int
    time_base: Fraction
    average_rate: Optional[Fraction]
    frames_hint: int  # the container's count or duration × rate: for progress only
    duration_s: Optional[float]
    color: Dict[str, int]
    audio: List[AudioInfo] = field(default_factory=list)
    subtitles: List[SubtitleInfo] = field(default_factory=list)
    animated_gif: bool = False
    reorders_frames: bool = False  # B-frames: decode order is not display order
    mastering: Optional[Dict[str, str]] = None  # HDR10 mastering display / light level (x26x notation)
    sample_aspect: Optional[Fraction] = None  # non-square pixels, as displayed (after rotation); None: square
    interlaced: bool = False  # its frames hold two fields: deinterlaced as they decode
    start_pts: int = 0  # the first frame's time, where the segment plan found it: a player's 0 s
    # Its sample table times frames alike (see segments.frame_times_lost): read without its edit
    # list, each frame stamped a step after the last in the decoder's order
    frame_times_lost: bool = False
    # What the input is opened with, as its probe decided (LONG_PROBE, or none); None: decided at
    # each open (see open_container)
    open_options: Optional[Dict[str, str]] = None

    @property
    def fps(self) -> Optional[float]:
        return float(self.average_rate) if self.average_rate else None

    def seconds(self, pts: int) -> float:
        """Where a time of the stream is, as a player counts from its first frame."""
        return float((pts - self.start_pts) * self.time_base)

    @property
    def frame_ticks(self) -> Optional[float]:
        """How long a frame shows at the average rate, in the stream's time base."""
        return 1 / (float(self.average_rate) * float(self.time_base)) if self.average_rate else None


def colour_tags(tagged) -> Dict[str, int]:
    """The colour tags of a codec context or a frame, 0 where it has none."""
    return {name: int(getattr(tagged, name) or 0) for name in COLOR_FIELDS}


def with_container_colour(decoded: Dict[str, int], container: Dict[str, int]) -> Dict[str, int]:
    """The colour the decoder gives, the container's where it states none: HEVC's decoder drops
    what an MP4 colr box or a Matroska Colour element says (as a remux that tags an untagged
    stream writes it) where its bitstream states no colour, and PQ HDR was read as SDR."""
    return {name: container[name] if value in UNSTATED_COLOUR[name] else value for name, value in decoded.items()}
