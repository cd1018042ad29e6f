"""The decode stage for videos: stream a probed video's frames in batches (no Ray here; the
probe is :mod:`~tmlsr_ray.pipeline.probe`).

One decoder (PyAV/FFmpeg) for every input, so every input has the same frame semantics:
- frames are counted and time-stamped as they decode (never from the container's count);
- rotation metadata is applied to the pixels (the output carries no display matrix);
- interlaced streams are deinterlaced (bwdif, one frame per frame), since the model would blend
  two moments' fields into each output line;
- 8-bit inputs come out as uint8 RGB, deeper ones (10/12-bit) as uint16 RGB, so nothing is lost
  before the model sees it.
"""

from __future__ import annotations

import math
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import av
import av.filter
import numpy as np
import torch
from av.video.reformatter import Interpolation

from tmlsr_ray.errors import CanceledError, InputError
from tmlsr_ray.models.yuv import (SITINGS, SWS_MATRIX, UNTAGGED, YCGCO, Siting, Yuv420, Yuv420Frames, decoded_layout,
                                  nearest_sws_matrix, yuv420_to_rgb)
from tmlsr_ray.pipeline.container import EDIT_LIST_IGNORED, ffmpeg_message, open_probed
from tmlsr_ray.pipeline.damage import (DamagedPackets, damage_retold_on_failure, damage_retold_where_short,
                                      damage_told_as_decoded, decoded_frames, losses_untold_are_damage)
from tmlsr_ray.pipeline.probe import seconds_from_start
from tmlsr_ray.pipeline.video_info import VideoInfo, colour_tags, with_container_colour

JUMP_BACK_S = Fraction(1, 10)  # a step back of a clock that is a jump, not a frame out of place (FFmpeg's)


@dataclass
class FrameBatch:
    """Consecutive decoded frames: (N, H, W, 3) RGB, uint8 or uint16 (or their 4:2:0 planes, where
    asked for), and their timestamps."""

    index: int
    frames: Union[np.ndarray, Yuv420Frames]
    pts: List[int]


def _state_container_colour(frame, colour: Dict[str, int]) -> None:
    """Tags the frame with the stream's colour (:func:`probe_video`'s) where it states none: a
    segment file keeps no container colour, and HEVC's decoder drops it."""
    for name, value in with_container_colour(colour_tags(frame), colour).items():
        setattr(frame, name, value)


def iter_batches(path: Path, info: VideoInfo, batch_size: int, stop: Optional[threading.Event] = None,
                 planes: Optional[Yuv420] = None, damaged: Optional[DamagedPackets] = None) -> Iterator[FrameBatch]:
    """Decodes the chosen stream, yielding batches; memory holds one batch at a time. Nothing
    plans a whole stream's frames, and frame threads drained a raw H.264 stream whose last packet
    was damaged without a word, 45 of its 48 frames out: a decode whose frames came short of its
    packets, or that had damage, is decoded again on one thread to tell where (see
    :func:`~tmlsr_ray.pipeline.damage.damage_told_on_one_thread`); one that repeats damaged frames decodes on one thread
    (the model, not the decoder, sets the pace), each lost frame's place shown by the frame
    before (see :func:`_stood_in`)."""
    clock = _FrameClock(info)
    damaged = damaged if damaged is not None else DamagedPackets()
    with _reopened_whole(path, info) as (container, stream):
        damaged.seconds = damaged.seconds or seconds_from_start(stream)
        damaged.order_rate = info.average_rate
        if damaged.repeat:
            damage_told_as_decoded(stream, damaged, info)
        with damage_retold_on_failure(partial(_reopened_whole, path, info), damaged, info,
                                      frame_threads=not damaged.repeat):
            yield from decode_batches(container, stream, info, batch_size, clock.stamp, stop, planes=planes,
                                      times_in_order=True, damaged=damaged, stand_ins=damaged.repeat,
                                      thread_type="SLICE" if damaged.repeat else "AUTO")
    # a recording started inside a GOP comes short by its packets before the first keyframe: no
    # sign of damage, and it was decoded twice again for them
    if not damaged.repeat:
        damage_retold_where_short(partial(_reopened_whole, path, info), damaged, info,
                                  short=damaged.short())


