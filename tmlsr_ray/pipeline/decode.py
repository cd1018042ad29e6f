"""The decode stage for videos: probe a container and stream its frames in batches (no Ray here).

One decoder (PyAV/FFmpeg) for every input, so every input has the same frame semantics:
- "the video" is chosen as FFmpeg's command line chooses it (default disposition, then a stream
  of more than one frame, then picture size), the same way everywhere;
- frames are counted and time-stamped as they decode (never from the container's count);
- rotation metadata is applied to the pixels (the output carries no display matrix);
- interlaced streams are deinterlaced (bwdif, one frame per frame), since the model would blend
  two moments' fields into each output line;
- 8-bit inputs come out as uint8 RGB, deeper ones (10/12-bit) as uint16 RGB, so nothing is lost
  before the model sees it.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import av
import av.filter
import numpy as np
import torch
from av.video.reformatter import Interpolation

from tmlsr_ray.models.yuv import (BY_PRIMARIES, REFUSED_MATRICES, SITINGS, SWS_MATRIX, SWS_READS, UNTAGGED, YCGCO,
                                  Siting, Yuv420, Yuv420Frames, decoded_layout, nearest_sws_matrix, yuv420_to_rgb)
from tmlsr_ray.pipeline.colour import mastering_params
from tmlsr_ray.pipeline.container import EDIT_LIST_IGNORED, codec_name, ffmpeg_message, open_probed, probe_opened
from tmlsr_ray.pipeline.damage import (DamagedPackets, damage_retold_on_failure, damage_retold_where_short,
                                      decoded_frames)
from tmlsr_ray.errors import CanceledError, InputError

COLOR_FIELDS = ("color_primaries", "color_trc", "colorspace", "color_range")
JUMP_BACK_S = Fraction(1, 10)  # a step back of a clock that is a jump, not a frame out of place (FFmpeg's)
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


@dataclass
class FrameBatch:
    """Consecutive decoded frames: (N, H, W, 3) RGB, uint8 or uint16 (or their 4:2:0 planes, where
    asked for), and their timestamps."""

    index: int
    frames: Union[np.ndarray, Yuv420Frames]
    pts: List[int]


# Codecs whose picture size may change mid-stream, at a keyframe with a new sequence header
RESIZABLE_CODECS = frozenset({"h264", "hevc", "vp8", "vp9", "av1", "mpeg1video", "mpeg2video", "mpeg4"})


# how decoders refuse a picture over their max_pixels (libdav1d's: ERANGE); H.264's says invalid data
OVER_MAX_PIXELS = (av.error.ArgumentError, av.error.OverflowError)
# a decoder checks its max_pixels against its picture with each row padded to 64 pixels (a 1080x1920
# one counts as 1088x1920: refused under a limit of 1920x1080), so it is told this many times the
# limit, which still keeps a hostile picture from being made; the limit itself is checked on the size decoded
DECODER_PIXELS_HEADROOM = 2


def _keyframe_over(max_pixels: int, header: Tuple[int, int], refusal: Optional[Exception] = None) -> InputError:
    """``refusal``: the decoder's, where it refused the keyframe; EINVAL is what a keyframe stating
    no size (0x0, damaged) gets too, and one such was refused as over the limit alone."""
    damaged = ", or whose own header is damaged" if isinstance(refusal, av.error.ArgumentError) else ""
    return InputError(f"video has a keyframe whose picture is over the limit of {max_pixels:,} pixels (the "
                      f"stream's header states {header[0]}x{header[1]}){damaged}")


def check_frame_pixels(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise InputError(f"video frames are {width}x{height} = {width * height:,} pixels, over the limit "
                         f"of {max_pixels:,}")


def largest_picture(stream, keyframes: Sequence[bytes], max_pixels: Optional[int] = None) -> Optional[Tuple[int, int]]:
    """The largest picture these keyframe packets of the stream decode to, each on its own, where
    larger than the stream's header states; else None. A keyframe whose own header states more than
    ``max_pixels`` is refused before its picture is made, where its decoder says so by its size
    (VP8, VP9, AV1: a 64x48 stream's 8192x8192 keyframe was decoded at that size, 97 MB, before the
    limit was checked); H.264's says only "invalid data", so its keyframe is decoded again without
    the cap and refused by the size it gives (see :func:`_keyframe_decoded`)."""
    header = (stream.codec_context.width, stream.codec_context.height)
    sizes = [header]
    for data in keyframes:
        try:
            frames = _keyframe_decoded(stream, data, max_pixels)
        except (av.error.FFmpegError, ValueError) as exc:
            if max_pixels is not None and isinstance(exc, OVER_MAX_PIXELS):
                raise _keyframe_over(max_pixels, header, exc) from exc
            continue  # one that needs what came before it (an H.264 recovery point flagged a keyframe)
        for frame in frames[:1]:
            if max_pixels is not None and frame.width * frame.height > max_pixels:
                raise _keyframe_over(max_pixels, header)
            sizes.append((frame.width, frame.height))
    largest = max(sizes, key=lambda size: size[0] * size[1])
    return largest if largest[0] * largest[1] > header[0] * header[1] else None


def decoded_alone(stream, data: bytes, max_pixels: Optional[int] = None) -> List["av.VideoFrame"]:
    """The frames one packet of ``stream`` decodes to with nothing before it, by a decoder of its
    own (FFmpegError or ValueError where it cannot be so decoded); one stating a picture of more
    than ``max_pixels`` is refused by its header (ArgumentError, or OverflowError from libdav1d)."""
    decoder = av.CodecContext.create(stream.codec_context.name, "r")
    decoder.extradata = stream.codec_context.extradata
    decoder.thread_count = 1
    if max_pixels is not None:
        decoder.options = _decoder_pixel_cap(max_pixels)
    return decoder.decode(av.Packet(data)) + decoder.decode(None)


def _decoder_pixel_cap(max_pixels: int) -> Dict[str, str]:
    """The decoder option that keeps a picture well over ``max_pixels`` from being made (see
    DECODER_PIXELS_HEADROOM); what is decoded within it is checked against ``max_pixels`` itself."""
    return {"max_pixels": str(max_pixels * DECODER_PIXELS_HEADROOM)}


def _keyframe_decoded(stream, data: bytes, max_pixels: Optional[int]) -> List["av.VideoFrame"]:
    """:func:`decoded_alone` under the pixel cap, and again without it where the decoder failed
    otherwise than by its size: H.264's refuses a picture over the cap as invalid data, as it does
    a keyframe that needs what came before it, and a grown picture went unseen past the limit."""
    try:
        return decoded_alone(stream, data, max_pixels)
    except OVER_MAX_PIXELS:
        raise
    except (av.error.FFmpegError, ValueError):
        if max_pixels is None:
            raise
    return decoded_alone(stream, data)


def best_video_stream(container) -> "av.video.stream.VideoStream":
    """The video to upscale, much as FFmpeg's command line picks it: the default one, then the largest
    picture. Bit rate came before size here, and a phone's small preview track, few frames over a
    short time, has the higher rate; so does a one-frame poster, which is no video at all."""
    candidates = [s for s in container.streams.video if s.codec_context and not _is_attached_picture(s)]
    if not candidates:  # a codec FFmpeg does not know has no context: nothing decodes it
        raise InputError("input has no video stream")
    return max(candidates, key=lambda s: (bool(s.disposition & 1), s.frames != 1,
                                          s.codec_context.width * s.codec_context.height,
                                          s.codec_context.bit_rate or 0, s.frames))


def probe_video(path: Path, repeat_damaged: bool = False, max_pixels: Optional[int] = None) -> VideoInfo:
    """The video's facts; ``repeat_damaged``: a task that takes damaged frames (see
    :class:`.damage.DamagedPackets`) is probed past a first frame the decoder cannot read. A stream whose
    header states more than ``max_pixels`` is refused before its first frame is decoded (an
    8192x8192 one's took 124 MB and 0.8 s), and that frame is decoded refusing a larger size."""
    container, open_options = probe_opened(path)
    with container:
        stream = best_video_stream(container)
        ctx = stream.codec_context
        if not ctx.width or not ctx.height:
            if container.format.name == "webp_pipe":
                raise InputError("animated WebP is not readable as a video here (this FFmpeg decodes no WebP "
                                 "animation); send it with type image to upscale its first frame")
            raise InputError("the video stream has no picture size (corrupt header)")
        header = (ctx.width, ctx.height)  # a decoder refusing a larger picture leaves 0x0
        if max_pixels is not None:
            check_frame_pixels(*header, max_pixels)
            ctx.options = _decoder_pixel_cap(max_pixels)
        _check_matrix(ctx.colorspace)
        container_colour = _colour(ctx)  # the decoder may drop it (below)
        try:
            first = _first_frame(container, stream, DamagedPackets(repeat_damaged, _seconds_from_start(stream)))
        except InputError as exc:
            if max_pixels is not None and isinstance(exc.__cause__, OVER_MAX_PIXELS):
                raise _keyframe_over(max_pixels, header, exc.__cause__) from exc
            raise
        if max_pixels is not None and ctx.width * ctx.height > max_pixels:  # within the decoder's cap
            raise _keyframe_over(max_pixels, header)
        rotation = int(round((getattr(first, "rotation", 0) or 0) / 90.0)) * 90 % 360
        width, height = (ctx.height, ctx.width) if rotation % 180 else (ctx.width, ctx.height)
        duration = _duration_seconds(container, stream)
        rate = _frame_rate(stream)
        frames_hint = stream.frames or (round(duration * float(rate)) if duration and rate else 0)
        return VideoInfo(
            container=container.format.name,
            stream_index=stream.index,
            codec=codec_name(stream),  # "av1", not the decoder libdav1d
            width=width,
            height=height,
            coded_width=ctx.width,
            coded_height=ctx.height,
            rotation=rotation,
            pix_fmt=ctx.pix_fmt or "unknown",
            bit_depth=_bit_depth(ctx.pix_fmt),
            time_base=stream.time_base,
            average_rate=rate,
            frames_hint=frames_hint,
            duration_s=duration,
            color=_with_container_colour(_colour(ctx), container_colour),
            audio=[_audio_info(s) for s in container.streams.audio],
            subtitles=[SubtitleInfo(s.index, codec_name(s), s.language) for s in container.streams.subtitles],
            animated_gif=container.format.name == "gif",
            reorders_frames=bool(ctx.has_b_frames),
            mastering=mastering_params(first.side_data),
            sample_aspect=_sample_aspect(stream, rotation),
            interlaced=bool(first.interlaced_frame),
            open_options=open_options,
        )


def _audio_info(stream) -> AudioInfo:
    """A track of a codec FFmpeg does not know has no codec context: no rate, no channels."""
    context = stream.codec_context
    return AudioInfo(stream.index, codec_name(stream), context.sample_rate if context else 0,
                     context.channels if context else 0, stream.language)


def _frame_rate(stream) -> Optional[Fraction]:
    """The stream's average frame rate. FFmpeg's raw DV reader states its time base (60,000 ticks
    a second) as that average, which the output then said (60,000 fps; 30,000 in a Matroska track;
    a timecode counted in it was dropped): a rate of one frame a tick, where frames are further
    apart, gives way to the rate FFmpeg guesses from the frames. A raw elementary stream (``.h264``,
    ``.265``) has no timestamps and its reader states 25 whatever the stream says: the rate its
    own headers state (an H.264 VUI's 23.976) is taken, else 25 stays."""
    average, guessed = stream.average_rate, stream.guessed_rate
    if stamped_by_parser(stream.container) and stream.codec_context.framerate:
        return Fraction(stream.codec_context.framerate)
    if average and guessed and stream.time_base and average == 1 / stream.time_base and guessed < average:
        return guessed
    return average or guessed


def stamped_by_parser(container) -> bool:
    """Whether the container is a raw elementary stream (``.264``, ``.m1v``): it stores no
    timestamps, and FFmpeg's parser makes its packets' from the stream's rate and picture types."""
    return bool(container.format.flags & av.format.Flags.no_timestamps.value)


def _colour(tagged) -> Dict[str, int]:
    return {name: int(getattr(tagged, name) or 0) for name in COLOR_FIELDS}


def _with_container_colour(decoded: Dict[str, int], container: Dict[str, int]) -> Dict[str, int]:
    """The colour the decoder gives, the container's where it states none: HEVC's decoder drops
    what an MP4 colr box or a Matroska Colour element says (as a remux that tags an untagged
    stream writes it) where its bitstream states no colour, and PQ HDR was read as SDR."""
    return {name: container[name] if value in UNSTATED_COLOUR[name] else value for name, value in decoded.items()}


def _state_container_colour(frame, colour: Dict[str, int]) -> None:
    """Tags the frame with the stream's colour (:func:`probe_video`'s) where it states none: a
    segment file keeps no container colour, and HEVC's decoder drops it."""
    for name, value in _with_container_colour(_colour(frame), colour).items():
        setattr(frame, name, value)


def _check_matrix(colorspace: int) -> None:
    if colorspace in SWS_READS or colorspace in BY_PRIMARIES or colorspace == YCGCO:
        return
    name = REFUSED_MATRICES.get(colorspace, f"matrix coefficients {colorspace}")
    raise InputError(f"the video's colour matrix ({name}) is not supported here; BT.601, BT.709, BT.2020 and "
                     f"YCgCo are")


def _sample_aspect(stream, rotation: int) -> Optional[Fraction]:
    """The pixels' width : height as displayed, where it is not 1 (a quarter turn swaps them)."""
    sar = stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio
    if not sar or sar == 1:
        return None
    return 1 / Fraction(sar) if rotation % 180 else Fraction(sar)


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
        damaged.seconds = damaged.seconds or _seconds_from_start(stream)
        damaged.order_rate = info.average_rate
        with damage_retold_on_failure(partial(_reopened_whole, path, info), damaged, info,
                                      frame_threads=not damaged.repeat):
            yield from decode_batches(container, stream, info, batch_size, clock.stamp, stop, planes=planes,
                                      times_in_order=True, damaged=damaged, stand_ins=damaged.repeat,
                                      thread_type="SLICE" if damaged.repeat else "AUTO")
    # a recording started inside a GOP comes short by its packets before the first keyframe: no
    # sign of damage, and it was decoded twice again for them
    if not damaged.repeat:
        damage_retold_where_short(partial(_reopened_whole, path, info), damaged, info,
                                  short=damaged.frames < damaged.read - damaged.lead - damaged.unshown)


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
    own times are counted, not shown: nothing can be stamped before that frame."""
    step = info.frame_ticks or 1
    last = None
    given = 0  # frames yielded, stand-ins too
    for frame in frames:
        owed = damaged.dropped - damaged.repeated
        if owed and last is not None:
            timed = frame.pts is not None and last.pts is not None
            room = (round((frame.pts - last.pts) / step) - 1 if timed
                    else _due_in_decode_order(damaged.places[damaged.repeated:damaged.dropped], given))
            for _ in range(max(0, min(owed, room))):
                damaged.repeated += 1
                given += 1
                yield last  # the clock stamps it a step after the last
        yield frame
        given += 1
        last = frame
    while last is not None and damaged.repeated < damaged.dropped:
        damaged.repeated += 1
        yield last


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


def _seconds_from_start(stream) -> Callable[[Any], float]:
    """Where a packet of ``stream`` is, from the stream's start (told after its file is closed too)."""
    start, time_base = stream.start_time or 0, stream.time_base
    return lambda packet: float((packet.pts - start) * time_base)


def _first_frame(container, stream, damaged: DamagedPackets):
    """The first decoded frame: PyAV exposes the display matrix and HDR metadata on frames only,
    so the probe decodes this one frame (never more)."""
    try:
        for frame in decoded_frames(container, stream, damaged):
            return frame
    except av.error.FFmpegError as exc:
        raise InputError(f"video could not be decoded ({ffmpeg_message(exc)})") from exc
    raise InputError("the video stream holds no decodable frame")


def _duration_seconds(container, stream) -> Optional[float]:
    if stream.duration is not None and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration is None:
        return None
    # Matroska states where its segment ends, not how long it is: a remux that kept a live
    # stream's clock (-copyts), starting 20,000 s in, read as 20,002 s of video and was refused
    start = container.start_time if container.format.name.startswith("matroska") and container.start_time else 0
    return (container.duration - start) / av.time_base


def _bit_depth(pix_fmt: Optional[str]) -> int:
    """The deepest component of the decoder's format, 8 to 16 (rgb48, p010 and float formats by
    their components, which the names alone did not tell)."""
    try:
        bits = max(component.bits for component in av.VideoFormat(pix_fmt).components)
    except (TypeError, ValueError):  # no format, or one this FFmpeg does not know
        return 8
    return min(16, max(8, bits))


def _is_attached_picture(stream) -> bool:
    return bool(stream.disposition & 0x400)  # AV_DISPOSITION_ATTACHED_PIC: cover art, not video


