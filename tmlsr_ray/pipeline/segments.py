"""Cutting a video into independent segments, decoding nothing but its longest GOPs (no Ray here).

The runner reads the packet index of the chosen video stream (demux only) and cuts it into
segments of about ``segment_s`` seconds. Each input frame belongs to exactly one segment, by its
presentation time. A segment carries the packets its frames need, in decode order:

- from the keyframe its decoding starts at (the cut itself, or the keyframe before it when a long
  GOP is cut by frame count: the frames before the cut are a pre-roll, decoded and dropped; past
  ``max_preroll_frames`` of it, the segment is re-keyed instead, see :mod:`~tmlsr_ray.pipeline.rekey`),
- to the last packet of a frame it owns, so open-GOP leading pictures (shown before the keyframe
  that follows them in decode order) are decoded by the segment that owns their display time.

Those packets are stream-copied into a NUT file, the FFmpeg container that holds nearly every codec
(GIF included) and keeps the source's time base exactly; ProRes, DNxHD and QuickTime Animation,
which NUT cannot hold, into a QuickTime file (a palette video's too: QuickTime states it); Flash
Screen Video 2 into FLV. Streams whose timestamps cannot be trusted
(missing or repeated), and codecs neither holds (APNG), are not cut: they become one segment
holding the whole file, decoded with the timestamp fix-ups of :func:`iter_batches`. Packets an
MP4 edit list hides (flagged discard) are decoded as references and own no frame.
"""

from __future__ import annotations

import bisect
import collections
import hashlib
import io
import itertools
import statistics
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import replace
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple

import av
import numpy as np

from tmlsr_ray.errors import InputError
from tmlsr_ray.models.yuv import Yuv420
from tmlsr_ray.pipeline.container import (EDIT_LIST_IGNORED, SEGMENT_FORMATS, codec_name, copy_video_stream, demux,
                                          ffmpeg_message, open_probed, open_segment_file, raw_video_tag,
                                          read_segment_file)
from tmlsr_ray.pipeline.damage import (DamagedPackets, at_recovery_point, damage_retold_on_failure,
                                       damage_retold_where_short, decoded_frames, picture_packets)
from tmlsr_ray.pipeline.decode import FrameBatch, decode_batches, iter_batches
from tmlsr_ray.pipeline.length import LengthLimits, LengthMeter
from tmlsr_ray.pipeline.probe import RESIZABLE_CODECS, decoded_alone, largest_picture, stamped_by_parser
from tmlsr_ray.pipeline.rekey import Rekeyer, lossless_layout, raw_frame_bytes, source_tags
from tmlsr_ray.pipeline.segment_plan import Cutting, PacketEntry, Segment, SegmentPlan
from tmlsr_ray.pipeline.video_info import VideoInfo

# FFmpeg's names of the containers that store each frame's presentation time
PRESENTATION_TIME_CONTAINERS = {"mov", "matroska", "mpegts"}


# A copied segment file counts this many ticks to each of the source's: a decode time going back
# is moved on by one, which still comes before the next packet's (one source tick may be all there is)
SUBTICKS = 16
TIME_BASE_MAX_DENOMINATOR = 2 ** 31 - 1  # FFmpeg's rationals are C ints


def scan_packets(path: Path, info: VideoInfo) -> List[PacketEntry]:
    """The video stream's packets in decode order (demux only, nothing decoded)."""
    with open_probed(path, info) as container:
        return _scan(container.streams[info.stream_index])


def _scan(stream: "av.video.stream.VideoStream", keyframes: Optional["KeyframeSample"] = None,
          limits: Optional[LengthLimits] = None) -> List[PacketEntry]:
    """``keyframes``: given a sample of the keyframes' packets as they pass; ``limits``: the scan
    stops, refused (InputError), once the stream is over them. A packet of only parameter sets (an
    AVI's chunk of them before a keyframe) is no frame: its sets are the next packet's (see
    :func:`.damage.picture_packets`); counted as one, its segment missed a frame and failed."""
    entries: List[PacketEntry] = []
    last_corrupt = False
    meter = LengthMeter.where_limited(limits, stream.index)
    try:
        for packet in picture_packets(demux(stream.container, stream)):
            if meter is not None:
                meter.offer(packet)
            entries.append(PacketEntry(packet.pts, packet.dts, packet.is_keyframe, packet.is_discard,
                                       packet.duration or 0, packet.size, packet.has_sidedata("palette"),
                                       packet.is_keyframe and at_recovery_point(packet)))
            last_corrupt = packet.is_corrupt
            if keyframes is not None and packet.is_keyframe:
                keyframes.offer(packet)
    except av.error.FFmpegError as exc:
        raise InputError(f"video could not be read ({ffmpeg_message(exc)})") from exc
    if not entries:
        raise InputError("the video stream holds no packet")
    if last_corrupt and len(entries) > 1:
        # The file ends inside this frame (FFmpeg flags a packet it read short): it is left out, as
        # a player stops at the last whole frame. Given to the frame-threaded decoder, its error was
        # dropped with the frames the decoder still held (2 of the 4 whole frames came out).
        entries.pop()
    return entries


class KeyframeSample:
    """Every k-th keyframe's packet, k doubling as they come: at most ``limit``, spread over the
    whole stream, without knowing its length up front."""

    def __init__(self, limit: int = 8):
        self._limit = limit
        self._step = 1
        self._seen = 0
        self.packets: List[bytes] = []

    def offer(self, packet) -> None:
        if self._seen % self._step == 0:
            self.packets.append(bytes(packet))
            if len(self.packets) > self._limit:
                self.packets, self._step = self.packets[::2], self._step * 2
        self._seen += 1


