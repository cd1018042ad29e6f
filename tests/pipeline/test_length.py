"""The length limits, and the meter that refuses a video over them as its packets are read."""

from __future__ import annotations

from fractions import Fraction
from types import SimpleNamespace

import pytest

from tests.helpers import (cut_mid_gop, interlaced_clip, joined_fragments, joined_recordings, make_clip,
                           media_recorder_webm, packed_b_frames_avi, soft_telecine_clip, trim_by_edit_list,
                           with_block_time_moved, with_flv_tag_time_moved, with_fragment_repeated, with_matroska_duration,
                           with_sample_durations_zero)
from tmlsr_ray.errors import InputError
from tmlsr_ray.pipeline.length import LengthLimits, LengthMeter
from tmlsr_ray.pipeline.media import indexed_span_s, length_checked_plan
from tmlsr_ray.pipeline.probe import probe_video
from tmlsr_ray.pipeline.segment_plan import Cutting
from tmlsr_ray.pipeline.segments import plan_segments
from tmlsr_ray.pipeline.timeline import continuous_source

FRAGMENTED = {"movflags": "frag_keyframe+empty_moov+default_base_moof"}
SCREEN_STEPS_MS = [3000 if n % 10 == 0 else 33 for n in range(60)]  # 30 fps, a still of 3 s every 10 frames

# Videos whose packets' times a scan reads otherwise than the plan times its frames: B-frames (decode
# times before the frames'), parser-made times, clocks that wrap or restart, VFR, fields, strays
WITHIN = {
    "mp4 with B-frames": lambda d: make_clip(d / "b.mp4", frames=48, rate=24, options={"bf": "3"}),
    "transport stream over its 33-bit clock's wrap": lambda d: make_clip(
        d / "wrap.ts", frames=96, rate=24, container="mpegts", start_s=2 ** 33 / 90_000 - 2, options={"bf": "2"}),
    "raw MPEG-2, times made by the parser": lambda d: make_clip(
        d / "raw.m2v", frames=48, rate=24, audio=False, codec="mpeg2video", container="mpeg2video",
        options={"bf": "2", "g": "12"}),
    "soft telecine VOB": lambda d: soft_telecine_clip(d / "film.vob"),
    "AVI of packed B-frames": lambda d: packed_b_frames_avi(d / "packed.avi"),
    "interlaced transport stream": lambda d: interlaced_clip(d / "fields.ts", codec="mpeg2video"),
    "browser's live WebM": lambda d: media_recorder_webm(d / "live.webm", frames=90),
    "screen recording with stills": lambda d: make_clip(
        d / "screen.mp4", frames=60, rate=30, audio=False, time_base=Fraction(1, 1000),
        pts=[sum(SCREEN_STEPS_MS[:n]) for n in range(60)]),
    "240 fps slow motion": lambda d: make_clip(d / "slow.mp4", frames=240, rate=240, audio=False, options={"bf": "3"}),
    "sample table of zero durations": lambda d: with_sample_durations_zero(
        make_clip(d / "zero.mov", frames=48, rate=24, container="mov", options={"bf": "2"})),
    "capture started inside a GOP": lambda d: cut_mid_gop(
        make_clip(d / "whole.ts", frames=48, rate=24, container="mpegts", options={"bf": "2", "g": "12"}),
        d / "cut.ts", 5),
    "MP4 trimmed by its edit list": lambda d: trim_by_edit_list(
        make_clip(d / "whole.mp4", frames=48, rate=24, options={"bf": "2", "g": "24"}), d / "trimmed.mp4", 20),
    "fragment written twice": lambda d: with_fragment_repeated(
        make_clip(d / "frag.mp4", frames=96, rate=24, container_options=FRAGMENTED, options={"g": "24"}),
        d / "twice.mp4", 2),
    "restarted transport stream": lambda d: joined_recordings(d / "joined.ts", (0, 0)),
    "FLV with a stray tag time": lambda d: with_flv_tag_time_moved(
        make_clip(d / "tags.flv", frames=48, rate=24, container="flv"), d / "stray.flv", 9, 45, 950),
    "Matroska with a stray block time before its end": lambda d: with_block_time_moved(
        make_clip(d / "blocks.mkv", frames=48, rate=24, audio=False, codec="libvpx"), d / "stray.mkv", 40, 900),
    "Matroska with a stray time on its last block": lambda d: last_block_stray(d),
    "HLS fragments joined across a 98 s gap": lambda d: joined_fragments(d / "gap.mp4", (0, 100)),
}


def last_block_stray(folder):
    """2 s of Matroska (48 frames at 24 fps, its Duration 2 s) whose last block says 0.86 s late."""
    clean = make_clip(folder / "blocks.mkv", frames=48, rate=24, audio=False, codec="libvpx")
    return with_block_time_moved(clean, folder / "last-stray.mkv", 47, 860)


def runner_checks(path, limits: LengthLimits) -> None:
    """The runner's length checks (both scans and both final checks), as it makes them."""
    length_checked_plan(path, probe_video(path), limits, Cutting())