@contextmanager
def _reopened_whole(path: Path, info: VideoInfo) -> Iterator[Tuple[Any, Any]]:
    with open_probed(path, info, EDIT_LIST_IGNORED if info.frame_times_lost else None) as container:
        yield container, container.streams[info.stream_index]


def planar_layout(info: VideoInfo) -> Optional[Yuv420]:
    """The layout in which the decoder's own planes can go to the model, converted to RGB there
    as swscale would (None: 10-bit, 4:2:2, odd sizes, … are converted here)."""
    return decoded_layout(info.pix_fmt, info.color["colorspace"], info.color["color_range"],
                          info.coded_width, info.coded_height)


def decode_batches(container, stream, info: VideoInfo, batch_size: int,
                   stamp: Callable[[Any], Optional[int]], stop: Optional[threading.Event] = None,
                   what: str = "the video stream", planes: Optional[Yuv420] = None,
                   times_in_order: bool = False, damaged: Optional[DamagedPackets] = None,
                   thread_type: str = "AUTO", stand_ins: bool = False) -> Iterator[FrameBatch]:
    """Batches of RGB frames of ``stream`` (or, given the :func:`planar_layout`, of its 4:2:0
    planes as :class:`Yuv420Frames`); ``stamp(frame)`` gives each frame's timestamp, or ``None``
    for a frame to drop; ``times_in_order``: see :func:`_times_in_order`; ``damaged``: what becomes
    of packets the decoder cannot read (default: the first fails the decode); ``thread_type``:
    the decoder's (FFmpeg's frame threads where it has them, or "SLICE"); ``stand_ins``: the
    frame before in place of each damaged packet's (see :func:`_stood_in`)."""
    form = _BatchForm(info, planes)
    frames: List[np.ndarray] = []
    stamps: List[int] = []
    index = 0
    stream.thread_type = thread_type
    try:
        damaged = damaged if damaged is not None else DamagedPackets()
        damaged.seconds = damaged.seconds or (lambda packet: info.seconds(packet.pts))
        decoded = _display_frames(container, stream, info, damaged)
        ordered = _times_in_order(decoded) if times_in_order else decoded
        for frame in _stood_in(ordered, damaged, info) if stand_ins else ordered:
            if stop is not None and stop.is_set():
                raise CanceledError("task canceled")
            pts = stamp(frame)
            if pts is None:
                continue
            _state_container_colour(frame, info.color)
            if not frames:
                form.start(frame)
            frames.append(form.picture(frame))
            stamps.append(pts)
            if len(frames) == batch_size:
                yield FrameBatch(index, form.pack(frames), stamps)
                index, frames, stamps = index + 1, [], []
    except av.error.FFmpegError as exc:
        raise InputError(f"video could not be decoded ({ffmpeg_message(exc)})") from exc
    if frames:
        yield FrameBatch(index, form.pack(frames), stamps)
    elif index == 0:
        raise InputError(f"{what} holds no decodable frame")


def _stood_in(frames: Iterator, damaged: DamagedPackets, info: VideoInfo) -> Iterator:
    """The frames of a whole stream's decode, the frame before again in place of each damaged
    packet's (nothing plans a whole stream's frames as ``Segment.pts`` plans a segment's, see
    render.MissingFrames): where frames keep their own times, in the gap the lost one left; where
    they have none (a raw elementary stream, each stamped a step after the last), at the lost
    packet's place in decode order, which is the frame's within the B-frames' reordering (told as
    it was decoded, it went in the 6 frames early that the decoder and :func:`_times_in_order`
    still held); any left, at the end. Damaged packets before the first frame of a stream with its
    own times are counted, not shown: nothing can be stamped before that frame (a lost first GOP's
    12 stood in after the video's end). In a gap that the decoder told lost packets' times in, and
    after the last frame, each stands in at its own (see :func:`_told_in_gap`)."""
    step = info.frame_ticks or 1
    last, shown_at = None, None  # the last frame and its own time
    given = 0  # frames yielded, stand-ins too
    told: List[Optional[int]] = []  # lost packets' times the decoder told, not yet stood in at
    heard = 0  # of damaged.stamps, those in told or stood in at
    unshown = 0  # lost packets told before the first frame: counted, not shown
    for frame in frames:
        owed = damaged.dropped - damaged.repeated - unshown
        told, heard = told + damaged.stamps[heard:], len(damaged.stamps)
        if owed and last is None and frame.pts is not None:
            unshown += len(_told_in_gap(told, -math.inf, frame.pts, owed))
        elif owed and last is not None:
            timed = frame.pts is not None and shown_at is not None
            own = _told_in_gap(told, shown_at, frame.pts, owed) if timed else []
            room = (round((frame.pts - shown_at) / step) - 1 if timed
                    else _due_in_decode_order(damaged.places[damaged.repeated:damaged.dropped], given))
            for after in [at - shown_at for at in own] or [n * step for n in range(1, min(owed, room) + 1)]:
                damaged.repeated += 1
                given += 1
                yield _stepped_on(last, shown_at, after)
        yield frame
        given += 1
        last, shown_at = frame, frame.pts
    # decoded on one thread: what it came short of, untold, is known at its end only
    if damaged.untold() > 0 and losses_untold_are_damage(info, damaged):
        damaged.lost_untold(damaged.untold())
    if last is None:
        return
    owed = damaged.dropped - damaged.repeated - unshown
    # those told after the last frame (a GOP lost at the end) at their own times, the rest stepped on
    own = _told_in_gap(told, shown_at, math.inf, owed) if shown_at is not None else []
    stepped = [(own[-1] - shown_at if own else 0) + n * step for n in range(1, owed - len(own) + 1)]
    for after in [at - shown_at for at in own] + stepped:
        damaged.repeated += 1
        yield _stepped_on(last, shown_at, after)