def plan_segments(path: Path, info: VideoInfo, cutting: Cutting, lost_times_span: Optional[Fraction] = None,
                  max_pixels: Optional[int] = None, limits: Optional[LengthLimits] = None) -> SegmentPlan:
    """``lost_times_span``: the length in seconds the track states (its edit list's), where its
    frame times are lost (:func:`frame_times_lost`), as a first reading of its index found; the
    index is read again without the edit list. ``max_pixels``: a sampled keyframe stating a larger
    picture is refused (InputError) before it is decoded; ``limits``: a video over them is refused
    (InputError) as soon as the index has read that far."""
    times_lost = lost_times_span is not None
    with open_probed(path, info, EDIT_LIST_IGNORED if times_lost else None) as container:
        stream = container.streams[info.stream_index]
        keyframes = KeyframeSample() if codec_name(stream) in RESIZABLE_CODECS else None
        scanned = _scan(stream, keyframes, limits)
        if not times_lost and frame_times_lost(info, scanned):
            return plan_segments(path, info, cutting, _stated_span(stream), max_pixels, limits)
        if times_lost:
            info = replace(info, average_rate=_lost_times_rate(scanned, lost_times_span, info.time_base),
                           frame_times_lost=True)
        grown = largest_picture(stream, keyframes.packets, max_pixels) if keyframes else None
        # as the container flags it: a damaged packet before it, flagged a keyframe, is no recovery point
        recovery = next((e.recovery for e in scanned if e.keyframe), False)
        if _lead_damaged(path, info, scanned):  # its first keyframe, flagged again: cut from it as from any
            scanned = [replace(scanned[0], keyframe=True), *scanned[1:]]
        entries = _until_recovered(path, info, _from_first_keyframe(scanned), recovery, cutting.max_preroll_frames)
        format = segment_file_format(stream)
        stated_end = _stated_end(stream, scanned)
        stated_rates = (info.average_rate, stream.guessed_rate, stream.codec_context.framerate)
        by_parser = stamped_by_parser(container)
        intra_only = stream.codec_context.codec.intra_only
    shown = sum(not e.discard for e in entries)
    first_pts = None
    timed = (not times_lost and _presentation_times_known(entries, info)
             and not (by_parser and _reorder_found_late(entries)) and not _shown_before_earlier_frames(entries))
    if timed:
        info = replace(info, average_rate=frames_rate(entries, info.time_base, stated_rates))
    if (timed and shown and format is not None and not _palette_lost(scanned, format)
            and not _keyframes_flagged_wrongly(path, info, entries, intra_only)):
        segments = tuple(cut_packets(entries, _at_picture(info, grown), cutting))  # re-keyed frames counted at it
        first_pts = min(e.pts for e in scanned if not e.discard)
    else:  # a damaged index, or a codec no segment file holds: one segment, the input decoded as a whole
        segments = (Segment(0, 0, len(entries) - 1, ()),)
    last_frame = (round(info.frame_ticks) if times_lost
                  else _last_frame_ticks(entries, stated_end, info.container.startswith("matroska")))
    span = _span_ticks(entries, last_frame) if first_pts is not None else None
    return SegmentPlan(segments, shown or len(entries), _fingerprint(path, info, entries, segments), last_frame,
                       first_pts, info.average_rate, span, grown, times_lost)


# Over one frame in this many sharing its decode time with the one before: times lost; and a
# stream all but one step in this many of which are one step is steady (not variable-rate)
LOST_TIMES_SHARE = 10


def frame_times_lost(info: VideoInfo, entries: Sequence[PacketEntry]) -> bool:
    """Whether an MP4 or MOV's sample table gives frames a duration of 0 (a damaged stts): frames
    that share a decode time, whose presentation times (from ctts) collide, and which its edit
    list, applied to those times, flags as before its start wherever they fall. A whole decode
    gave 29 of a B-frame H.264 clip's 48 frames, the rest dropped as hidden. The decoder still
    shows them in their order, and the track states its length: each frame is a step of it. A
    few repeats among frames of varying steps (one sample of 0 from some other muxer in a phone's
    variable-rate clip) are left as they are: stamped a step apart, its slow stretches would have
    run fast, out of sync with its sound."""
    if not info.container.startswith("mov"):
        return False
    pairs = [(a.dts, b.dts) for a, b in zip(entries, entries[1:]) if a.dts is not None and b.dts is not None]
    repeats = sum(a == b for a, b in pairs)
    steps = collections.Counter(b - a for a, b in pairs if b > a)
    steady = not steps or steps.most_common(1)[0][1] * LOST_TIMES_SHARE >= sum(steps.values()) * (LOST_TIMES_SHARE - 1)
    return bool(repeats) and (repeats * LOST_TIMES_SHARE > len(entries) or steady)


def _stated_span(stream) -> Fraction:
    """The length in seconds a track whose frame times are lost states, which its frames fill."""
    if not stream.duration or not stream.time_base or stream.duration <= 0:
        raise InputError("video's frames share their times and the file states no length to place them by: its "
                         "frame times are damaged (a sample table of zero durations)")
    return stream.duration * Fraction(stream.time_base)


def _lost_times_rate(entries: Sequence[PacketEntry], span: Fraction, time_base: Fraction) -> Fraction:
    """The rate of frames whose times are lost: where most of them step on in decode time (a sample
    table with a few durations of 0, the track's length short of those frames), one over their
    usual step; else as many frames as there are over the length the track states."""
    steps = [b.dts - a.dts for a, b in zip(entries, entries[1:])
             if a.dts is not None and b.dts is not None and b.dts > a.dts]
    if 2 * len(steps) > len(entries):
        return 1 / (statistics.median_low(steps) * Fraction(time_base))
    return len(entries) / span


def planned_info(info: VideoInfo, plan: SegmentPlan) -> VideoInfo:
    """The source's facts as the plan found them: the frames' own rate, the first frame's time,
    whether their times are lost, and the largest picture among its keyframes (each frame is scaled
    to it)."""
    start = plan.first_pts if plan.first_pts is not None else info.start_pts
    return _at_picture(replace(info, average_rate=plan.average_rate, start_pts=start,
                               frame_times_lost=plan.frame_times_lost), plan.picture_size)


def _at_picture(info: VideoInfo, picture_size: Optional[Tuple[int, int]]) -> VideoInfo:
    """``info`` with its frames at ``picture_size`` (None: as it states)."""
    if picture_size is None:
        return info
    width, height = picture_size
    shown = (height, width) if info.rotation % 180 else (width, height)
    return replace(info, coded_width=width, coded_height=height, width=shown[0], height=shown[1])


# How far the rate a stream states may be from its frames' average before theirs is taken, and how
# near a simple fraction of a stated rate theirs must be to be taken as it (the average of a short
# clip's frames is off by up to a fifth of a frame, where 3:2 pulldown shows them 3 and 2 fields long)
RATE_DISAGREEMENT = Fraction(2, 100)
RATE_SNAP = Fraction(1, 100)


def frames_rate(entries: Sequence[PacketEntry], time_base: Fraction,
                stated: Sequence[Optional[Fraction]]) -> Optional[Fraction]:
    """The average rate of the frames shown: the stream's stated average (``stated[0]``; after it
    the other rates FFmpeg reads, its guess and the decoder's) unless their timestamps disagree,
    as soft-telecine MPEG-2's do (a DVD film: 23.976 frames a second flagged to repeat fields,
    which FFmpeg states as their 29.97 display rate, 31 in a VOB, 25 in a raw stream); then the
    simple fraction of a stated rate nearest theirs (4/5 of 29.97), or theirs. A frame's timestamp is left as it is."""
    measured = _rate_between_gaps([e.pts for e in entries if not e.discard], time_base)
    average = stated[0]
    if measured is None or (average and abs(measured / average - 1) <= RATE_DISAGREEMENT):
        return average
    nearest = min((Fraction(rate) * (measured / Fraction(rate)).limit_denominator(5) for rate in stated if rate),
                  key=lambda near: abs(near / measured - 1), default=None)
    return nearest if nearest and abs(nearest / measured - 1) <= RATE_SNAP else measured.limit_denominator(1001)


