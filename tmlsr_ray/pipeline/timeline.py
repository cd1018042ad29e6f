"""A source whose clock jumps, made continuous before the video is planned (no Ray here).

A transport stream's clock may jump anywhere: two recordings joined end to end (``cat a.ts
b.ts``, as DVRs and camcorders split them) start at the same time twice, a broadcast capture
jumps at a programme change, and a jump back of over a minute reads as the 33-bit clock
wrapping, 26.5 hours on. Planned as it is, such a video froze a frame for the length of a jump
forward, or came out as one MP4 step too long to hold, after every segment had been upscaled.
FFmpeg's own command line closes these jumps for the formats that allow them (its
``dts_delta_threshold``): every stream moves by the same amount from a jump on, so each part
keeps its own sync. Here that is a stream copy of the source, in its own format, with the jumps
closed, which the rest of the pipeline then reads as any other source.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

import av

from tmlsr_ray.pipeline.decode import JUMP_BACK_S, demux, ffmpeg_message, open_container

logger = logging.getLogger(__name__)

# The formats whose clock may jump that are copied with the jumps closed. MPEG-PS may too, but its
# demuxer hands over video decode times that step back by a frame here and there, which a copy
# must move: it cost the sync it meant to keep, and a PS is decoded as one segment anyway.
CLOSED_FORMATS = ("mpegts",)
JUMP_FORWARD_S = Fraction(10)  # FFmpeg's dts_delta_threshold
CONTINUOUS_KINDS = ("video", "audio")  # the streams a jump of the clock shows in: subtitles come and go


def continuous_source(path: Path, repaired: Path) -> Path:
    """``path`` itself where its clock runs on, else a copy at ``repaired`` with the jumps closed
    (``path`` again, with a warning, where the copy cannot be written)."""
    with open_container(path) as source:
        if source.format.name not in CLOSED_FORMATS:
            return path
        jumps = _jumps(source)
    if not jumps:
        return path
    try:
        _copy_closing(path, repaired, jumps)
    except (av.error.FFmpegError, ValueError) as exc:
        logger.warning("%s: its clock jumps %s times, and the copy that closes them failed (%s): planned as it is",
                       path.name, len(jumps), ffmpeg_message(exc) if isinstance(exc, av.error.FFmpegError) else exc)
        repaired.unlink(missing_ok=True)
        return path
    logger.info("%s: its clock jumps %s times; they are closed in %s", path.name, len(jumps), repaired.name)
    return repaired


@dataclass(frozen=True)
class _Step:
    """Where one stream's times jump: at packet ``number`` (demux order), from ``expected``
    (where its next packet should have started, in seconds) to ``stamp`` (where it did)."""

    number: int
    expected: Fraction
    stamp: Fraction


@dataclass(frozen=True)
class _Jump:
    """A jump of the clock: ``at``, by stream, the packet its step is seen at (a stream takes the
    new offset from there: the demuxer may hand the next part's audio over before the last part's
    last frame); ``first``, where the other streams take it; ``offset``, in seconds, from the
    source's times to the copy's."""

    first: int
    at: Dict[int, int]
    offset: Fraction

    def offset_at(self, index: int, number: int, before: Fraction) -> Fraction:
        return self.offset if number >= self.at.get(index, self.first) else before


def _jumps(source) -> List[_Jump]:
    """The jumps of the clock: a step seen in every continuous stream that runs on both sides of
    it, at about the same time before and after; a step in one stream alone is a gap in it (an
    audio dropout while the video runs on), left as it is.

    The offset puts each part one step after the last: no stream's next part starts before its
    last part ended (where a part's audio outlasts its video, the last frame before the join shows
    a little longer), so each part keeps its audio in sync, none of it lost."""
    steps, spans = _steps(source)
    jumps: List[_Jump] = []
    offset = Fraction(0)
    taken: Set[Tuple[int, int]] = set()
    for index, step in sorted(((i, s) for i, found in steps.items() for s in found), key=lambda item: item[1].number):
        if (index, step.number) in taken:
            continue
        seen = {index: step}
        for other, found in steps.items():
            if other == index or not spans[other][0] < step.number < spans[other][1]:
                continue  # not on both sides of the step: a stream that ends or starts there
            seen[other] = next((s for s in found if (other, s.number) not in taken
                                and abs(s.expected - step.expected) <= JUMP_FORWARD_S
                                and abs(s.stamp - step.stamp) <= JUMP_FORWARD_S), None)
        if None in seen.values():
            continue
        taken.update((i, s.number) for i, s in seen.items())
        offset += max(s.expected - s.stamp for s in seen.values())
        jumps.append(_Jump(step.number, {i: s.number for i, s in seen.items()}, offset))
    return jumps


def _steps(source) -> Tuple[Dict[int, List[_Step]], Dict[int, Tuple[int, int]]]:
    """Each continuous stream's steps (FFmpeg's: over 10 s forward, or back by more than 0.1 s),
    and the first and last packet it has."""
    steps: Dict[int, List[_Step]] = {}
    spans: Dict[int, Tuple[int, int]] = {}
    expected: Dict[int, Fraction] = {}  # by stream: where its next packet should start
    latest: Dict[int, Fraction] = {}  # by stream: its latest start since its last step
    for number, packet in enumerate(demux(source)):
        stamp = _stamp(packet)
        if stamp is None or packet.stream.type not in CONTINUOUS_KINDS:
            continue
        index = packet.stream.index
        if index in expected and (stamp - expected[index] > JUMP_FORWARD_S or stamp < latest[index] - JUMP_BACK_S):
            steps[index].append(_Step(number, expected[index], stamp))
            latest[index] = stamp
        steps.setdefault(index, [])
        spans[index] = (spans.get(index, (number, number))[0], number)
        latest[index] = max(stamp, latest.get(index, stamp))
        expected[index] = stamp + Fraction(packet.duration or 0) * packet.time_base
    return steps, spans


def _stamp(packet) -> Optional[Fraction]:
    ticks = packet.dts if packet.dts is not None else packet.pts
    return None if ticks is None or packet.time_base is None else ticks * Fraction(packet.time_base)


def _copy_closing(path: Path, repaired: Path, jumps: List[_Jump]) -> None:
    """Every stream copied packet for packet into ``repaired``, each packet moved by the offset
    of the last jump its stream has taken."""
    with open_container(path) as source, av.open(str(repaired), "w", format=source.format.name.split(",")[0]) as out:
        out.metadata.update(source.metadata)
        copies = {}
        for stream in source.streams:
            copy = out.add_stream_from_template(stream, opaque=True)
            copy.metadata.update(stream.metadata)
            copy.disposition = stream.disposition
            copies[stream.index] = copy
        for number, packet in enumerate(demux(source)):
            if packet.dts is None and packet.pts is None:
                continue  # a demuxer flush marker
            offset = Fraction(0)
            for jump in jumps:
                offset = jump.offset_at(packet.stream.index, number, offset)
            ticks = round(offset / Fraction(packet.time_base))
            packet.pts = None if packet.pts is None else packet.pts + ticks
            packet.dts = None if packet.dts is None else packet.dts + ticks
            packet.stream = copies[packet.stream.index]
            out.mux(packet)

