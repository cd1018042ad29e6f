"""The probe of a video (no Ray here): which stream is the video, its facts (:class:`VideoInfo`),
and the picture size limit checked before a frame is made.

One decoder (PyAV/FFmpeg) reads every input, so "the video" is chosen as FFmpeg's command line
chooses it (default disposition, then a stream of more than one frame, then picture size), the
same way everywhere; rotation, HDR metadata and interlacing are read from the first decoded
frame, since PyAV shows them on frames only.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import av

from tmlsr_ray.errors import InputError
from tmlsr_ray.models.yuv import BY_PRIMARIES, REFUSED_MATRICES, SWS_READS, YCGCO
from tmlsr_ray.pipeline.colour import mastering_params
from tmlsr_ray.pipeline.container import codec_name, ffmpeg_message, probe_opened
from tmlsr_ray.pipeline.damage import DamagedPackets, decoded_frames
from tmlsr_ray.pipeline.video_info import AudioInfo, SubtitleInfo, VideoInfo, colour_tags, with_container_colour


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
        container_colour = colour_tags(ctx)  # the decoder may drop it (below)
        try:
            first = _first_frame(container, stream, DamagedPackets(repeat_damaged, seconds_from_start(stream)))
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
            color=with_container_colour(colour_tags(ctx), container_colour),
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


def seconds_from_start(stream) -> Callable[[Any], float]:
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