def _lead_damaged(path: Path, info: VideoInfo, entries: Sequence[PacketEntry]) -> bool:
    """Whether the packets before the first keyframe hold one the decoder cannot read: a first
    keyframe whose damage took its flag with it (and its NAL header, by which FFmpeg flags an
    H.264 keyframe again), not a recording started inside a GOP, whose packets decode to nothing
    without a word. Left out as such a recording's, its GOP went with no word, also with
    damaged_frames "repeat" (37 of 48 frames out, none counted); its first packet, flagged a
    keyframe, makes it a damaged keyframe's, which fails saying where or is repeated."""
    if entries[0].keyframe or not any(e.keyframe for e in entries):
        return False
    with open_probed(path, info, EDIT_LIST_IGNORED if info.frame_times_lost else None) as container:
        stream = container.streams[info.stream_index]
        stream.thread_type = "SLICE"  # each packet's error told at the packet
        for packet in picture_packets(demux(container, stream)):
            if packet.is_keyframe:
                return False
            try:
                packet.decode()
            except av.error.FFmpegError:
                return True
    return False


def _from_first_keyframe(entries: List[PacketEntry]) -> List[PacketEntry]:
    """A stream that starts inside a GOP (a TV recording, a stream dump): the packets before its
    first keyframe, and the leading pictures after it that need them, do not decode; they are
    marked discarded (they own no frame) and the rest is cut as any stream."""
    first = next((i for i, e in enumerate(entries) if e.keyframe), None)
    if not first or entries[first].pts is None:
        return entries
    start = entries[first].pts
    return [replace(e, discard=True) if i < first or (e.pts is not None and e.pts < start) else e
            for i, e in enumerate(entries)]


def _until_recovered(path: Path, info: VideoInfo, entries: List[PacketEntry], recovery: bool,
                     max_preroll: int) -> List[PacketEntry]:
    """A stream whose first keyframe is an H.264 recovery point (``recovery``: an intra-refresh
    recording started inside): its decoder gives no frame until a column of intra blocks has swept
    its pictures whole, and FFmpeg shows none of the partial ones before; those frames are marked
    discarded as the packets before the keyframe are (they own no frame). Owning them, a first
    segment cut at 0.25 s held no decodable frame, also where a packet before the keyframe was
    damaged (cut from the first packet, see _lead_damaged), with damaged_frames "repeat" too. Where
    no frame comes within ``max_preroll`` packets of the keyframe after (a stream that never
    recovers), the plan keeps them: the segments' decode tells what it gives. Counted from the
    keyframe after, not from this one: the sweep takes about a GOP, and B-frames delay the first
    frame past it (12 packets of a keyint-12 recording), so a bound of 8 kept frames no decoder gives
    and a good recording failed ('segment 0 of the video holds no decodable frame')."""
    first = next((i for i, e in enumerate(entries) if e.keyframe), None)
    if first is None or not recovery:
        return entries
    after = next((i for i in range(first + 1, len(entries)) if entries[i].keyframe), len(entries))
    shown = _first_shown(path, info, after + 1 + max_preroll)
    if shown is None:
        return entries
    return [replace(e, discard=True) if e.pts is not None and e.pts < shown else e for e in entries]


def _first_shown(path: Path, info: VideoInfo, packets: int) -> Optional[int]:
    """The time of the first frame the decoder gives of the first ``packets`` (None: none, or none
    with a time). A decoder's error is passed: the segments' decode tells it where it is."""
    with open_probed(path, info, EDIT_LIST_IGNORED if info.frame_times_lost else None) as container:
        stream = container.streams[info.stream_index]
        stream.thread_type = "SLICE"  # frame threads hold frames back: the first given is the first shown
        for packet in itertools.islice(picture_packets(demux(container, stream)), packets):
            try:
                frames = packet.decode()
            except av.error.FFmpegError:
                continue
            if frames:
                return frames[0].pts
    return None


def _stated_end(stream: "av.video.stream.VideoStream", entries: Sequence[PacketEntry]) -> Optional[int]:
    """Where the stream says it ends, if it says so itself. One whose first packets state no decode
    time (MPEG-2 with B-frames in NUT) is given the file's start and duration by FFmpeg, which its
    other streams set: audio running on a second past the video made its last frame a second long."""
    if not stream.duration:
        return None
    start = stream.start_time or 0
    file_start = stream.container.start_time
    if file_start is not None and start == round(Fraction(file_start, av.time_base) / stream.time_base):
        if start != min((e.pts for e in entries if e.pts is not None), default=start):
            return None  # the file's start, not one of its own packets'
    return start + stream.duration


def _last_frame_ticks(entries: Sequence[PacketEntry], stated_end: Optional[int],
                      display_durations: bool) -> Optional[int]:
    """How long the last frame shown lasts (a VFR clip's is not 1 / its average rate): its packet's
    duration where that is a display duration (Matroska's), or the packet is also the last decoded
    (elsewhere an MP4's durations are steps in decode time); else until the stream's stated end;
    else the step before it."""
    shown = [e for e in entries if not e.discard and e.pts is not None]
    if not shown:
        return None
    last = max(shown, key=lambda e: e.pts)
    if last.duration > 0 and (display_durations or last is shown[-1]):
        return last.duration
    if stated_end is not None and stated_end > last.pts:
        return stated_end - last.pts
    stamps = sorted(e.pts for e in shown)
    return stamps[-1] - stamps[-2] if len(stamps) > 1 else None


def _span_ticks(entries: Sequence[PacketEntry], last_frame: Optional[int]) -> int:
    stamps = [e.pts for e in entries if not e.discard]
    return max(stamps) - min(stamps) + (last_frame or 0)


def _palette_lost(scanned: Sequence[PacketEntry], format: str) -> bool:
    """Whether segment files would lose the palette packets state (a pal8 codec's, in AVI or
    QuickTime): a QuickTime segment file states one, its first packet's, and one changed inside a
    segment (a pal8 capture's fade) was lost; NUT states none (Microsoft Video 1's 8-bit mode,
    which QuickTime does not hold, decoded black). Such a stream is decoded as a whole."""
    return any(e.palette for e in scanned[1:]) or (scanned[0].palette and format != "mov")


