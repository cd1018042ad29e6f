"""An input file opened and read (no Ray here): the open that decides how far FFmpeg's probe
reads, packets demuxed in order, the segment files pieces of a stream are cut into, and
FFmpeg's errors said in words."""

from __future__ import annotations

import errno
import io
from fractions import Fraction
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Tuple

import av

from tmlsr_ray.errors import InputError
from tmlsr_ray.pipeline.video_info import VideoInfo


# What an MP4 or MOV whose frame times are lost is opened with: its edit list, applied to those
# times, flagged frames anywhere in the stream as before its start, and they were dropped
EDIT_LIST_IGNORED = {"ignore_editlist": "1"}


# FFmpeg learns a file's streams from its first 5 MB or 5 s: a broadcast recording whose audio runs
# 8 s or more ahead of its first picture was opened with no picture size, and refused as a corrupt
# header. Read further only for such a file, as far as `ffmpeg -probesize -analyzeduration` users go.
LONG_PROBE = {"probesize": str(200 << 20), "analyzeduration": str(120 * 1_000_000)}


def open_container(path: Path, options: Optional[Dict[str, str]] = None) -> "av.container.InputContainer":
    """The input, opened as FFmpeg opens it, and read further where that learns more of a video
    stream whose picture size is not known by then (:func:`probe_opened`'s rule). What opens it
    before the probe (the timeline's copy) comes here; every open after it takes the probe's
    options (:func:`open_probed`)."""
    return _opened_reading_further(path, options)[0]


def open_probed(path: Path, info: VideoInfo, options: Optional[Dict[str, str]] = None) -> "av.container.InputContainer":
    """The input, opened as its probe opened it (see ``VideoInfo.open_options``)."""
    if info.open_options is None:
        return open_container(path, options)
    return _opened(path, {**(options or {}), **info.open_options})


def probe_opened(path: Path) -> Tuple["av.container.InputContainer", Dict[str, str]]:
    """The input opened as :func:`open_container` opens it, and the options every later open takes
    (LONG_PROBE where it read further)."""
    return _opened_reading_further(path, None)


def _opened_reading_further(path: Path, options: Optional[Dict[str, str]]
                            ) -> Tuple["av.container.InputContainer", Dict[str, str]]:
    """The input, and LONG_PROBE where reading that far learnt more of the streams: a file one of
    whose video streams has no picture size even so (a TS listing a video PID that carries
    nothing) was read to 200 MB and 120 s at each of a task's opens, for nothing."""
    container = _opened(path, options)
    if not _sizeless_video(container):
        return container, {}
    longer = _opened(path, {**(options or {}), **LONG_PROBE})
    if _streams_known(longer) == _streams_known(container):
        longer.close()
        return container, {}
    container.close()
    return longer, dict(LONG_PROBE)


def _sizeless_video(container) -> bool:
    return any(s.codec_context and not s.codec_context.width for s in container.streams.video)


def _streams_known(container) -> Tuple:
    """What an open learns of the streams that a probe or a later reader uses."""
    return container.duration, tuple(_stream_known(stream) for stream in container.streams)


def _stream_known(stream) -> Tuple:
    context = stream.codec_context
    if context is None:
        return stream.index, stream.type
    shape = ((context.width, context.height, context.pix_fmt) if stream.type == "video" else
             (context.sample_rate, context.channels) if stream.type == "audio" else ())
    return (stream.index, stream.type, stream.start_time, codec_name(stream)) + shape


def _opened(path: Path, options: Optional[Dict[str, str]]) -> "av.container.InputContainer":
    try:
        return av.open(str(path), metadata_errors="ignore", options=options)
    except av.error.FFmpegError as exc:
        raise InputError(f"input is not a readable video ({ffmpeg_message(exc)})") from exc


def demux(container, streams=None) -> Iterator["av.Packet"]:
    """``container.demux(streams)`` over an input file. A file may add a stream as it is read (an
    FLV audio tag of another codec, a new PID in a TS): PyAV hands its packets to no one and, at
    the end, raised IndexError flushing it, after every packet of the streams asked for was out."""
    try:
        yield from container.demux(streams) if streams is not None else container.demux()
    except IndexError:
        return


def attached_pictures(source) -> Iterator[Tuple[Any, bytes]]:
    """Each attached picture and its bytes (none where it holds none): FFmpeg hands a cover, and a
    Matroska image attachment, over as a video stream of one packet."""
    for stream in source.streams.video:
        if stream.disposition & av.stream.Disposition.attached_pic:
            picture = next((packet for packet in demux(source, stream) if packet.size), None)
            yield stream, bytes(picture) if picture else b""

