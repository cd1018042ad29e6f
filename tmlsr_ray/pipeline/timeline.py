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
from fractions import Fraction
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

import av

from tmlsr_ray.pipeline.decode import ffmpeg_message, open_container

logger = logging.getLogger(__name__)

TS_DISCONT = 0x0200  # AVFMT_TS_DISCONT: the format allows its timestamps to jump (MPEG-TS, MPEG-PS)
JUMP_FORWARD_S = Fraction(10)  # FFmpeg's dts_delta_threshold
JUMP_BACK_S = Fraction(1, 10)  # and its step back: more than this before the last packet
CONTINUOUS_KINDS = ("video", "audio")  # streams with no gaps of their own: subtitles come and go


def continuous_source(path: Path, repaired: Path) -> Path:
    """``path`` itself where its clock runs on, else a copy at ``repaired`` with the jumps closed
    (``path`` again, with a warning, where the copy cannot be written)."""
    with open_container(path) as source:
        if not source.format.flags & TS_DISCONT:
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


def _jumps(source) -> List[Tuple[int, Fraction]]:
    """(packet number in demux order, the offset in seconds every packet takes from it on).

    The offset puts the stream the jump is seen in one step after its last packet; where another
    stream's next part would then start before its last part ended (a part's audio outlasts its
    video), all move later by that much: the last frame before the join shows a little longer,
    and each part keeps its audio in sync, none of it lost."""
    jumps: List[Tuple[int, Fraction]] = []
    offset = Fraction(0)
    expected: Dict[int, Fraction] = {}  # by stream: where its next packet should start
    latest: Dict[int, Fraction] = {}  # by stream: its latest start so far
    unsettled: Set[int] = set()  # streams whose first packet since the last jump is still to come
    for number, packet in enumerate(source.demux()):
        stamp = _stamp(packet)
        if stamp is None or packet.stream.type not in CONTINUOUS_KINDS:
            continue
        stamp += offset
        index = packet.stream.index
        if index in unsettled:
            unsettled.discard(index)
            overlap = expected[index] - stamp
            if 0 < overlap <= JUMP_FORWARD_S:
                offset += overlap
                stamp += overlap
                jumps[-1] = (jumps[-1][0], offset)
        elif index in expected:
            step = stamp - expected[index]
            if step > JUMP_FORWARD_S or stamp < latest[index] - JUMP_BACK_S:
                offset -= step
                stamp -= step
                jumps.append((number, offset))
                unsettled = set(expected) - {index}
        latest[index] = max(stamp, latest.get(index, stamp))
        expected[index] = stamp + Fraction(packet.duration or 0) * packet.time_base
    return jumps


def _stamp(packet) -> Optional[Fraction]:
    ticks = packet.dts if packet.dts is not None else packet.pts
    return None if ticks is None or packet.time_base is None else ticks * Fraction(packet.time_base)


def _copy_closing(path: Path, repaired: Path, jumps: List[Tuple[int, Fraction]]) -> None:
    """Every stream copied packet for packet into ``repaired``, each packet moved by the offset
    of the last jump before it."""
    with open_container(path) as source, av.open(str(repaired), "w", format=source.format.name.split(",")[0]) as out:
        out.metadata.update(source.metadata)
        copies = {}
        for stream in source.streams:
            copy = out.add_stream_from_template(stream, opaque=True)
            copy.metadata.update(stream.metadata)
            copy.disposition = stream.disposition
            copies[stream.index] = copy
        changes = iter(jumps + [(-1, None)])
        at, next_offset = next(changes)
        offset = Fraction(0)
        run_on = RunOn()
        for number, packet in enumerate(source.demux()):
            if number == at:
                offset = next_offset
                at, next_offset = next(changes)
            if packet.dts is None and packet.pts is None:
                continue  # a demuxer flush marker
            ticks = round(offset / Fraction(packet.time_base))
            packet.pts = None if packet.pts is None else packet.pts + ticks
            packet.dts = None if packet.dts is None else packet.dts + ticks
            run_on(packet)
            packet.stream = copies[packet.stream.index]
            out.mux(packet)


class RunOn:
    """Times that go back, stream by stream, run on from where the stream was: the muxer refuses
    them. After a jump is closed, a part's audio that outlasted its video makes the next part's
    start a little before its own end; in assembly, a side stream of such a source the jump was
    not closed in. Subtitle events may share a time (a sign and a line of dialogue)."""

    def __init__(self):
        self._clock: Dict[int, Tuple[int, int, int]] = {}  # by stream: (offset, last time, its end)

    def __call__(self, packet) -> None:
        stamp = packet.dts if packet.dts is not None else packet.pts
        if stamp is None:
            return
        index = packet.stream.index
        offset, last, end = self._clock.get(index, (0, None, None))
        if last is not None and (stamp + offset < last or stamp + offset == last and packet.stream.type != "subtitle"):
            offset = max(end, last + 1) - stamp
        packet.pts = None if packet.pts is None else packet.pts + offset
        packet.dts = None if packet.dts is None else packet.dts + offset
        stamp += offset
        self._clock[index] = (offset, stamp, stamp + (packet.duration or 0))