def segment_file_format(stream: "av.video.stream.VideoStream") -> Optional[str]:
    """The container the video stream's packets are stream-copied into as segment files (NUT for
    most codecs, QuickTime for ProRes, DNxHD, QuickTime Animation, palettes and QuickTime's raw
    video read by its own tag, FLV for Flash Screen Video 2); None where none holds the codec
    (APNG)."""
    try:
        quicktime_first = _needs_quicktime(stream.codec_context, stream.codec_tag)
    except ValueError:  # a FourCC PyAV cannot read (raw Bayer's 0xBA 'R' 'G' 8), nor could it write
        return None
    for format in sorted(SEGMENT_FORMATS, key=lambda name: name != "mov") if quicktime_first else SEGMENT_FORMATS:
        try:
            with av.open(io.BytesIO(), "w", format=format) as probe:
                copy_video_stream(probe, stream, with_tag=False)
        except (ValueError, av.error.FFmpegError):
            continue
        return format
    return None


def _needs_quicktime(ctx, tag: str) -> bool:
    """Whether only a QuickTime segment file decodes to the source's frames: NUT drops the palette
    a pal8 codec's first packet carries (its segments decoded black), which QuickTime states in
    the sample description; and NUT reads raw video by the FourCC naming its layout, while
    QuickTime's raw decoder goes by its own tag too ('yuv2' has signed chroma, 'b64a' is ARGB:
    every pixel came out wrong), which QuickTime keeps."""
    own_tag = ctx.name == "rawvideo" and ctx.pix_fmt and tag.strip("\0 ") and tag != raw_video_tag(ctx.pix_fmt)
    return ctx.pix_fmt == "pal8" or bool(own_tag)


def segment_files_read_tag(stream: "av.video.stream.VideoStream", format: str) -> bool:
    """Whether a segment file holding the stream's own FourCC reads back as the same codec. Ut
    Video needs its tag (its layout is in it); NUT's reader knows MP4's avc1 but not hvc1 or hev1,
    and those streams go with NUT's own tag."""
    written = io.BytesIO()
    try:
        with av.open(written, "w", format=format) as probe:
            one = av.Packet(b"\0")  # NUT writes its header with the first packet
            one.pts = one.dts = 0
            one.time_base, one.stream, one.is_keyframe = stream.time_base, copy_video_stream(probe, stream), True
            probe.mux(one)
        with read_segment_file(written.getvalue()) as read_back:
            return read_back.streams.video[0].codec_context.name == stream.codec_context.name
    except (ValueError, IndexError, av.error.FFmpegError):
        return False


def _presentation_times_known(entries: Sequence[PacketEntry], info: VideoInfo) -> bool:
    """Whether packet timestamps are presentation times the cuts can trust: present, distinct,
    starting at a keyframe (or at what :func:`_from_first_keyframe` discarded before one), and,
    for a stream that may reorder frames (B-frames), not decode times: AVI and raw streams stamp
    those, increasing in decode order, and so does MXF where its index states no reordering (an
    H.264 long GOP FFmpeg wrote). Containers that store presentation times are trusted even then
    (a stream that allows B-frames but used none), and so is a stream of keyframes only, which
    reorders nothing (IMX / D-10 and I-frame-only MPEG-2, whose decoder allows B-frames: one
    segment, on one replica)."""
    stamps = [e.pts for e in entries]
    if None in stamps or len(set(stamps)) != len(stamps) or not (entries[0].keyframe or entries[0].discard):
        return False
    if info.container.split(",")[0] in PRESENTATION_TIME_CONTAINERS or all(e.keyframe for e in entries):
        return True
    in_decode_order = all(a < b for a, b in zip(stamps, stamps[1:]))
    return not (info.reorders_frames and in_decode_order and len(stamps) > 2)


# Frames decoded to tell whether a stream whose every packet is flagged a keyframe has others
KEYFRAME_CHECK_FRAMES = 60


def _keyframes_flagged_wrongly(path: Path, info: VideoInfo, entries: Sequence[PacketEntry], intra_only: bool) -> bool:
    """Whether every packet is flagged a keyframe though the stream has frames that are not:
    FFmpeg's AVI reader flags every H.263 frame, as an index rebuilt by a repair tool (DivFix)
    flags every frame; cut there, a segment decoded its first frames from no reference picture.
    Told by decoding the first frames, only where every packet of a codec not intra-only is flagged."""
    if intra_only or len(entries) < 2 or not all(e.keyframe for e in entries):
        return False
    with open_probed(path, info) as container:
        stream = container.streams[info.stream_index]
        try:
            first_frames = itertools.islice(decoded_frames(container, stream), KEYFRAME_CHECK_FRAMES)
            return not all(frame.key_frame for frame in first_frames)
        except av.error.FFmpegError:
            return True  # the whole decode says what is wrong


def _reorder_found_late(entries: Sequence[PacketEntry]) -> bool:
    """Whether frames show after their decode time, but not the first: a raw stream's parser
    stamps the frames it reads before it meets a B-frame as shown when decoded (MPEG-1 states no
    reorder delay up front), so its first GOP's times are wrong, a P-frame shown before the
    B-frames it comes after (and one decoded segment by segment took another's time)."""
    first = entries[0]
    return first.pts == first.dts and any(e.dts is not None and e.pts > e.dts for e in entries)


def _shown_before_earlier_frames(entries: Sequence[PacketEntry]) -> bool:
    """Whether a keyframe is shown before a frame decoded ahead of it: recordings joined with a
    step back in their clock too small to be closed as a jump (:mod:`~tmlsr_ray.pipeline.timeline`:
    HLS segments across a discontinuity that overlap by a few frames). Cut by their times, the
    frames of both sides interleave, and the segment at the join failed on a time going back."""
    latest = None
    for entry in entries:
        if entry.discard:
            continue
        if entry.keyframe and latest is not None and entry.pts < latest:
            return True
        latest = entry.pts if latest is None else max(latest, entry.pts)
    return False


def cut_packets(entries: Sequence[PacketEntry], info: VideoInfo, cutting: Cutting) -> Iterator[Segment]:
    """The segments of a stream whose packets (decode order) have trusted presentation times."""
    # presentation order of the frames shown (a discarded one is only ever a decode pre-roll)
    order = sorted((i for i, e in enumerate(entries) if not e.discard), key=lambda i: entries[i].pts)
    shift = max(0, -min(e.pts for e in entries))
    rate = info.average_rate or _rate_between_gaps([e.pts for e in entries], info.time_base) or Fraction(25)
    length = max(1, min(cutting.max_frames, round(cutting.segment_s * float(rate))))
    cutter = _Cutter(entries, order, cutting, length, _rekeyed_length(info, cutting, length))
    starts = [0]
    while True:
        cut = cutter.next_cut(starts[-1])
        if cut is None or cut >= len(order):
            break
        starts.append(cut)
    bounds = starts + [len(order)]
    for index, (begin, end) in enumerate(zip(bounds, bounds[1:])):
        owned = order[begin:end]
        first, last = cutter.decode_start(owned), max(owned)
        if info.interlaced:
            first, last = cutter.with_neighbours(begin, end, first, last)
        yield Segment(index, first, last, tuple(sorted(entries[i].pts for i in owned)), shift,
                      rekeyed=cutter.rekeyed(begin))