def _stepped_on(frame, shown_at: Optional[int], after: float):
    """The frame again, its time ``after`` its own (``shown_at``) where it has one: kept, a run of
    stand-ins (a lost GOP's 12) took a time gone back past a jump (0.1 s) at the clock, which moved
    the frames after them on by as much (0.5 s late). Measured from its own time, not the last
    stand-in's: rounded at each step, 60 of 16.67 ms ran 3 ms past the next frame, and every later
    frame was stamped 23 ms late. Taken by the batch before the next is given."""
    if shown_at is not None:
        frame.pts = round(shown_at + after)
    return frame


def _told_in_gap(told: List[Optional[int]], after: float, before: float, owed: int) -> List[int]:
    """Up to ``owed`` of the lost packets' times the decoder ``told`` that lie between two frames'
    (``after``, ``before``), in order, taken from ``told``: a stand-in takes its lost frame's time.
    Stepped at the stream's average, a GOP lost in a variable frame rate stream's faster stretch
    (12 frames at 48 fps in a 24 fps video) had 6 stand-ins in its gap and 6 after the video's end."""
    own = sorted(at for at in told if at is not None and after < at < before)[:owed]
    for at in own:
        told.remove(at)
    return own


def _due_in_decode_order(places: Sequence[int], given: int) -> int:
    """How many stand-ins go in before the next frame, where ``given`` frames went before it: of
    the lost packets' ``places`` in decode order (increasing), those reached as each stand-in
    moves that frame on by one (counted at once, a second packet lost next to the first went in
    after the frame that followed, and a burst's spread over twice its length)."""
    due = 0
    while due < len(places) and places[due] <= given + due:
        due += 1
    return due


# Frames decoded after one whose earliest time it may take (see _times_in_order)
TIME_ORDER_WINDOW = 4


def _times_in_order(frames: Iterator) -> Iterator:
    """The frames, each given the earliest time among it and the few decoded after it, where that
    is later than the time before it: FFmpeg's decoder gives a B-frame packed with a P-frame
    (DivX 5 and XviD in AVI) the time of the not-coded placeholder after it, later than the
    P-frame shown after it (1, 3, 2, 5, 4 …), and the fix-up of times going back showed every
    frame after the first a frame late. A time far back (a splice) is left to the fix-ups."""
    held: List[Any] = []
    last: Optional[int] = None
    for frame in frames:
        held.append(frame)
        if len(held) > TIME_ORDER_WINDOW:
            last = _take_earliest_time(held, last)
            yield held.pop(0)
    while held:
        last = _take_earliest_time(held, last)
        yield held.pop(0)


def _take_earliest_time(held: List[Any], last: Optional[int]) -> Optional[int]:
    """Swaps the earliest time of ``held`` onto its first frame where it is later than ``last``;
    the first frame's time, or ``last`` where it has none."""
    first = held[0]
    stamped = [frame for frame in held if frame.pts is not None]
    if first.pts is None:
        return last
    earliest = min(stamped, key=lambda frame: frame.pts)
    if earliest.pts < first.pts and (last is None or earliest.pts > last):
        first.pts, earliest.pts = earliest.pts, first.pts
    return first.pts


