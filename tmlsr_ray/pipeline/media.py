"""Video limits and the metadata a finished video task reports (no Ray here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import av

from tmlsr_ray.errors import InputError
from tmlsr_ray.pipeline.colour import HDR_TRANSFERS
from tmlsr_ray.pipeline.container import open_probed
from tmlsr_ray.pipeline.encode import EncodeOptions
from tmlsr_ray.pipeline.length import LengthLimits
from tmlsr_ray.pipeline.mux import MuxReport
from tmlsr_ray.pipeline.output_formats import (HEVC_ENCODER, HEVC_THIN_MAX_SIDE, HEVC_THIN_SIDE, MAX_FRAME_SIZE,
                                               MIN_FRAME_SIDE, ContainerFormat, container_refusal, encoded_crf,
                                               resolve_codec, too_long_for_hevc)
from tmlsr_ray.pipeline.probe import check_frame_pixels, probe_video
from tmlsr_ray.pipeline.segment_plan import Cutting, SegmentPlan
from tmlsr_ray.pipeline.segments import plan_segments
from tmlsr_ray.pipeline.timeline import continuous_source
from tmlsr_ray.pipeline.video_info import COLOR_FIELDS, VideoInfo

STILL_IMAGE_CONTAINERS = {"image2", "png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe", "tiff_pipe"}
ANIMATION_CONTAINERS = {"gif", "apng"}
# Demuxer options under which an animation's duration is the one its file states: by default
# FFmpeg, like browsers, plays a GIF frame of 0 or 1 centisecond for 100 ms.
STATED_TIMING = {"gif": {"min_delay": "0", "default_delay": "0"}}


def check_video_frames(info: VideoInfo, settings) -> None:
    """A video, and frames within the size limit (what no jump of its clock changes)."""
    if info.container in STILL_IMAGE_CONTAINERS or info.container.endswith("_pipe"):
        raise InputError(f"input is a still image ({info.codec}), not a video; submit it with type=image")
    check_frame_pixels(info.width, info.height, settings.max_input_pixels)


def length_checked_plan(path: Path, info: VideoInfo, limits: LengthLimits, cutting: Cutting,
                        repeat_damaged: bool = False,
                        max_pixels: Optional[int] = None) -> Tuple[Path, VideoInfo, SegmentPlan]:
    """The file to cut (``path``, or a copy of it with its clock made continuous), its facts and its
    segments, once every length check has passed: each scan of the packets stops as soon as the
    video is over ``limits``; the stated length is checked only after the clock is repaired (a jump
    back in it reads as a day of video), the indexed one where the container states none."""
    source = continuous_source(path, path.with_name(f"continuous-{path.name}"), limits, info.stream_index)
    if source != path:
        info = probe_video(source, repeat_damaged, max_pixels)
    check_video_length(info, limits)
    plan = plan_segments(source, info, cutting, max_pixels=max_pixels, limits=limits)
    check_indexed_length(info, plan, limits)
    return source, info, plan


def check_video_length(info: VideoInfo, limits: LengthLimits) -> None:
    """The length the container states (its frame count, or its duration × rate), and frames timed
    within it: an MP4 or MOV whose sample table gives every frame a duration of 0 is read with
    each frame the track's whole length after the last (its average rate one frame in that
    length), and a 1 s ProRes clip of 24 frames came out 24 s long."""
    if info.frames_hint > 1 and info.duration_s and info.average_rate \
            and float(info.average_rate) * info.duration_s < 1.5:
        raise InputError(f"video's {info.frames_hint:,} frames are timed {info.duration_s:g} s apart, each the "
                         f"whole length its track states: its frame times are damaged (a sample table of zero "
                         f"durations)")
    limits.check(info.frames_hint, info.duration_s)


def check_indexed_length(info: VideoInfo, plan: SegmentPlan, limits: LengthLimits) -> None:
    """The length the packet index counts and times: a browser's MediaRecorder WebM (a live
    Matroska) states neither a duration nor a frame count, and passed the limits at any length.
    A gap the output keeps is length: fragments joined across an HLS discontinuity whose clock jumps
    98 s on (a fragmented MP4's forward jumps are not closed) come out 102 s long, the frame before
    the gap held, for 4 s of frames."""
    limits.check(plan.frames, indexed_span_s(info, plan))


def check_encodable(target: Tuple[int, int], options: EncodeOptions, hdr: bool) -> None:
    """Refuses, before any model work, output frames too small or too large for the encoder the
    task gets (else its replica fails to open it, after the model's first batch)."""
    codec = resolve_codec(options.codec, target, options.pix_fmt, hdr)
    least = MIN_FRAME_SIDE.get(codec, 1)
    if min(target) < least:
        raise InputError(f"output frames of {target[0]}x{target[1]} are too small for {codec}, which takes at "
                         f"least {least} pixels a side; ask for video_codec h264, or a larger output")
    if codec == HEVC_ENCODER and too_long_for_hevc(target):
        raise InputError(f"output frames of {target[0]}x{target[1]} are too long for {codec}, which takes at most "
                         f"{HEVC_THIN_MAX_SIDE} pixels beside a side under {HEVC_THIN_SIDE}; ask for video_codec "
                         f"h264, or a shorter or wider output")
    most = MAX_FRAME_SIZE.get(codec, target)
    if target[0] > most[0] or target[1] > most[1]:
        larger = "" if codec == HEVC_ENCODER else "video_codec hevc, or "
        raise InputError(f"output frames of {target[0]}x{target[1]} are too large for {codec}, which takes at "
                         f"most {most[0]} wide and {most[1]} high; ask for {larger}a smaller output")


def check_container(into: ContainerFormat, options: EncodeOptions) -> None:
    """Refuses an output container that cannot hold the encoder's stream (ProRes in MP4, AV1 in
    QuickTime), before any model work: the service's codec, which the submission did not check."""
    refusal = container_refusal(into, options.codec)
    if refusal:
        raise InputError(refusal)


def check_frame_flood(path: Path, info: VideoInfo, frames: int, settings, span_s: Optional[float] = None) -> None:
    """Refuses too many animation frames, or too many frames for the duration the file states,
    else for ``span_s``, the span of their timestamps (a live WebM states none)."""
    if _kind(info) == "animation" and frames > settings.max_animation_frames:
        raise InputError(f"animation has {frames:,} frames, over the limit of {settings.max_animation_frames:,} "
                         "(max_animation_frames)")
    stated = stated_duration_s(path, info)
    timed, which = (stated, "a stated duration of") if stated is not None else (span_s, "timestamps spanning")
    if timed is not None and frames > settings.max_frames_per_second * max(timed, 1.0):
        raise InputError(f"{_kind(info)} has {frames:,} frames in {which} {timed:.3g} s, over the "
                         f"limit of {settings.max_frames_per_second:,g} frames per second (max_frames_per_second)")


def indexed_span_s(info: VideoInfo, plan: SegmentPlan) -> Optional[float]:
    """The span of the frames' times as the packet index has them (None: not cut by its times)."""
    return float(plan.span_ticks * info.time_base) if plan.span_ticks is not None else None


def check_video_work(info: VideoInfo, frames: int, target: Tuple[int, int], settings) -> None:
    """Refuses more work (frames × output pixels) than the budget."""
    work = frames * target[0] * target[1]
    if work > settings.max_video_work_pixels:
        raise InputError(f"{_kind(info)} needs {frames:,} frames × {target[0]}x{target[1]} = {work:.3g} output "
                         f"pixels, over the limit of {settings.max_video_work_pixels:.3g} (max_video_work_pixels)")


def _kind(info: VideoInfo) -> str:
    return "animation" if info.container in ANIMATION_CONTAINERS else "video"


def stated_duration_s(path: Path, info: VideoInfo) -> Optional[float]:
    """The duration the file states (``None``: it states none)."""
    options = STATED_TIMING.get(info.container)
    if options is None:
        return info.duration_s
    with open_probed(path, info, options) as container:
        stream = container.streams[info.stream_index]
        return float(stream.duration * stream.time_base) if stream.duration is not None else None


def video_metadata(info: VideoInfo, output: Path, report: MuxReport, options: EncodeOptions,
                   requested: Tuple[int, int]) -> Dict[str, Any]:
    with av.open(str(output)) as container:
        stream = container.streams.video[0]
        duration = container.duration / av.time_base if container.duration else None
        width, height = stream.codec_context.width, stream.codec_context.height
        codec = stream.codec_context.codec.canonical_name  # "av1", not the decoder libdav1d
        color = {name: int(getattr(stream.codec_context, name) or 0) for name in COLOR_FIELDS}
        pix_fmt = stream.codec_context.pix_fmt
    metadata: Dict[str, Any] = {
        "width": width, "height": height, "format": report.container,
        "fps": round(float(info.average_rate), 3) if info.average_rate else None,
        "frames": report.frames,
        "duration": round(duration, 3) if duration else None,
        "video_codec": codec, "encoder": report.encoder or options.codec, "pix_fmt": pix_fmt, "color": color,
        "hdr": HDR_TRANSFERS.get(color["color_trc"]),
        "crf": encoded_crf(report.encoder or options.codec, options.crf) if options.rate_controlled else None,
        "preset": options.preset if options.rate_controlled else None, "encoder_threads": options.threads,
        "audio_streams": [{**a, "copied": True} for a in report.audio_copied]
        + [{**a, "copied": False} for a in report.audio_reencoded],
        "audio_dropped": report.audio_dropped,
        "subtitle_streams": report.subtitles_copied,
        "subtitles_dropped": report.subtitles_dropped,
        "attachments": report.attachments,
        "attachments_dropped": report.attachments_dropped,
        "streams_dropped": report.streams_dropped,
        "chapters": report.chapters,
        "input": {
            "container": info.container, "codec": info.codec, "width": info.width, "height": info.height,
            "pix_fmt": info.pix_fmt, "bit_depth": info.bit_depth, "stream_index": info.stream_index,
            "rotation_applied": info.rotation, "duration": info.duration_s, "color": info.color,
            "hdr": HDR_TRANSFERS.get(info.color.get("color_trc")), "interlaced": info.interlaced,
        },
        "deinterlaced": info.interlaced,
    }
    if (width, height) != tuple(requested):
        metadata["size_note"] = size_note(tuple(requested), (width, height))
    if info.animated_gif:
        metadata["converted_from"] = "gif"
    return metadata


def size_note(requested: Tuple[int, int], made: Tuple[int, int]) -> str:
    """Why the output is not the size asked for: 4:2:0 takes even sides of 2 or more, so an odd
    side is rounded down and a side of 1 (SeedVR2 at resolution 1) goes up to 2."""
    asked = f"{requested[0]}x{requested[1]}"
    if all(m <= r for m, r in zip(made, requested)):
        return f"{asked} rounded down to even for 4:2:0"
    return f"{asked} made {made[0]}x{made[1]}: 4:2:0 needs even sides of at least 2"