SEGMENT_FORMAT = "nut"  # segment files: FFmpeg's container that holds nearly every codec and any time base


# NUT has no tag for the intra-frame codecs of a studio's masters (ProRes, DNxHD/DNxHR, QuickTime
# Animation); QuickTime holds them, also at the source's time base.
# Flash Screen Video (a Flash-era screen recording or tutorial) only FLV holds, in the milliseconds
# its source counts.
SEGMENT_FORMATS = (SEGMENT_FORMAT, "mov", "flv")


NUT_SIGNATURE = b"nut/multimedia container\0"


SEGMENT_SIGNATURES = {NUT_SIGNATURE: SEGMENT_FORMAT, b"FLV\x01": "flv"}  # QuickTime's starts with a box size


def open_segment_file(buffer, format: str = SEGMENT_FORMAT,
                      time_base: Optional[Fraction] = None) -> "av.container.OutputContainer":
    # The source's timestamps as they are: NUT would otherwise shift a stream whose first decode
    # time is negative (B-frames), and the frames would no longer match the plan.
    options = {"avoid_negative_ts": "disabled"}
    if time_base is not None and format == "mov":
        # QuickTime states where a track starts (an edit list) in its movie's time scale, 1/1000 s
        # unless told: a segment's frames would come back up to a millisecond early
        options["movie_timescale"] = str(Fraction(time_base).denominator)
    return av.open(buffer, "w", format=format, options=options)


def read_segment_file(data: bytes) -> "av.container.InputContainer":
    """A segment file, in whichever of :data:`SEGMENT_FORMATS` it was written."""
    format = next((name for signature, name in SEGMENT_SIGNATURES.items() if data.startswith(signature)), "mov")
    return av.open(io.BytesIO(data), format=format)


def copy_video_stream(out, template, with_tag: bool = True) -> "av.video.stream.VideoStream":
    """A stream of ``out`` the template's packets can be copied into, with the template's FourCC
    unless ``with_tag`` is false: the copy leaves the tag to the muxer, which writes HEVC in MP4 as
    hev1 (not the hvc1 Apple players require) and NUT's own tag for Ut Video, whose decoder reads
    its layout from the tag."""
    stream = out.add_stream_from_template(template, opaque=True)
    if template.codec_context.name == "rawvideo" and out.format.name == SEGMENT_FORMAT:
        # AVI states uncompressed RGB's layout by its bit depth, which NUT does not keep: read
        # back, bgr24 decoded as rgb555le. The FourCC that names the layout says it. (QuickTime's
        # raw video goes into QuickTime segment files, under its own tag.)
        stream.codec_tag = raw_video_tag(template.codec_context.pix_fmt)
    elif with_tag and template.codec_tag.strip("\0 "):
        stream.codec_tag = template.codec_tag
    if template.sample_aspect_ratio and not template.codec_context.sample_aspect_ratio:
        # ProRes's bitstream states no pixel aspect, only its QuickTime pasp box: the copy came out square
        stream.codec_context.sample_aspect_ratio = template.sample_aspect_ratio
    return stream


def raw_video_tag(pix_fmt: str) -> str:
    """The FourCC of uncompressed frames of this layout (``BGR\\x18`` for bgr24), as FFmpeg's raw
    encoder states it."""
    encoder = av.CodecContext.create("rawvideo", "w")
    encoder.width, encoder.height, encoder.pix_fmt, encoder.time_base = 16, 16, pix_fmt, Fraction(1, 25)
    encoder.open()
    return encoder.codec_tag


def codec_name(stream) -> str:
    """The stream's codec (``mp3``), not the name of the decoder FFmpeg picked for it (``mp3float``)."""
    codec = stream.codec_context.codec if stream.codec_context else None
    return codec.canonical_name if codec else "unknown"


# What FFmpeg's answers mean of an input file where their words point elsewhere (a disk fault,
# the server's memory), by errno
INPUT_MEANINGS = {
    errno.EIO: "the file is cut off or damaged",
    errno.ENOMEM: "the file states a size or count larger than FFmpeg allocates",
}


END_OF_FILE = "the file is cut off"


def ffmpeg_message(exc: Exception) -> str:
    """FFmpeg's words for an error reading an input, and what they mean of the file where they
    alone misled ('Input/output error' of a Matroska file cut off in its header)."""
    words = getattr(exc, "strerror", None) or str(exc).split(":")[0] or type(exc).__name__
    meaning = END_OF_FILE if isinstance(exc, av.error.EOFError) else INPUT_MEANINGS.get(getattr(exc, "errno", None))
    return f"{words}: {meaning}" if meaning else words