class _BatchForm:
    """What a batch holds: the decoder's planes where asked for, once a frame has shown how its
    swscale sites their chroma, else RGB. A batch that starts on a frame that cannot tell the
    sitings apart (flat colour, a fade) is RGB, and the next one tries again, a few times."""

    ATTEMPTS = 8

    def __init__(self, info: VideoInfo, planes: Optional[Yuv420]):
        self._info = info
        self._planes = planes
        self._attempts = self.ATTEMPTS if planes is not None else 0
        self._siting: Optional[Siting] = None
        self._rgb_format = "rgb48le" if info.bit_depth > 8 else "rgb24"
        self.planar = False

    def start(self, frame) -> None:
        """At a batch's first frame."""
        if self._siting is None and self._attempts:
            candidates = matching_sitings(frame, self._planes)
            self._siting = candidates[0] if len(candidates) == 1 else None
            self._attempts = self._attempts - 1 if len(candidates) > 1 else 0  # none: a siting not modelled
        self.planar = self._siting is not None

    def picture(self, frame) -> np.ndarray:
        size = (self._info.coded_width, self._info.coded_height)
        if self.planar:
            return _in_layout(frame, self._planes, size).to_ndarray()
        if (frame.width, frame.height) != size:  # a new sequence header: the stream's size, as in planes
            rgb = frame_to_rgb(frame, self._rgb_format, 0)
            frame = av.VideoFrame.from_ndarray(rgb, format=self._rgb_format).reformat(*size, interpolation=EXACT_SWS)
        return frame_to_rgb(frame, self._rgb_format, self._info.rotation)

    def pack(self, arrays: List[np.ndarray]) -> Union[np.ndarray, Yuv420Frames]:
        if not self.planar:
            return np.stack(arrays)
        return Yuv420Frames(np.stack(arrays), self._planes, (self._info.rotation // 90) % 4, self._siting)


def _in_layout(frame, layout: Yuv420, size: Tuple[int, int]):
    """The frame, converted into the stream's planar layout where it changed mid-stream (format,
    size, range or matrix): through RGB, since swscale changes no matrix from YUV to YUV."""
    full_range = frame.color_range == 2 or frame.format.name == "yuvj420p"
    matrix = "ITU601" if frame.colorspace in UNTAGGED else SWS_MATRIX.get(frame.colorspace)
    if (frame.format.name in ("yuv420p", "yuvj420p") and (frame.width, frame.height) == size
            and full_range == layout.full_range and matrix == layout.matrix):
        return frame
    rgb = av.VideoFrame.from_ndarray(frame_to_rgb(frame, "rgb24", 0), format="rgb24")
    return rgb.reformat(*size, format="yuv420p", dst_colorspace=layout.matrix, interpolation=EXACT_SWS,
                        dst_color_range="JPEG" if layout.full_range else "MPEG")


SITING_PROBE = 1024  # the frame's middle, at most this square: all of it up to 1024 px, cheap at 4K


def measured_siting(frame, layout: Yuv420) -> Optional[Siting]:
    """Where the decoder sites this stream's chroma, as its swscale reads it (PyAV does not expose
    a frame's chroma location): the one siting whose conversion equals swscale's on this frame,
    None where the frame cannot tell them apart or none equals it."""
    candidates = matching_sitings(frame, layout)
    return candidates[0] if len(candidates) == 1 else None


def matching_sitings(frame, layout: Yuv420) -> List[Siting]:
    """The sitings whose conversion of the middle of this frame equals swscale's within a level."""
    if frame.format.name not in ("yuv420p", "yuvj420p"):
        return []
    reference = frame_to_rgb(frame, "rgb24", 0).astype(np.int16)
    planes = frame.to_ndarray()
    height, width = reference.shape[:2]
    side_y, side_x = min(SITING_PROBE, height) // 4 * 4, min(SITING_PROBE, width) // 4 * 4
    top, left = (height - side_y) // 4 * 2, (width - side_x) // 4 * 2
    probe = _crop_planes(planes, height, width, top, left, side_y, side_x)
    expected = reference[top + 2:top + side_y - 2, left + 2:left + side_x - 2]  # the crop's edges differ
    matching = []
    for siting in SITINGS.values():
        rgb = yuv420_to_rgb(torch.from_numpy(probe)[None], layout, siting)[0].permute(1, 2, 0).numpy()
        off = np.abs(rgb[2:-2, 2:-2].astype(np.int16) - expected)
        if (off > 1).mean() <= 0.001:
            matching.append(siting)
    return matching


def _crop_planes(planes: np.ndarray, height: int, width: int, top: int, left: int, rows: int,
                 cols: int) -> np.ndarray:
    """A (rows, cols) window of 4:2:0 planes (all even, rows and cols multiples of 4), as planes."""
    chroma = planes[height:].reshape(2, height // 2, width // 2)
    window = chroma[:, top // 2:(top + rows) // 2, left // 2:(left + cols) // 2]
    luma = planes[top:top + rows, left:left + cols]
    return np.concatenate([luma.ravel(), window.ravel()]).reshape(rows * 3 // 2, cols)


def one_filter(name: str, args: str, **source) -> "av.filter.Graph":
    """A configured graph of one FFmpeg filter from a buffer source (``source``: its template
    stream, or its frames' size, format and time base) to a sink."""
    graph = av.filter.Graph()
    buffer = graph.add_buffer(**source)
    middle = graph.add(name, args)
    sink = graph.add("buffersink")
    buffer.link_to(middle)
    middle.link_to(sink)
    graph.configure()
    return graph


def _display_frames(container, stream, info: VideoInfo, damaged: Optional[DamagedPackets]) -> Iterator:
    deinterlacer = Deinterlacer(stream, info.interlaced)
    for frame in decoded_frames(container, stream, damaged):
        yield from deinterlacer.frames(frame)
    yield from deinterlacer.frames(None)


class Deinterlacer:
    """bwdif over a stream's decoded frames: one progressive frame per frame, at its timestamp.
    Frames flagged progressive pass through (film in an interlaced stream); each frame is
    interpolated from its neighbours, so frames before and after a cut (pre-roll, leading
    pictures) serve as context. A stream the probe found progressive (by its first frame) passes
    through until a frame is flagged interlaced: a broadcast that opens on a progressive ident
    went to the model with every later frame's two fields woven together."""

    def __init__(self, stream, interlaced: bool):
        self._base = stream.time_base
        self._stream = stream
        self._size = (stream.codec_context.width, stream.codec_context.height)
        self._graph: Optional[av.filter.Graph] = self._bwdif() if interlaced else None

    def _bwdif(self, frame=None) -> "av.filter.Graph":
        """A graph for the stream's frames, or for ``frame``'s size and format."""
        source = (dict(template=self._stream) if frame is None else
                  dict(width=frame.width, height=frame.height, format=frame.format.name, time_base=self._base))
        return one_filter("bwdif", "mode=send_frame:parity=auto:deint=interlaced", **source)

    def frames(self, frame) -> List["av.VideoFrame"]:
        """The frames ready after ``frame`` goes in (None: the end, every frame left)."""
        if self._graph is None:
            if frame is None or not frame.interlaced_frame:
                return [] if frame is None else [frame]
            self._graph = self._bwdif()
        ready = []
        if frame is not None and (frame.width, frame.height) != self._size:
            # A new sequence header's size (a broadcast's SD ident before its HD programme): a graph
            # takes one size, and failed on the first frame of another ('Operation not permitted')
            ready = self._pushed(None)
            self._graph, self._size = self._bwdif(frame), (frame.width, frame.height)
        if frame is not None and frame.pts is None:
            frame.pts = frame.dts
        return ready + self._pushed(frame)

    def _pushed(self, frame) -> List["av.VideoFrame"]:
        self._graph.vpush(frame)
        ready = []
        while True:
            try:
                out = self._graph.vpull()
            except (av.error.BlockingIOError, av.error.EOFError):
                return ready
            if out.pts is not None:  # bwdif counts in half the input's time base (for field rate)
                out.pts = round(out.pts * Fraction(out.time_base) / Fraction(self._base))
            out.time_base = self._base
            ready.append(out)


# swscale's accurate rounding: without it a decode → encode round trip shifts luma by a level or
# two. Full chroma interpolation is needed for that on 8-bit output, and breaks 16-bit output (its
# rgb48 path then returns wrong colours), so it is used for rgb24 only; both measured.
EXACT_SWS = Interpolation.BILINEAR | Interpolation.ACCURATE_RND
EXACT_SWS_8BIT = EXACT_SWS | Interpolation.FULL_CHR_H_INT


def frame_to_rgb(frame, rgb_format: str, rotation: int) -> np.ndarray:
    if frame.colorspace == YCGCO:
        array = _ycgco_to_rgb(frame, rgb_format)
    else:
        # The YUV matrix is the one the frame declares (PyAV's default; BT.601 when it declares
        # none, the nearest swscale has where it has none for it); the range must be passed on,
        # or limited range is assumed even for full-range streams.
        array = frame.to_ndarray(format=rgb_format, src_color_range=frame.color_range or None,
                                 src_colorspace=nearest_sws_matrix(frame.colorspace, frame.color_primaries),
                                 interpolation=EXACT_SWS_8BIT if rgb_format == "rgb24" else EXACT_SWS)
    quarter_turns = (rotation // 90) % 4
    return np.ascontiguousarray(np.rot90(array, quarter_turns)) if quarter_turns else array


def _ycgco_to_rgb(frame, rgb_format: str) -> np.ndarray:
    """swscale has no YCgCo matrix: it only brings the chroma to full size, and the transform
    (R = Y − Cg + Co, G = Y + Cg, B = Y − Cg − Co) runs here."""
    deep = rgb_format == "rgb48le"
    same_range = frame.color_range or None  # YUV to YUV: no matrix, no range change (the tag only)
    full = frame.reformat(format="yuv444p16le" if deep else "yuv444p", src_colorspace="ITU601",
                          dst_colorspace="ITU601", src_color_range=same_range, dst_color_range=same_range,
                          interpolation=EXACT_SWS)
    dtype, top = (np.uint16, 65535.0) if deep else (np.uint8, 255.0)
    # back to the source's codes (swscale widens 10 bits to 16 by repeating the high bits)
    bits = frame.format.components[0].bits
    codes = (1 << bits) - 1
    luma, green, orange = (_plane(plane, full.width, dtype).astype(np.float32) * (codes / top) for plane in full.planes)
    unit = (codes + 1) / 256
    if frame.color_range == 2:
        luma, green, orange = luma / codes, (green - 128 * unit) / codes, (orange - 128 * unit) / codes
    else:
        luma, green, orange = (luma - 16 * unit) / (219 * unit), (green - 128 * unit) / (224 * unit), \
            (orange - 128 * unit) / (224 * unit)
    base = luma - green
    rgb = np.stack([base + orange, luma + green, base - orange], axis=-1)
    return (np.clip(rgb, 0, 1) * top).round().astype(dtype)


def _plane(plane, width: int, dtype) -> np.ndarray:
    rows = np.frombuffer(memoryview(plane), dtype).reshape(-1, plane.line_size // np.dtype(dtype).itemsize)
    return rows[:, :width]


class _FrameClock:
    """Every frame a distinct, increasing timestamp: a frame with none, or one not after the last,
    a frame's step after the last; after a jump back (recordings joined end to end in a container
    whose jumps no copy closes, see :mod:`~tmlsr_ray.pipeline.timeline`) every frame runs on from
    there keeping its own step, as the audio runs on. Stepped one at a time, each frame came a
    fixed step after the last for as long as its own time lagged: a joined MediaRecorder WebM's
    VFR second part lost its own timing and ended half a second before its sound. Where the
    frames' times are lost (:attr:`VideoInfo.frame_times_lost`), each is a step after the last."""

    def __init__(self, info: VideoInfo):
        self._step = max(1, round(info.frame_ticks)) if info.frame_ticks else 1
        self._jump = JUMP_BACK_S / Fraction(info.time_base)
        self._last: Optional[int] = None
        self._offset = 0
        self._own_times = not info.frame_times_lost

    def stamp(self, frame) -> int:
        pts = (frame.pts if frame.pts is not None else frame.dts) if self._own_times else None
        if pts is not None and self._last is not None and pts + self._offset < self._last - self._jump:
            self._offset = self._last + self._step - pts
        pts = None if pts is None else pts + self._offset
        if pts is None or (self._last is not None and pts <= self._last):
            pts = (self._last + self._step) if self._last is not None else 0
        self._last = pts
        return pts