def checked_length(path, folder) -> LengthLimits:
    """The length the runner's final checks see (the index's frames, and the span of its times, else
    the duration the file states, else none), as limits: a video exactly at them."""
    source = continuous_source(path, folder / f"unmetered-{path.name}")
    info = probe_video(source)
    plan = plan_segments(source, info, Cutting())
    span = indexed_span_s(info, plan)
    return LengthLimits(plan.frames, span if span is not None else info.duration_s or float("inf"))


@pytest.mark.parametrize("make", WITHIN.values(), ids=WITHIN.keys())
def test_a_video_exactly_at_the_limits_is_not_refused_by_either_scan(tmp_path, make):
    """The scans' meters count no more than the final checks do: a Matroska 2 s long (as it states,
    its index untimed) with one block's time a bit error 0.9 s on, 0.3 s before its end, was refused
    by the meter as 2.57 s long."""
    path = make(tmp_path)
    limits = checked_length(path, tmp_path)
    source = continuous_source(path, tmp_path / f"metered-{path.name}", limits, probe_video(path).stream_index)
    plan_segments(source, probe_video(source), Cutting(), limits=limits)


def test_a_matroska_whose_last_block_time_is_a_stray_lasts_as_long_as_its_duration_says(tmp_path):
    """Its index spanned 2.86 s (the last frame at 2.82 s): 2 s of video refused at a limit of 2.5 s."""
    path = last_block_stray(tmp_path)
    runner_checks(path, LengthLimits(500_000, 2.5))
    with pytest.raises(InputError, match=r"the limit of 1\.9 s \(max_video_duration_s\)$"):
        runner_checks(path, LengthLimits(500_000, 1.9))
    with pytest.raises(InputError, match=r"^video has 48 frames, over the limit of 47 \(max_video_frames\)$"):
        runner_checks(path, LengthLimits(47, 2.5))


def test_a_matroska_whose_duration_is_short_of_its_frames_is_held_to_the_length_they_play(tmp_path):
    """40 slides 2 s apart (78 s, each step over what the scans' meters count) under a Duration of
    5 s (a tool's own clock): the index's span was cut to the Duration, and it passed a limit of 60 s."""
    slides = make_clip(tmp_path / "slides.webm", frames=40, audio=False, codec="libvpx", container="webm",
                       time_base=Fraction(1, 1000), pts=[2000 * n for n in range(40)])
    path = with_matroska_duration(slides, tmp_path / "short.webm", 5000.0)
    with pytest.raises(InputError, match=r"^video lasts 78 s, over the limit of 60 s \(max_video_duration_s\)$"):
        runner_checks(path, LengthLimits(500_000, 60.0))


def test_fragments_joined_across_a_gap_are_held_to_the_length_their_output_plays(tmp_path):
    """4 s of frames with a forward jump of 98 s between them (HLS fragments across a discontinuity):
    a fragmented MP4's forward jump is not closed, the output holds the frame before it (102 s), and
    that is its length."""
    path = joined_fragments(tmp_path / "gap.mp4", (0, 100))
    runner_checks(path, LengthLimits(500_000, 102.5))
    with pytest.raises(InputError, match=r"^video lasts 102 s, over the limit of 60 s \(max_video_duration_s\)$"):
        runner_checks(path, LengthLimits(500_000, 60.0))


@pytest.mark.parametrize("seconds,limit,refusal", [
    (60.04, 60.0, "video lasts 60.04 s, over the limit of 60 s (max_video_duration_s)"),
    (2.0, 0.5, "video lasts 2 s, over the limit of 0.5 s (max_video_duration_s)"),
    (20_000.4, 14_400.0, "video lasts 20,000 s, over the limit of 14,400 s (max_video_duration_s)"),
    (0.7, 0.5, "video lasts 0.7 s, over the limit of 0.5 s (max_video_duration_s)"),
    (60.6, 60.0, "video lasts 60.6 s, over the limit of 60 s (max_video_duration_s)"),
], ids=["just over", "a limit under a second", "hours", "not rounded up", "not rounded up to whole seconds"])
def test_a_refusal_says_a_length_that_reads_over_the_limit(seconds, limit, refusal):
    """A video 60.04 s long under a limit of 60 s was said to last '60 s, over the limit of 60 s', and
    one of 2 s under a limit of 0.5 s to be 'over the limit of 0 s'; one of 0.7 s was said to last 1 s."""
    with pytest.raises(InputError) as refused:
        LengthLimits(500_000, limit).check(0, seconds)
    assert str(refused.value) == refusal


def video_packet(time: int, keyframe: bool = False) -> SimpleNamespace:
    """A demuxed packet of stream 0 as the meter reads it: a frame at ``time`` 24ths of a second."""
    return SimpleNamespace(stream=SimpleNamespace(index=0), size=100, is_discard=False, dts=time, pts=time,
                           is_keyframe=keyframe, time_base=Fraction(1, 24))


def test_the_meter_counts_a_frame_only_where_its_decode_time_passes_the_latest_reached():
    """A fragment written twice (frames 5 to 9 again, as a downloader that retried it writes them),
    which FFmpeg drops first, is no more frames nor length: 12 frames, and the 10 steps a later frame
    passed (not the last)."""
    meter = LengthMeter(LengthLimits(500_000, 3600.0), 0)
    for time in [*range(10), *range(5, 10), 10, 11]:
        meter.offer(video_packet(time, keyframe=time % 5 == 0))
    assert (meter.frames, meter.ticks) == (12, 10)
