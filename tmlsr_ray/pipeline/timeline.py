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

A fragmented MP4's clock may restart too: CMAF segments (HLS, DASH) joined after their init
segment, as downloaders write them, state each fragment's start (its ``tfdt``), which goes back
to 0 at a discontinuity (an ad break, a stream restart). FFmpeg's MP4 demuxer takes a fragment
whose times go back for one that overlaps the last (the same times read twice) and flags every
sample of its first run at or before the time it had reached discard: the decoder drops them,
that fragment's frames and sound lost at each restart without a word. The copy closes such jumps
back as a transport stream's (and so reads them all); a jump forward in an MP4 is time the file
states, lost by no one, and stays. A fragment written twice (a downloader's retry) goes back too,
but FFmpeg is right to drop it: where every stream's packets after a step back repeat the ones
it had at those times, size for size, the step is no restart.

A bit error in one PES header is no jump: one packet's time is far off while the packets on
either side of it run on from each other (a jump moves every packet after it). Left in, it froze a
frame or delayed a sound for the hours it was off, and the output lasted as long. The copy places
such a packet by its neighbours. A Matroska block states the time it shows, not its decode time
(FFmpeg works those out), and a bit error in it, or in its cluster's time, moves that block, or the
whole cluster, alone: the copy, Matroska again, places the run by its neighbours' presentation
times, past the reorder of B-frames, whose shown times stand apart from their decode order's. So
with a fragmented MP4 whose one fragment's tfdt a bit error moved: taken for a restart at the
fragment after it, it took every later frame hours on with it.
"""

from __future__ import annotations

import logging
from array import array
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import AbstractSet, Dict, Iterator, List, NamedTuple, Optional, Set, Tuple

import av

from tmlsr_ray.pipeline.chapters import shifted_chapters
from tmlsr_ray.pipeline.container import attached_pictures, demux, ffmpeg_message, open_container
from tmlsr_ray.pipeline.decode import JUMP_BACK_S
from tmlsr_ray.pipeline.isobmff import has_top_level_box
from tmlsr_ray.pipeline.length import LengthLimits, LengthMeter

logger = logging.getLogger(__name__)

# The formats whose clock may jump that are copied with the jumps closed. MPEG-PS may too, but its
# demuxer hands over video decode times that step back by a frame here and there, which a copy
# must move: it cost the sync it meant to keep, and a PS is decoded as one segment anyway.
CLOSED_FORMATS = ("mpegts",)
# The formats whose clock FFmpeg does not take to jump, but whose packets' times a bit error may
# still throw off alone: an FLV video tag's time 3,000 s late froze a 2 s clip's frame for 100 minutes
STRAY_FORMATS = ("flv",)
# The formats whose blocks state a presentation time only (FFmpeg works decode times out from them): a bit
# error in one block's time, or in its cluster's, moved that block or that cluster alone, and a Matroska
# task failed saying its frame times go back
SHOWN_STRAY_FORMATS = ("matroska,webm",)
REORDER_FRAMES = 16  # H.264's and HEVC's deepest reorder: no B-frame shows further from its decode neighbours
STRAY_RUN_S = Fraction(30)  # the longest run placed as strays: a cluster (FFmpeg's and mkvmerge's hold 5 s)
FLV_LATEST_S = Fraction(1 << 31, 1000)  # FLV's times are signed 32-bit milliseconds: no copy holds a later one
# The MP4 family's demuxer: where the file is fragmented (a moof box), a fragment's times may go back
FRAGMENTED_FORMAT = "mov,mp4,m4a,3gp,3g2,mj2"
# A fragmented MP4's copy is written fragmented too, as FFmpeg writes one, so it is read as its source was
# (the MP4 muxer's edit list moved a copy's B-frame delay 4 ticks off its own)
FRAGMENTED_COPY = {"format": "mp4", "options": {"movflags": "frag_keyframe+empty_moov+default_base_moof"}}
JUMP_FORWARD_S = Fraction(10)  # FFmpeg's dts_delta_threshold
CONTINUOUS_KINDS = ("video", "audio")  # the streams a jump of the clock shows in: subtitles come and go


def continuous_source(path: Path, repaired: Path, limits: Optional[LengthLimits] = None,
                      stream_index: int = 0) -> Path:
    """``path`` itself where its clock runs on, else a copy at ``repaired`` with the jumps closed
    (a fragmented MP4's jumps back only) and the strays placed (an FLV's, a Matroska's and a
    fragmented MP4's strays only), or ``path`` again, with a warning, where the copy cannot be written.
    ``limits``: the scan of its packets stops, refused (InputError), once its video stream (``stream_index``)
    is over them."""
    with open_container(path) as source:
        format_name = source.format.name
        closed = format_name in CLOSED_FORMATS
        restarts = format_name == FRAGMENTED_FORMAT and _is_fragmented(path)
        shown_strays = format_name in SHOWN_STRAY_FORMATS or restarts
        if not closed and not shown_strays and format_name not in STRAY_FORMATS:
            return path
        times = _packet_times(source, LengthMeter.where_limited(limits, stream_index))
        stated_end = _stated_end(source)
    strays = _shown_strays(times, stated_end) if shown_strays else _strays(times)
    jumps, repeated = _jumps(times, strays, back_only=restarts) if closed or restarts else ([], set())
    if not jumps and not strays:
        return path
    shift = _flv_shift(times, strays) if format_name in STRAY_FORMATS else Fraction(0)
    if shift is None:
        return path
    try:
        _copy_closing(path, repaired, jumps, strays, shift, left_out=repeated)
    except (av.error.FFmpegError, ValueError) as exc:
        logger.warning("%s: its clock jumps %s times (%s packets with a stray time), and the copy that mends them "
                       "failed (%s): planned as it is", path.name, len(jumps), len(strays),
                       ffmpeg_message(exc) if isinstance(exc, av.error.FFmpegError) else exc)
        repaired.unlink(missing_ok=True)
        return path
    logger.info("%s: its clock jumps %s times and %s packets have a stray time; they are mended in %s",
                path.name, len(jumps), len(strays), repaired.name)
    return repaired


def _stated_end(source) -> Optional[Fraction]:
    """Where a Matroska states it ends, in seconds (its Duration, from 0 on, as its muxer writes it from
    its blocks' times: the longest stream's); None elsewhere or where it states none (a live recording)."""
    if not source.format.name.startswith("matroska") or not source.duration:
        return None
    return Fraction(source.duration, av.time_base)


def _is_fragmented(path: Path) -> bool:
    """Whether an MP4 holds fragments: an unfragmented one's sample tables hold no time that goes back."""
    with path.open("rb") as file:
        return has_top_level_box(file, b"moof")


class _Times(NamedTuple):
    """One packet of a continuous stream, in its stream's ticks (``dts`` is ``pts`` where it
    states none); ``tick`` in seconds."""

    number: int
    pts: Optional[int]
    dts: int
    duration: int
    size: int
    tick: Fraction

    @property
    def stamp(self) -> Fraction:
        return self.dts * self.tick


class _StreamTimes:
    """One continuous stream's packets' times, in demux order, kept as machine integers and read
    back as :class:`_Times`: a record for each packet (a tuple of ints) took 233 bytes, 115 MiB
    for the 515,520 packets of a 2-hour capture."""

    NO_PTS = -(1 << 63)  # where a packet states no presentation time

    def __init__(self, tick: Fraction):
        self.tick = tick
        # FFmpeg's step thresholds in this stream's ticks, for the search's comparisons of ticks: in
        # seconds, as Fractions, they were most of a 2-hour capture's 11 s search. Floored, as a whole
        # number of ticks is over a threshold exactly where it is over the threshold's floor.
        self.forward_ticks = JUMP_FORWARD_S // tick
        self.back_ticks = JUMP_BACK_S // tick
        self._columns = tuple(array("q") for _ in _Times._fields[:-1])  # number, pts, dts, duration, size

    def append(self, number: int, pts: Optional[int], dts: int, duration: int, size: int) -> None:
        for column, value in zip(self._columns, (number, self.NO_PTS if pts is None else pts, dts, duration, size)):
            column.append(value)

    def __len__(self) -> int:
        return len(self._columns[0])

    def __getitem__(self, at):
        if isinstance(at, slice):
            return [self[n] for n in range(*at.indices(len(self)))]
        number, pts, dts, duration, size = (column[at] for column in self._columns)
        return _Times(number, None if pts == self.NO_PTS else pts, dts, duration, size, self.tick)

    def __iter__(self) -> Iterator[_Times]:
        return (self[at] for at in range(len(self)))

    def is_step(self, dts: int, expected: int, latest: int, back_only: bool = False) -> bool:
        """Whether a decode time steps from where it was expected, given the latest start before
        it (FFmpeg's: over 10 s forward, or back by more than 0.1 s; ``back_only``: back only);
        all in this stream's ticks."""
        return latest - dts > self.back_ticks or (not back_only and dts - expected > self.forward_ticks)

    def steps_from(self, before: _Times, packet: _Times) -> bool:
        """Whether ``packet`` steps from ``before``, the packet before it in this stream."""
        return self.is_step(packet.dts, before.dts + before.duration, before.dts)

    def repeated_from(self, at: int, latest: int) -> Tuple[int, ...]:
        """The packets (demux numbers) from position ``at`` on, up to the ``latest`` start the
        stream had reached, where they are the ones it had at those times again, in order and size
        for size; none where they are not."""
        number, _, dts, _, size = self._columns
        earlier = at - 1
        while earlier >= 0 and dts[earlier] > dts[at]:
            earlier -= 1
        if earlier < 0 or dts[earlier] != dts[at]:
            return ()
        later = at
        while later < len(self) and dts[later] <= latest:
            if earlier >= at or (dts[earlier], size[earlier]) != (dts[later], size[later]):
                return ()
            earlier, later = earlier + 1, later + 1
        return tuple(number[at:later])

    def shown(self) -> "_StreamTimes":
        """The packets that state a presentation time, as a stream of their own."""
        kept = _StreamTimes(self.tick)
        for values in zip(*self._columns):
            if values[1] != self.NO_PTS:
                for column, value in zip(kept._columns, values):
                    column.append(value)
        return kept

    @property
    def pts_column(self) -> array:
        """Each packet's presentation time (``NO_PTS`` where it states none), read without a record for each."""
        return self._columns[1]

    @property
    def duration_column(self) -> array:
        return self._columns[3]

    def apart_by_a_frame(self, pts: int, dts: int) -> bool:
        """Whether a presentation time is as near its decode time as a reordered frame's is."""
        return -self.back_ticks <= pts - dts <= self.forward_ticks


def _packet_times(source, meter: Optional[LengthMeter] = None) -> Dict[int, _StreamTimes]:
    """By stream, the times of each packet of the continuous streams, in demux order."""
    times: Dict[int, _StreamTimes] = {}
    for number, packet in enumerate(demux(source)):
        if meter is not None:
            meter.offer(packet)
        dts = packet.dts if packet.dts is not None else packet.pts
        if dts is None or packet.time_base is None or packet.stream.type not in CONTINUOUS_KINDS:
            continue
        index = packet.stream.index
        if index not in times:
            times[index] = _StreamTimes(Fraction(packet.time_base))
        times[index].append(number, packet.pts, dts, packet.duration or 0, packet.size)
    return times


@dataclass(frozen=True)
class _Step:
    """Where one stream's times jump: at packet ``number`` (demux order), from ``expected``
    (where its next packet should have started, in seconds) to ``stamp`` (where it did);
    ``repeated``: the packets from it on that are ones it had already, the same again (a
    fragment written twice), where it is back to them."""

    number: int
    expected: Fraction
    stamp: Fraction
    repeated: Tuple[int, ...] = ()


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


def _jumps(times: Dict[int, _StreamTimes], strays: Dict[int, Tuple[Optional[int], int]],
           back_only: bool = False) -> Tuple[List[_Jump], Set[int]]:
    """The jumps of the clock (``back_only``: its jumps back): a step seen in every continuous
    stream that runs on both sides of it, at about the same time before and after; a step in one
    stream alone is a gap in it (an audio dropout while the video runs on), left as it is. With
    them, the packets a copy leaves out: where every stream's step is back to packets it had
    already, the same again, those packets (a fragment written twice) and no jump.

    The offset puts each part one step after the last: no stream's next part starts before its
    last part ended (where a part's audio outlasts its video, the last frame before the join shows
    a little longer), so each part keeps its audio in sync, none of it lost."""
    steps, spans = _steps(times, strays, back_only)
    jumps: List[_Jump] = []
    repeated: Set[int] = set()
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
        if all(s.repeated for s in seen.values()):
            repeated.update(number for s in seen.values() for number in s.repeated)
            continue  # FFmpeg drops a fragment written twice, as it should: so does the copy
        offset += max(s.expected - s.stamp for s in seen.values())
        jumps.append(_Jump(step.number, {i: s.number for i, s in seen.items()}, offset))
    return jumps, repeated


def _steps(times: Dict[int, _StreamTimes], strays,
           back_only: bool = False) -> Tuple[Dict[int, List[_Step]], Dict[int, Tuple[int, int]]]:
    """Each continuous stream's steps (FFmpeg's: over 10 s forward, or back by more than 0.1 s;
    ``back_only``: back only), the ``strays`` passed over, and the first and last packet it has."""
    steps: Dict[int, List[_Step]] = {}
    spans: Dict[int, Tuple[int, int]] = {}
    for index, packets in times.items():
        steps[index], spans[index] = [], (packets[0].number, packets[-1].number)
        expected: Optional[int] = None  # where its next packet should start, in ticks
        latest = 0  # its latest start since its last step
        for at, packet in enumerate(packets):
            if packet.number in strays:
                continue
            if expected is not None and packets.is_step(packet.dts, expected, latest, back_only):
                repeated = packets.repeated_from(at, latest) if back_only else ()
                steps[index].append(_Step(packet.number, expected * packets.tick, packet.stamp, repeated))
                latest = packet.dts
            latest = max(packet.dts, latest) if expected is not None else packet.dts
            expected = packet.dts + packet.duration
    return steps, spans


def _strays(times: Dict[int, _StreamTimes]) -> Dict[int, Tuple[Optional[int], int]]:
    """By packet number, the (pts, dts) that packets with a stray time take: a decode time that
    steps from the packet before it while the packet after it runs on from that one (a bit error,
    not a jump) goes where the packet before it ends (halfway to the one after, where packets
    state no duration: an FLV's), its presentation time moving with it where the two had moved
    together (an FLV tag's time); a presentation time over 10 s from its own decode time takes the
    first slot from its decode time that no neighbour's shows in (a PES header's PTS). A stream's
    first or last packet, with one neighbour, is a stray where it steps from the two next to it
    that run on from each other, and goes a step of theirs from them."""
    strays: Dict[int, Tuple[Optional[int], int]] = {}
    for packets in times.values():
        for at, (before, packet, after) in enumerate(_in_threes(packets)):
            dts, pts = packet.dts, packet.pts
            if before is not None and after is not None and _is_stray(packets, before, packet, after):
                dts = before.dts + before.duration if before.duration else (before.dts + after.dts) // 2
            elif len(packets) >= 3 and at in (0, len(packets) - 1):
                dts = _end_in_step(packets, at)
            if dts != packet.dts and pts is not None and packets.apart_by_a_frame(pts, packet.dts):
                pts += dts - packet.dts
            if pts is not None and not packets.apart_by_a_frame(pts, dts):
                pts = _free_slot(dts, packet.duration, packets[max(0, at - 16):at + 17])
            if (pts, dts) != (packet.pts, packet.dts):
                strays[packet.number] = (pts, dts)
    return strays


def _shown_strays(times: Dict[int, _StreamTimes],
                  stated_end: Optional[Fraction] = None) -> Dict[int, Tuple[Optional[int], int]]:
    """By packet number, the (pts, dts) that packets of a run whose stated times are off take, a
    run found by its presentation times, in decode order, as Matroska states them (a fragmented
    MP4's tfdt moves both times alike): a run of one packet or more (a block, a cluster, a
    fragment) that steps away from the packet before it while the packet after it runs on from
    that one. A step is over the reorder of B-frames (a block 0.9 s late at 24 fps is one: with a floor of a
    second it was left, and shown after the frames decoded after it); a gap that the packets
    after it keep (a dropout, a frame after a pause decoded ahead of the B-frames before the
    pause) is no run. The run moves as one, its earliest time to the first slot its neighbours
    leave free. At a stream's end no gap can be told from a stray but by where the file states it
    ends (``stated_end``, seconds): a run past it is placed where it fits before it."""
    strays: Dict[int, Tuple[Optional[int], int]] = {}
    for packets in times.values():
        shown = packets.shown()
        pts, frame = shown.pts_column, _frame_ticks(shown)
        if not frame:
            continue
        tolerance = REORDER_FRAMES * frame
        longest = int(STRAY_RUN_S // packets.tick) // frame
        steps = [False] + [abs(after - before) > tolerance for before, after in zip(pts, pts[1:])]
        at = 1
        while at < len(shown):
            # a run steps away from a packet that runs on from the one before it: the frames a
            # frame after a pause was decoded ahead of step back to the time before the pause
            end = _run_end(pts, steps, at, tolerance, longest, frame) if steps[at] and not steps[at - 1] else None
            offset = None if end is None else _run_offset(shown, at, end, tolerance, frame, strays)
            if not offset:
                at += 1
                continue
            strays.update((packet.number, (packet.pts + offset, packet.dts + offset)) for packet in shown[at:end])
            # the packet after the run steps back from it only, to run on: a run after it is one too
            steps[end] = False
            at = end + 1
        last_run = _last_run(shown, tolerance, longest, frame, strays, stated_end)
        if last_run:
            at, offset = last_run
            strays.update((packet.number, (packet.pts + offset, packet.dts + offset)) for packet in shown[at:])
    return strays


def _last_run(shown: _StreamTimes, tolerance: int, longest: int, frame: int,
              placed: Dict[int, Tuple[Optional[int], int]], stated_end: Optional[Fraction]) -> Optional[Tuple[int, int]]:
    """Where the run of a stream's last packets that show past ``stated_end`` starts, and what it moves
    by to the first slot its neighbours leave free, where it steps away from every packet before it,
    which show before that end, and fits before it there; None elsewhere. The muxer wrote the end
    from the blocks' times, so a block past it has a stray time: a last block 0.86 s late held the
    frame before it 0.9 s. A Duration short of the frames (a tool's own clock) is no reason to move them."""
    pts = shown.pts_column
    end = None if stated_end is None else int(stated_end // shown.tick)
    at = len(shown)
    while end is not None and at > 0 and pts[at - 1] >= end:
        at -= 1
    if end is None or at in (0, len(shown)) or len(shown) - at > longest:
        return None
    run, before = shown[at:], _neighbours_before(shown, at, placed)
    if min(packet.pts for packet in run) - max(pts[:at]) <= tolerance:
        return None
    offset = _slot_offset(run, before, [], frame)
    return (at, offset) if offset and max(packet.pts for packet in run) + offset < end else None


def _run_offset(shown: _StreamTimes, at: int, end: int, tolerance: int, frame: int,
                placed: Dict[int, Tuple[Optional[int], int]]) -> Optional[int]:
    """What the run of packets from ``at`` up to ``end`` moves by to the first slot its neighbours
    leave free, those ``placed`` already at their new times; None where the packets after it run
    on from it (a gap, not a run), where it shows no further from its place than a B-frame does,
    or where it would go after every one of them (the end of a stream, where no gap can be told
    from a stray)."""
    run, later = shown[at:end], shown[end:end + REORDER_FRAMES + 1]
    # from the run's latest time, not its first: a run longer than it is off (a 2 s cluster 3 s
    # late) ends where the packets after it start
    if later and abs(min(packet.pts for packet in later) - max(packet.pts for packet in run)) <= tolerance:
        return None
    before = _neighbours_before(shown, at, placed)
    if not _out_of_order(run, before[-2 * REORDER_FRAMES - 1:], shown[end:end + 2 * REORDER_FRAMES + 1]):
        return None
    offset = _slot_offset(run, before, later, frame)
    placed_last = max(packet.pts for packet in run) + offset
    return offset if any(packet.pts > placed_last for packet in later) else None


def _neighbours_before(shown: _StreamTimes, at: int, placed: Dict[int, Tuple[Optional[int], int]]) -> List[_Times]:
    """The packets decoded before position ``at`` that are a run's neighbours, those ``placed`` already
    at their new times: two strays close together, bursts of errors."""
    return [packet._replace(pts=placed[packet.number][0]) if packet.number in placed else packet
            for packet in shown[max(0, at - 3 * REORDER_FRAMES):at]]


def _slot_offset(run: List[_Times], before: List[_Times], later: List[_Times], frame: int) -> int:
    """What a run moves by to the first slot its neighbours leave free: the walk starts among the
    last frames before the run, past whatever frames decoded earlier still show among, which are
    neighbours too."""
    start = min(packet.pts for packet in before[-REORDER_FRAMES - 1:])
    return _free_slot(start, frame, before + later) - min(packet.pts for packet in run)


def _out_of_order(run: List[_Times], before: List[_Times], later: List[_Times]) -> bool:
    """Whether a run shows past more of the packets decoded after it (a run late), or before more
    of those decoded before it (a run early), than B-frames reorder (all of them, where fewer are
    there; another stray among them is one more): a frame after a still, decoded ahead of the
    B-frames before the still, stands seconds from them, yet the frames after them show after it
    (before: moved back among them, a screen recording's lone frame between stills)."""
    latest, earliest = max(packet.pts for packet in run), min(packet.pts for packet in run)
    return any(window and (passed > REORDER_FRAMES or passed == len(window)) for window, passed in
               ((later, sum(packet.pts < latest for packet in later)),
                (before, sum(packet.pts > earliest for packet in before))))


def _run_end(pts: array, steps: List[bool], at: int, tolerance: int, longest: int, frame: int) -> Optional[int]:
    """Where a run that steps away at ``at`` ends: the first packet within ``longest`` of it that
    steps back to run on from the packet before the run (as far on as the run's packets would
    have taken); None where none does."""
    for end in range(at + 1, min(len(pts), at + longest + 1)):
        if steps[end] and abs(pts[end] - pts[at - 1]) <= tolerance + (end - at) * frame:
            return end
    return None


def _frame_ticks(shown: _StreamTimes) -> int:
    """A stream's usual packet length in its ticks: its packets' stated one, else the usual step between their times."""
    lengths = sorted(duration for duration in shown.duration_column if duration > 0)
    if not lengths:
        times = sorted(shown.pts_column)
        lengths = sorted(b - a for a, b in zip(times, times[1:]) if b > a)
    return lengths[len(lengths) // 2] if lengths else 0


def _end_in_step(packets: _StreamTimes, at: int) -> int:
    """The decode time of a stream's first (``at`` 0) or last packet: its own, or, where it steps
    from the packet next to it while that one and the one beyond run on from each other (an FLV's
    first sound tag with a bit error said 37 days before the rest), a step of theirs from them."""
    first, middle, last = packets[0:3] if at == 0 else packets[at - 2:at + 1]
    outer, inner = ((first, middle), (middle, last)) if at == 0 else ((middle, last), (first, middle))
    if not packets.steps_from(*outer) or packets.steps_from(*inner):
        return packets[at].dts
    step = inner[0].duration or inner[1].dts - inner[0].dts
    return middle.dts - step if at == 0 else middle.dts + step


def _flv_shift(times: Dict[int, _StreamTimes], strays: Dict[int, Tuple[Optional[int], int]]) -> Optional[Fraction]:
    """What an FLV copy moves every time by (seconds) so that each fits FLV's signed 32-bit
    milliseconds: nothing where they fit, else back to the earliest, the streams moving together
    (FFmpeg reads the times after a stray sound tag 37 days early as its clock wrapping, 2^32 ms
    on); None where they cannot fit (a copy of such a file said it held 77 million frames)."""
    spans = []  # each stream's earliest and latest decode time once its strays are placed, in seconds
    for packets in times.values():
        placed = [strays[packet.number][1] if packet.number in strays else packet.dts for packet in packets]
        spans += [min(placed) * packets.tick, max(placed) * packets.tick]
    if not spans or max(spans) < FLV_LATEST_S:
        return Fraction(0)
    return -min(spans) if max(spans) - min(spans) < FLV_LATEST_S else None


def _in_threes(packets: _StreamTimes) -> Iterator[Tuple[Optional[_Times], _Times, Optional[_Times]]]:
    """Each packet with the one before it and the one after it (None at the ends)."""
    before, packet = None, None
    for after in packets:
        if packet is not None:
            yield before, packet, after
        before, packet = packet, after
    if packet is not None:
        yield before, packet, None


def _is_stray(packets: _StreamTimes, before: _Times, packet: _Times, after: _Times) -> bool:
    skipped = before.dts + before.duration + packet.duration  # where ``after`` starts without ``packet``'s time
    return packets.steps_from(before, packet) and not packets.is_step(after.dts, skipped, before.dts)


def _free_slot(dts: int, duration: int, neighbours: List[_Times]) -> int:
    """The first time from ``dts`` on, a frame's ``duration`` at a time, that none of the
    ``neighbours`` shows at: where a frame whose own time is lost stood among them."""
    shown = [n.pts for n in neighbours if n.pts is not None]
    slot = dts
    # from the frame that shows there, not a frame's length on: a length rounded to a millisecond
    # tick (a Matroska's 41 for 41.67 ms) drifted off the frames' times a frame in 60
    taken = [pts for pts in shown if abs(pts - slot) < duration / 2] if duration else []
    while taken:
        slot = taken[0] + duration
        taken = [pts for pts in shown if abs(pts - slot) < duration / 2]
    return slot


def _copy_closing(path: Path, repaired: Path, jumps: List[_Jump], strays: Dict[int, Tuple[Optional[int], int]],
                  shift: Fraction = Fraction(0), left_out: AbstractSet[int] = frozenset()) -> None:
    """Every stream copied packet for packet into ``repaired`` but the ``left_out`` packets (demux
    numbers), the ``strays`` placed by their neighbours, each packet moved by the offset of the
    last jump its stream has taken, and all by ``shift`` seconds."""
    with open_container(path) as source, av.open(str(repaired), "w", **_copy_format(source.format.name)) as out:
        out.metadata.update(source.metadata)
        copies = {}
        for stream in _copied_streams(source):
            copy = out.add_stream_from_template(stream, opaque=True)
            copy.metadata.update(stream.metadata)
            copy.disposition = stream.disposition
            copies[stream.index] = copy
        if source.format.name in SHOWN_STRAY_FORMATS:
            for name, mimetype, data in _covers(path):
                out.add_attachment(name, mimetype, data)
        if source.format.name in (FRAGMENTED_FORMAT,) + SHOWN_STRAY_FORMATS:
            out.set_chapters(_chapters_closed(source.chapters(), jumps))
        for number, packet in enumerate(demux(source)):
            if (packet.dts is None and packet.pts is None) or packet.stream.index not in copies or number in left_out:
                continue  # a demuxer flush marker, a track the muxer writes again itself, or a repeat
            if _is_empty_cue(packet):
                continue  # the MP4 muxer writes the gaps between cues itself
            if number in strays:
                packet.pts, packet.dts = strays[number]
            if source.format.name in SHOWN_STRAY_FORMATS:
                # the muxer works it out from the times shown, as the demuxer did: the demuxer's
                # came from them with the stray times among them
                packet.dts = None
            offset = shift
            for jump in jumps:
                offset = jump.offset_at(packet.stream.index, number, offset)
            ticks = round(offset / Fraction(packet.time_base))
            packet.pts = None if packet.pts is None else packet.pts + ticks
            packet.dts = None if packet.dts is None else packet.dts + ticks
            packet.stream = copies[packet.stream.index]
            out.mux(packet)


def _is_empty_cue(packet) -> bool:
    """Whether a packet is an MP4 text track's empty sample (a text length of 0): the gap between
    two cues, which the MP4 muxer writes itself. Copied into a fragmented MP4 (FFmpeg's demuxer
    hands them over with no duration), the muxer's guess at one's length came out below 0 and
    FFmpeg aborted the process (movenc.c: Assertion next_dts >= 0) at every copy of a fragmented
    MP4 with mov_text subtitles; left out, each cue keeps its time and length."""
    return packet.stream.type == "subtitle" and packet.stream.codec_context.name == "mov_text" and packet.size <= 2


def _copied_streams(source) -> List:
    """The streams a copy carries: an MP4's but its data tracks (a chapter track, a ``tmcd``
    track), which its muxer refuses as packets (the copy failed, the restart's frames lost) and
    writes again itself, from the chapters and the video's timecode tag; a Matroska's but its
    cover pictures, attachments again (:func:`_covers`)."""
    if source.format.name in SHOWN_STRAY_FORMATS:
        return [stream for stream in source.streams if not stream.disposition & av.stream.Disposition.attached_pic]
    if source.format.name != FRAGMENTED_FORMAT:
        return list(source.streams)
    return [stream for stream in source.streams if stream.type != "data"]


def _covers(path: Path) -> List[Tuple[str, str, bytes]]:
    """A Matroska's image attachments (name, MIME type, bytes), which FFmpeg reads as cover pictures:
    copied as a video stream, its muxer wrote each as a video track of one frame, a cover no more."""
    covers = []
    with open_container(path) as source:
        for stream, data in attached_pictures(source):
            if "filename" in stream.metadata and data:
                covers.append((stream.metadata["filename"], stream.metadata.get("mimetype", ""), data))
    return covers


def _chapters_closed(chapters: List[Dict], jumps: List[_Jump]) -> List[Dict]:
    """An MP4's chapters at its copy's times: its chapter track restarts with each part, so each
    run of chapters that starts back before the one before it is the next part's, moved by its
    jump's offset (the muxer, given them as read, squeezed them into one part's time, a ms each)."""
    parts: List[List[Dict]] = [[]]
    offsets = [Fraction(0)] + [jump.offset for jump in jumps]
    for chapter in chapters:
        latest = parts[-1][-1] if parts[-1] else None
        starts_back = latest is not None and _seconds(chapter["start"], chapter) < _seconds(latest["start"], latest)
        if starts_back and len(parts) < len(offsets):
            parts.append([])
        parts[-1].append(chapter)
    moved = [chapter for part, offset in zip(parts, offsets) for chapter in shifted_chapters(part, offset)]
    return [{**chapter, "id": number + 1} for number, chapter in enumerate(moved)]


def _seconds(ticks: int, chapter: Dict) -> Fraction:
    return ticks * Fraction(chapter["time_base"])


def _copy_format(format_name: str) -> Dict:
    """``av.open``'s arguments for a copy of a source whose demuxer is ``format_name``: its own format."""
    return FRAGMENTED_COPY if format_name == FRAGMENTED_FORMAT else {"format": format_name.split(",")[0]}