def _rekeyed_length(info: VideoInfo, cutting: Cutting, length: int) -> int:
    """Frames in a re-keyed segment: its decoded frames within ``rekey_max_bytes``; 0 where long
    GOPs are not re-keyed (turned off, or no lossless codec holds the stream's frames)."""
    if not cutting.rekey_max_bytes or lossless_layout(info.pix_fmt, info.coded_width,
                                                       info.coded_height) is None:
        return 0
    return max(1, min(length, cutting.rekey_max_bytes // raw_frame_bytes(info)))


class _Cutter:
    """Where one stream's cuts fall, in presentation positions (indices into ``order``)."""

    def __init__(self, entries: Sequence[PacketEntry], order: Sequence[int], cutting: Cutting,
                 length: int, rekeyed_length: int):
        self._entries, self._order, self._cutting = entries, order, cutting
        self._length, self._rekeyed_length = length, rekeyed_length
        self._keyframes = [p for p, i in enumerate(order) if entries[i].keyframe]
        self._bytes_before = [0, *itertools.accumulate(entries[i].size for i in order)]  # presentation order
        # the last keyframe at or before each packet (decode order), -1 for none: a long GOP's
        # cuts would otherwise each walk back through it, quadratic in the GOP's length
        self._last_key: List[int] = []
        for index, entry in enumerate(entries):
            self._last_key.append(index if entry.keyframe else (self._last_key[-1] if index else -1))

    def next_cut(self, start: int) -> Optional[int]:
        """The next cut after ``start``: a keyframe near the ideal length, else a cut inside the GOP
        (its segment decoded from the keyframe when the pre-roll stays small, else re-keyed, up
        to the next keyframe that fits at most), else, where long GOPs are not re-keyed, the next keyframe."""
        rekeyed = self.rekeyed(start)
        length = self._within_bytes(start, self._rekeyed_length if rekeyed else self._length)
        ideal = start + length
        keyframes = self._keyframes
        if rekeyed:
            # A re-keyed file takes the colour tags and size of its first frame; a keyframe may
            # change them (a new sequence header), and the frames from it need no re-keying.
            # One whose pre-roll passes the bound, an H.264 recovery point, changes neither (only an
            # IDR picture starts a new sequence) and is re-keyed too: cut at each, an intra-refresh
            # stream's segments were a GOP long (keyint 12 against a bound of 8: 12 frames, not 24).
            fitting = self._first_fitting(range(bisect.bisect_right(keyframes, start),
                                                bisect.bisect_left(keyframes, min(ideal, len(self._order)))))
            if fitting is not None:
                return fitting
        if ideal >= len(self._order):
            return None
        low, high = start + max(1, length // 2), min(start + self._cutting.max_frames, ideal + length // 2)
        # Bisected bounds, not a slice to the end: an all-intra stream has a keyframe at every frame,
        # and slicing the rest of them at each cut made planning quadratic in the video's length.
        near = keyframes[bisect.bisect_left(keyframes, low):bisect.bisect_right(keyframes, high)]
        fitting = [p for p in near if self._fits(p)]
        if fitting:
            return min(fitting, key=lambda p: abs(p - ideal))
        if self._rekeyed_length or self._fits(ideal):
            return ideal
        return self._keyframe_past_the_bound(start, ideal, near)

    def _keyframe_past_the_bound(self, start: int, ideal: int, near: Sequence[int]) -> Optional[int]:
        """Not re-keying, the first keyframe after ``ideal`` that fits, within ``max_frames`` of
        ``start``; else the one nearest ``ideal``, whose segment decodes the GOP before its recovery
        point, past the bound by less than a GOP. Waiting for one that fits made the rest of an
        intra-refresh stream whose GOP passes the bound one segment (a webcam's, keyint 12 against
        8: 1 segment of 48 frames), however long, its packets held whole."""
        keyframes = self._keyframes
        fitting = self._first_fitting(range(bisect.bisect_right(keyframes, ideal),
                                            bisect.bisect_right(keyframes, start + self._cutting.max_frames)))
        if fitting is not None:
            return fitting
        if near:
            return min(near, key=lambda p: abs(p - ideal))
        after = bisect.bisect_right(keyframes, ideal)
        return keyframes[after] if after < len(keyframes) else None

    def _first_fitting(self, places: range) -> Optional[int]:
        """The first of the keyframes at ``places`` (indices into them) that :meth:`_fits`, if any."""
        return next((self._keyframes[at] for at in places if self._fits(self._keyframes[at])), None)

    def _within_bytes(self, start: int, length: int) -> int:
        """``length`` frames from ``start``, fewer where their packets pass ``max_bytes``: a studio's
        intra-frame master runs at 200 MB/s and more (ProRes 4444 XQ at 4K), and 10 seconds of it
        made a segment of gigabytes, held by the runner and carried through the object store whole.
        Counted from ``start``, not at the stream's average: a master that opens on black made its
        busy part's segments twice the bound."""
        if not self._cutting.max_bytes:
            return length
        limit = self._bytes_before[start] + self._cutting.max_bytes
        return max(1, min(length, bisect.bisect_right(self._bytes_before, limit) - 1 - start))

    def rekeyed(self, start: int) -> bool:
        """Whether the segment starting at ``start`` is re-keyed: decoding it from its keyframe
        would decode and drop more frames than a pre-roll may."""
        return bool(self._rekeyed_length) and not self._fits(start)

    def _fits(self, position: int) -> bool:
        """Whether a segment starting at ``position`` decodes from a keyframe within the pre-roll
        bound. Only such a cut is taken, or one re-keyed (the cutting pass decodes from that keyframe,
        however far): an intra-refresh stream's recovery point past the bound (keyint 250, B-frames),
        cut at anyway, started its segment there, whose frames were not whole yet (a good TS failed
        as damaged; an AVI gave 42 frames of 48). Not re-keying, the cut waits for a keyframe within
        the bound: a longer segment, its frames copied, costs less than decoding the GOP twice."""
        return self._preroll(position) <= self._cutting.max_preroll_frames

    def decode_start(self, owned: Sequence[int]) -> int:
        """The last keyframe, in decode order, at or before every owned packet and shown no later
        than the first owned frame (a keyframe shown later would leave that frame a leading picture).
        Where that is a recovery point, the keyframe before it, however far (the cuts keep the
        pre-roll bound, see :meth:`_fits`): started at one, the decoder gave none of its first
        frames (an intra-refresh clip cut there lost 1 frame of 48 with B-frames, 6 without), and
        damaged ones where B-frames refer past it, which a decode from the GOP before gives whole."""
        first_shown = min(self._entries[i].pts for i in owned)
        key = self._last_key[min(owned)]
        while key >= 0 and self._entries[key].pts > first_shown:
            key = self._last_key[key - 1] if key else -1
        if key > 0 and self._entries[key].recovery and self._last_key[key - 1] >= 0:
            return self._last_key[key - 1]
        return max(key, 0)

    def with_neighbours(self, begin: int, end: int, first: int, last: int) -> Tuple[int, int]:
        """The packets of the segment owning ``begin`` … ``end`` widened to the frames shown just
        before and after it, decoded and dropped: deinterlacing interpolates each frame from its
        neighbours, and the segment's first and last frames came out unlike a plain decode's (the
        one before only where the pre-roll it needs stays within bounds)."""
        if end < len(self._order):
            last = max(last, self._order[end])
        if begin:
            before = self.decode_start([self._order[begin - 1]])
            if self._order[begin] - before <= self._cutting.max_preroll_frames:
                first = min(first, before)
        return first, last

    def _preroll(self, position: int) -> int:
        """Packets decoded before the frame at ``position`` when its segment starts there."""
        packet = self._order[position]
        return packet - self.decode_start([packet])


def _rate_between_gaps(stamps: Sequence[int], time_base: Fraction) -> Optional[Fraction]:
    """The frames' average rate leaving out the steps of over 4 times the usual one: a dropout in a
    recording (a lost signal) is no slower frame rate."""
    steps = np.diff(np.sort(np.asarray(stamps, dtype=np.int64)))
    kept = steps[steps <= 4 * np.median(steps)] if len(steps) else steps
    return Fraction(len(kept)) / (int(kept.sum()) * time_base) if len(kept) and kept.sum() > 0 else None


def _fingerprint(path: Path, info: VideoInfo, entries, segments) -> str:
    digest = hashlib.sha256()
    digest.update(f"{path.stat().st_size}|{info.stream_index}|{info.codec}|{info.time_base}".encode())
    digest.update(repr([(e.pts, e.dts, e.keyframe) for e in entries]).encode())
    digest.update(repr([(s.first_packet, s.last_packet, len(s.pts), s.rekeyed) for s in segments]).encode())
    return digest.hexdigest()[:16]


def extract_segments(path: Path, info: VideoInfo, segments: Sequence[Segment],
                     stop: Optional[threading.Event] = None, repeat_damaged: bool = False,
                     max_preroll: int = Cutting.max_preroll_frames) -> Iterator[Tuple[Segment, bytes]]:
    """Each segment's packets stream-copied into a segment file, in one pass over the input (a packet
    that two segments need, pre-roll or a leading picture's reference, goes into both); a whole
    segment is the input file itself; a re-keyed one's frames are decoded on the way (see
    :mod:`~tmlsr_ray.pipeline.rekey`; ``repeat_damaged``: a packet its decoder cannot read is
    left out, counted in the segment's ``damaged_packets``, else it fails the task as a replica's
    decode does, and a segment whose keyframe its decoder cannot read starts with the GOP before
    it, of at most ``max_preroll`` packets: see :class:`_GopBefore`). Segments come out as their
    last packet, or frame, is read."""
    pending = sorted(segments, key=lambda s: s.first_packet)
    for segment in [s for s in pending if s.whole]:
        yield segment, path.read_bytes()
    copied = [s for s in pending if not s.whole and not s.rekeyed]
    rekeyed = [s for s in pending if s.rekeyed]
    if not copied and not rekeyed:
        return
    with open_probed(path, info) as container:
        stream = container.streams[info.stream_index]
        format = segment_file_format(stream) if copied else SEGMENT_FORMATS[0]
        with_tag = segment_files_read_tag(stream, format)
        damaged = DamagedPackets(repeat_damaged, lambda packet: info.seconds(packet.pts))
        rekeyer = Rekeyer(path, stream, info, rekeyed, stop, damaged)
        gop_before = _GopBefore(stream, max_preroll if repeat_damaged else 0)
        open_pieces: List[_SegmentFile] = []
        index = -1
        palette = None  # the palette in force (a pal8 codec's: AVI and QuickTime send it once, and on changes)
        try:
            # numbered as the index numbers them, a keyframe's parameter sets stored apart in its packet,
            # as a muxer stores them: cut at it, they stayed at the end of the segment before
            for packet in picture_packets(demux(container, stream)):
                index += 1
                if packet.has_sidedata("palette"):
                    palette = packet.get_sidedata("palette")
                while copied and copied[0].first_packet == index:
                    open_pieces.append(gop_before.opened(copied.pop(0), packet, format, with_tag, palette))
                gop_before.add(packet)
                for piece in open_pieces:
                    piece.add(packet, palette)
                for piece in [p for p in open_pieces if p.segment.last_packet == index]:
                    open_pieces.remove(piece)
                    yield piece.segment, piece.close()
                yield from rekeyer.feed(index, packet, palette)
                if not copied and not open_pieces and not rekeyer.pending:
                    return
            yield from rekeyer.close()
        except av.error.FFmpegError as exc:
            raise InputError(f"video could not be decoded ({ffmpeg_message(exc)})") from exc
    for piece in open_pieces:  # the index promised more packets than the second read found
        yield piece.segment, piece.close()


class _GopBefore:
    """The GOPs since the latest keyframes read (at most ``limit`` packets in all, the most a
    pre-roll decodes and drops; 0: none kept), for a segment whose keyframe its decoder cannot
    read (a bit error): from the latest earlier keyframe that it can, they start its file, so that
    the frame before the damaged ones is the one shown before them, as the decode of the whole
    video and a player show it. Cut there, the segment had no frame to show in their place, and
    failed; so did one whose GOP before had a damaged keyframe too (a burst over two GOPs). Past
    ``limit``, none is given, and the segment fails saying so: the frame was seconds before."""

    def __init__(self, stream, limit: int):
        self._stream = stream
        self._limit = limit
        self._gops: collections.deque = collections.deque()  # of packets, each GOP from its keyframe
        self._kept = 0  # packets in them

    def add(self, packet) -> None:
        if not self._limit:
            return
        if packet.is_keyframe:
            self._gops.append([])
        elif not self._gops:
            return  # none to give before the first keyframe
        self._gops[-1].append(packet)
        self._kept += 1
        while self._kept > self._limit and self._gops:
            self._kept -= len(self._gops.popleft())

    def opened(self, segment: Segment, packet, format: str, with_tag: bool, palette) -> "_SegmentFile":
        """The file of a segment whose first packet is ``packet``, the GOPs before it first where
        ``packet`` is a keyframe that does not decode. A recovery point decoded as pre-roll does not
        alone, good or not: the GOPs before, flushed at it, only doubled the segment's pre-roll."""
        wanted = packet.is_keyframe and self._gops and not _preroll_recovery_point(segment, packet)
        before = self._from_decodable() if wanted and not self._decodes(packet) else []
        piece = _SegmentFile(replace(segment, gop_before=len(before)), self._stream, format, with_tag)
        for earlier in before:
            piece.add(earlier, palette)
        return piece

    def _from_decodable(self) -> List["av.Packet"]:
        """The packets kept from the latest keyframe that decodes (none where none does)."""
        for at in range(len(self._gops) - 1, -1, -1):
            if self._decodes(self._gops[at][0]):
                return [p for gop in itertools.islice(self._gops, at, None) for p in gop]
        return []

    def _decodes(self, packet) -> bool:
        try:
            return bool(decoded_alone(self._stream, bytes(packet)))
        except (av.error.FFmpegError, ValueError):
            return False


def _preroll_recovery_point(segment: Segment, packet) -> bool:
    """Whether ``packet``, the first of ``segment``'s file, is an H.264 recovery point decoded as
    its pre-roll (see :meth:`_Cutter.decode_start`): its frames are whole by the segment's own."""
    return packet.pts is not None and packet.pts < min(segment.pts) and at_recovery_point(packet)


class _SegmentFile:
    def __init__(self, segment: Segment, stream, format: str, with_tag: bool):
        self.segment = segment
        self._buffer = io.BytesIO()
        self._subticks = _subticks(stream.time_base)
        self._time_base = stream.time_base / self._subticks
        self._out = open_segment_file(self._buffer, format, self._time_base)
        self._stream = copy_video_stream(self._out, stream, with_tag)
        self._stream.time_base = self._time_base
        self._last_dts: Optional[int] = None
        self._first = True
        self._undated: List[av.Packet] = []  # copies held until a later packet's decode time is known

    def add(self, packet, palette=None) -> None:
        """``palette``: the one in force at this packet, which a segment's first packet carries
        (its frames decoded black where the source had stated it only at its start)."""
        copy = av.Packet(bytes(packet))
        if palette is not None and (self._first or packet.has_sidedata("palette")):
            copy.set_sidedata(palette)
        self._first = False
        shift = self.segment.shift
        copy.pts = None if packet.pts is None else (packet.pts + shift) * self._subticks
        # PyAV says None or 0 for an unknown one; QuickTime ends its edit list at the latest frame's
        # time plus its duration, and a last frame lasting 0 lay outside it, never decoded
        copy.duration = packet.duration * self._subticks if packet.duration else 1
        copy.is_keyframe = packet.is_keyframe
        copy.time_base = self._time_base
        copy.stream = self._stream
        if packet.dts is None:
            self._undated.append(copy)
            return
        dts = (packet.dts + shift) * self._subticks
        self._mux_undated(dts)
        self._mux(copy, dts)

    def close(self) -> bytes:
        self._mux_undated(None)
        self._out.close()
        return self._buffer.getvalue()

    def _mux(self, copy, dts: Optional[int]) -> None:
        copy.dts = self._increasing(dts)
        self._check_order(copy)
        self._out.mux(copy)

    def _mux_undated(self, next_dts: Optional[int]) -> None:
        """The packets held for want of a decode time, each given one just before the next packet's
        (``next_dts``; None: the file ends) and no later than its own presentation time. FFmpeg
        states none for a Matroska stream's first packets, its reorder delay still unknown; left
        unset, NUT's muxer guessed a camera dump's first keyframe decoded after the packet that
        follows it, and refused that packet ('Invalid argument')."""
        for copy, dts in zip(self._undated, _decode_times_before([c.pts for c in self._undated], next_dts)):
            self._mux(copy, dts)
        self._undated = []

    def _check_order(self, copy) -> None:
        """A frame shown before the time it would be decoded at, once that time was moved on past
        the one before (a damaged timestamp: a Matroska block's time with a bit flipped put one
        frame 4 s late), is refused in words: NUT answered FFmpeg's bare 'Invalid argument',
        which read as a fault of the decoder."""
        if copy.pts is not None and copy.dts is not None and copy.pts < copy.dts:
            shown, after = (float((ticks - self.segment.shift * self._subticks) * self._time_base)
                            for ticks in (copy.pts, copy.dts))
            raise InputError(f"the video's frame times go back: a frame shown at {shown:.3f} s is stored after one "
                             f"at {after:.3f} s (a damaged timestamp)")

    def _increasing(self, dts: Optional[int]) -> Optional[int]:
        """A decode time that does not go on (FFmpeg reads one going back in some soft-telecine
        DVDs) moved a sub-tick past the last, as FFmpeg's command line moves it on: NUT refuses it
        and the task failed, while the decoder goes by the packets' order and presentation times."""
        if dts is not None and self._last_dts is not None and dts <= self._last_dts:
            dts = self._last_dts + 1
        self._last_dts = dts if dts is not None else self._last_dts
        return dts


def _decode_times_before(pts: Sequence[Optional[int]], next_dts: Optional[int]) -> List[Optional[int]]:
    """Decode times, increasing, for packets in decode order that state none: each a sub-tick
    before the next one's (the last's before ``next_dts``), or its own presentation time where
    that is earlier; None where neither is known."""
    times: List[Optional[int]] = []
    bound = next_dts
    for shown in reversed(pts):
        known = [t for t in (shown, None if bound is None else bound - 1) if t is not None]
        bound = min(known) if known else None
        times.append(bound)
    return times[::-1]


def _subticks(time_base: Fraction) -> int:
    """The sub-ticks a segment file counts to each of the source's ticks: SUBTICKS, fewer where
    the finer time base would not fit FFmpeg's rational (an MP4 counting nanoseconds failed the
    task with an OverflowError; one of its ticks is far shorter than any frame anyway)."""
    subticks = SUBTICKS
    while subticks > 1 and (Fraction(time_base) / subticks).denominator > TIME_BASE_MAX_DENOMINATOR:
        subticks //= 2
    return subticks


def decode_segment(data: bytes, info: VideoInfo, segment: Segment, batch_size: int,
                   stop: Optional[threading.Event] = None, planes: Optional[Yuv420] = None,
                   damaged: Optional[DamagedPackets] = None) -> Iterator[FrameBatch]:
    """The segment's own frames, decoded from its packets, in display order, with their source
    timestamps; pre-roll and leading pictures of the next segment are decoded and dropped.
    ``planes``, ``damaged``: see :func:`~tmlsr_ray.pipeline.decode.decode_batches`."""
    if segment.whole:
        yield from _decode_whole(data, info, batch_size, stop, planes, damaged)
        return
    damaged = damaged if damaged is not None else DamagedPackets()
    # the GOP before a damaged keyframe on one thread: frame threads lost its last frames beside a
    # damaged one of them, or reported that one only as it was drained; so a file opening at a
    # recovery point: told a packet damaged before the stream recovered, frame threads gave no frame
    # until the keyframe after (17 of an intra-refresh recording's 28, no word), one thread all 28
    one_thread = segment.gop_before or (damaged.repeat and _opens_at_recovery_point(data))
    threads = "SLICE" if one_thread else "AUTO"
    try:
        yield from _decode_owned(data, info, segment, batch_size, stop, planes, damaged, threads)
    except InputError:
        if not (damaged.repeat and damaged.damaged and not damaged.frames):
            raise
        # A frame-threaded decoder drops the frames its other threads hold when one reports damage:
        # where that left the segment no frame to show in the damaged ones' place, one thread decodes
        # it again (a last GOP of two frames, the second damaged, lost both)
        damaged.restart()
        yield from _decode_owned(data, info, segment, batch_size, stop, planes, damaged, "SLICE")


def _decode_owned(data: bytes, info: VideoInfo, segment: Segment, batch_size: int, stop: Optional[threading.Event],
                  planes: Optional[Yuv420], damaged: DamagedPackets, thread_type: str) -> Iterator[FrameBatch]:
    owned = np.asarray(segment.pts, dtype=np.int64)
    seen = set()
    if segment.rekeyed:  # its file holds the frames as shown: deinterlaced already
        info = replace(info, interlaced=False)
    with read_segment_file(data) as container:
        stream = container.streams.video[0]
        to_source = _timestamp_map(stream.time_base, info.time_base, segment.shift)
        tolerance = _match_tolerance(np.union1d(owned, _file_stamps(data, to_source)), info)
        # the frame shown before its own where its keyframe is damaged, whichever of the GOP before
        # that is (the decode passes one): the model takes it too, and it shows in place of the
        # frames the decoder does not give (see render.MissingFrames)
        given = np.union1d(owned, _file_stamps(data, to_source, segment.gop_before)) if segment.gop_before else owned
        damaged.gop_before = segment.gop_before
        retag = source_tags(stream)
        damaged.seconds = lambda packet: info.seconds(to_source(packet.pts))
        # reported with a frame it owns, or at the flush (one of the file's last packets): a damaged
        # packet of pre-roll is the segment's before it, which counts it
        damaged.owns = lambda packet: (packet.pts is None
                                       or _owned_stamp(to_source(packet.pts), owned, tolerance) is not None)

        def stamp(frame) -> Optional[int]:
            if retag is not None:  # before the frame is read: its tags choose the conversion
                retag(frame)
            pts = _owned_stamp(to_source(frame.pts), given, tolerance)
            if pts is None or pts in seen:
                return None
            seen.add(pts)
            return pts

        with damage_retold_on_failure(partial(_reopened_segment, data), damaged, info,
                                      frame_threads=thread_type == "AUTO"):
            yield from decode_batches(container, stream, info, batch_size, stamp, stop, planes=planes,
                                      damaged=damaged, what=f"segment {segment.index} of the video",
                                      thread_type=thread_type)
    # frames left out with no word: HEVC's damaged keyframe, its GOP, on one thread too (a segment
    # cut there, decoded after the GOP before, repeated its 12 frames and counted no damaged packet)
    # and a picture whose damaged start code ran it into a neighbour's packet: no frame planned for it
    missing = sorted(set(owned.tolist()) - seen)
    short = damaged.or_lacking(max(0, len(missing) - damaged.unshown))
    damage_retold_where_short(partial(_reopened_segment, data), damaged, info,
                              short=short, on_one_thread=thread_type != "AUTO",
                              lost_at=info.seconds(missing[0]) if missing else None,
                              counted_before=segment.rekeyed)


@contextmanager
def _reopened_segment(data: bytes) -> Iterator[Tuple[object, object]]:
    with read_segment_file(data) as container:
        yield container, container.streams.video[0]


def _decode_whole(data: bytes, info: VideoInfo, batch_size: int, stop, planes, damaged) -> Iterator[FrameBatch]:
    # The whole input as a temporary file: the decoder of a whole segment wants a seekable file.
    with tempfile.NamedTemporaryFile(prefix="tmlsr-segment-") as spooled:
        spooled.write(data)
        spooled.flush()
        yield from iter_batches(Path(spooled.name), info, batch_size, stop, planes, damaged)


def _timestamp_map(stream_base: Fraction, source_base: Fraction, shift: int = 0):
    def convert(pts: Optional[int]) -> Optional[int]:
        if pts is None:
            return None
        return round(Fraction(pts) * Fraction(stream_base) / Fraction(source_base)) - shift
    return convert


def _opens_at_recovery_point(data: bytes) -> bool:
    """Whether a segment file's first packet is an H.264 recovery point (see :func:`.damage.at_recovery_point`)."""
    with read_segment_file(data) as container:
        first = next((packet for packet in container.demux(video=0) if packet.size), None)
        return first is not None and at_recovery_point(first)


def _file_stamps(data: bytes, to_source, packets: Optional[int] = None) -> np.ndarray:
    """The source stamps of a segment file's packets (its first ``packets``; None: all): its own
    frames, and those it decodes and drops (pre-roll, an interlaced segment's neighbours)."""
    with read_segment_file(data) as container:
        read = itertools.islice(container.demux(video=0), packets)
        return np.array(sorted({to_source(p.pts) for p in read if p.pts is not None}), dtype=np.int64)


def _match_tolerance(stamps: np.ndarray, info: VideoInfo) -> int:
    """How far a decoded stamp may be from its planned one (rounding of a container's time base):
    under half the smallest gap between the frames the segment file holds, dropped ones too (the
    owned frames' gaps alone let a VFR frame decoded as pre-roll 10 ms before the first owned one,
    100 ms apart, take its stamp). A lone frame's gap is the video's frame step at most: where a
    tick is a frame (AVI), the frame before it, decoded as pre-roll or context, took its stamp."""
    if len(stamps) < 2:
        step = round(info.frame_ticks) if info.frame_ticks else 4
        return min(1, max(0, step // 2 - 1))
    return max(0, int(np.diff(stamps).min()) // 2 - 1)


def _owned_stamp(pts: Optional[int], owned: np.ndarray, tolerance: int) -> Optional[int]:
    if pts is None:
        return None
    at = int(np.searchsorted(owned, pts))
    for candidate in (at - 1, at):
        if 0 <= candidate < len(owned) and abs(int(owned[candidate]) - pts) <= tolerance:
            return int(owned[candidate])
    return None
