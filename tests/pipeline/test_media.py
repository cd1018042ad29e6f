"""Video limits before the model: frame floods (too many animation frames, too many frames for the
stated duration, too much work) are refused with the limit named; real clips pass. And what the
output's metadata says of its size."""

from dataclasses import replace

import av
import numpy as np
import pytest

from tests.helpers import (animated_gif, frame_flood_gif, joined_recordings, make_clip, media_recorder_webm,
                           with_sample_durations_zero)
from tmlsr_ray.config import Settings
from tmlsr_ray.errors import InputError
from tmlsr_ray.pipeline.length import LengthLimits
from tmlsr_ray.pipeline.media import (check_frame_flood, check_indexed_length, check_video_frames, check_video_length,
                                      check_video_work, indexed_span_s, size_note, stated_duration_s)
from tmlsr_ray.pipeline.probe import probe_video
from tmlsr_ray.pipeline.segments import plan_segments
from tmlsr_ray.pipeline.timeline import continuous_source

DEFAULTS = Settings()
DEFAULT_LIMITS = LengthLimits.of(DEFAULTS)


def budget_check(path, target=(2, 2), settings=DEFAULTS):
    """What the runner does: the frames counted from the packet index, then the checks."""
    info = probe_video(path)
    frames = plan_segments(path, info, settings.video_cutting).frames
    check_frame_flood(path, info, frames, settings)
    check_video_work(info, frames, target, settings)


def test_a_gif_of_40000_zero_delay_frames_is_refused_naming_the_animation_frame_limit(tmp_path):
    path = tmp_path / "flood.gif"
    path.write_bytes(frame_flood_gif(40_000))
    assert path.stat().st_size == 920_020
    with pytest.raises(InputError, match=r"animation has 40,000 frames, over the limit of 10,000 "
                                         r"\(max_animation_frames\)"):
        budget_check(path)


def test_thousands_of_frames_in_no_stated_time_are_refused_by_the_frame_rate_limit(tmp_path):
    # FFmpeg plays a zero delay as 100 ms (500 s here); the file itself states 0 s.
    path = tmp_path / "fast.gif"
    path.write_bytes(frame_flood_gif(5_000))
    assert stated_duration_s(path, probe_video(path)) == 0
    with pytest.raises(InputError, match=r"5,000 frames in a stated duration of 0 s, over the limit of 1,000 "
                                         r"frames per second \(max_frames_per_second\)"):
        budget_check(path)


def test_a_short_near_zero_delay_animation_is_not_a_flood(tmp_path):
    path = tmp_path / "blink.gif"
    path.write_bytes(frame_flood_gif(900))  # under max_frames_per_second × 1 s
    budget_check(path)


def test_a_short_real_gif_passes_with_the_duration_its_frames_state(tmp_path):
    path = tmp_path / "real.gif"
    path.write_bytes(animated_gif(frames=8, delay_ms=100))
    assert stated_duration_s(path, probe_video(path)) == pytest.approx(0.8)
    budget_check(path, target=(96, 64))


def test_more_work_than_the_budget_is_refused_naming_it(tmp_path):
    path = make_clip(tmp_path / "clip.mp4", frames=12, audio=False)
    with pytest.raises(InputError, match=r"video needs 12 frames × 128x96 = 1\.47e\+05 output pixels, over the "
                                         r"limit of 1e\+05 \(max_video_work_pixels\)"):
        budget_check(path, target=(128, 96), settings=Settings(max_video_work_pixels=1e5))


@pytest.mark.parametrize("frames,seconds,target", [
    (432_000, 7200.0, (3840, 2160)),  # two hours of 4K60 at ×1: 3.6e12 output pixels
    (2_400, 10.0, (1920, 1080)),  # ten seconds of 240 fps slow motion
])
def test_long_and_fast_real_clips_fit_the_default_budgets(tmp_path, frames, seconds, target):
    path = make_clip(tmp_path / "clip.mp4", frames=2, audio=False)
    info = replace(probe_video(path), duration_s=seconds)
    check_frame_flood(path, info, frames, DEFAULTS)
    check_video_work(info, frames, target, DEFAULTS)


def test_an_animated_webp_sent_as_a_video_is_refused_saying_how_to_send_it(tmp_path):
    from PIL import Image

    frames = [Image.new("RGB", (24, 16), (i * 60, 0, 0)) for i in range(3)]
    path = tmp_path / "anim.webp"
    frames[0].save(path, "WEBP", save_all=True, append_images=frames[1:], duration=100)
    with pytest.raises(InputError, match="animated WebP .* send it with type image"):
        probe_video(path)


@pytest.mark.parametrize("codec,size", [("libx265", (8, 8)), ("libx265", (640, 8)), ("av1", (640, 16))])
def test_output_frames_too_small_for_the_encoder_are_refused_before_the_model_runs(codec, size):
    """libx265 refuses to open under 16 pixels a side; SVT-AV1 ran until the call's timeout at 640x16."""
    from tmlsr_ray.pipeline.output_formats import resolve_codec
    from tmlsr_ray.pipeline.encode import EncodeOptions
    from tmlsr_ray.pipeline.media import check_encodable

    options = EncodeOptions(codec)
    if resolve_codec(codec, size) not in ("libx265", "libsvtav1") or resolve_codec(codec, size) not in av.codecs_available:
        pytest.skip(f"this FFmpeg has no {codec} encoder with a known minimum")
    with pytest.raises(InputError, match=rf"output frames of {size[0]}x{size[1]} are too small for .*video_codec h264"):
        check_encodable(size, options, hdr=False)
    check_encodable((64, 64), options, hdr=False)


@pytest.mark.parametrize("codec,size", [("h264", (16386, 64)), ("h264", (64, 16386)), ("av1", (16386, 64)),
                                        ("av1", (64, 8706))])
def test_output_frames_too_large_for_the_encoder_are_refused_before_the_model_runs(codec, size):
    """libx264 and SVT-AV1 refuse to open above their largest frame: the replica failed with
    "Generic error in an external library" after the model's first batch."""
    from tmlsr_ray.pipeline.output_formats import MAX_FRAME_SIZE, TASK_CODECS, encoder_works, resolve_codec
    from tmlsr_ray.pipeline.encode import EncodeOptions
    from tmlsr_ray.pipeline.media import check_encodable

    options = EncodeOptions(TASK_CODECS[codec])
    encoder = resolve_codec(options.codec, size)
    if encoder not in av.codecs_available:
        pytest.skip(f"this FFmpeg has no {codec} encoder")
    assert not encoder_works(encoder, *size) and encoder_works(encoder, MAX_FRAME_SIZE[encoder][0], 64)
    with pytest.raises(InputError, match=rf"output frames of {size[0]}x{size[1]} are too large for {encoder}.*"
                                         rf"ask for .*a smaller output"):
        check_encodable(size, options, hdr=False)
    check_encodable((64, MAX_FRAME_SIZE[encoder][1]), options, hdr=False)


@pytest.mark.parametrize("size", [(4218, 16), (8192, 16), (16, 32768), (16384, 30)])
def test_a_thin_long_hevc_output_is_refused_before_the_model_runs(size):
    """Under 32 a side libx265 codes in 16-pixel CTUs, which HEVC allows only up to level 4.1:
    8192x16 failed to open on the replica ("Invalid data found when processing input")."""
    from tmlsr_ray.pipeline.output_formats import encoder_works
    from tmlsr_ray.pipeline.encode import EncodeOptions
    from tmlsr_ray.pipeline.media import check_encodable

    if "libx265" not in av.codecs_available:
        pytest.skip("this FFmpeg has no libx265")
    assert not encoder_works("libx265", *size) and encoder_works("libx265", 4208, 16)
    with pytest.raises(InputError, match=rf"output frames of {size[0]}x{size[1]} are too long for libx265.*"
                                         rf"at most 4208.*video_codec h264"):
        check_encodable(size, EncodeOptions("libx265"), hdr=False)
    check_encodable((4208, 16), EncodeOptions("libx265"), hdr=False)
    check_encodable((8192, 32), EncodeOptions("libx265"), hdr=False)


@pytest.mark.parametrize("encoder", ["prores_ks", "prores_aw"])
@pytest.mark.parametrize("size", [(65536, 16), (16, 65536)])
def test_a_prores_output_larger_than_its_frame_header_holds_is_refused_before_the_model_runs(tmp_path, size, encoder):
    """ProRes writes a side in 16 bits of its frame header: prores_ks opens for any size and writes
    65536 as 0, so its piece failed to mux ("Invalid argument"), and prores_aw refuses to open; both
    on the replica, after the model's first batch."""
    from tmlsr_ray.pipeline.encode import EncodeOptions, PieceWriter
    from tmlsr_ray.pipeline.media import check_encodable

    if encoder not in av.codecs_available:
        pytest.skip(f"this FFmpeg has no {encoder}")
    info = probe_video(make_clip(tmp_path / "clip.mp4", frames=1, audio=False))
    with pytest.raises(av.error.FFmpegError):
        writer = PieceWriter(0, info, size, EncodeOptions(encoder, threads=1))
        writer.write(np.zeros((1, size[1], size[0], 3), np.uint8), [0])
        writer.close()
    with pytest.raises(InputError, match=rf"output frames of {size[0]}x{size[1]} are too large for {encoder}"):
        check_encodable(size, EncodeOptions(encoder), hdr=False)
    check_encodable((65534, 16), EncodeOptions(encoder), hdr=False)


def test_a_thin_long_hdr_video_goes_to_h264_where_hevc_cannot_take_it():
    from tmlsr_ray.pipeline.output_formats import resolve_codec
    from tmlsr_ray.pipeline.encode import EncodeOptions
    from tmlsr_ray.pipeline.media import check_encodable

    assert resolve_codec("auto", (8192, 16), "yuv420p10le", hdr=True) == "libx264"
    assert resolve_codec("auto", (4208, 16), "yuv420p10le", hdr=True) == "libx265"
    check_encodable((8192, 16), EncodeOptions("auto", ten_bit=True), hdr=True)


def test_a_tiny_hdr_video_goes_to_h264_where_hevc_cannot_take_it():
    from tmlsr_ray.pipeline.output_formats import resolve_codec
    from tmlsr_ray.pipeline.encode import EncodeOptions
    from tmlsr_ray.pipeline.media import check_encodable

    assert resolve_codec("auto", (8, 8), "yuv420p10le", hdr=True) == "libx264"
    check_encodable((8, 8), EncodeOptions("auto", ten_bit=True), hdr=True)


def test_the_size_note_says_a_side_of_one_went_up_to_two_and_an_odd_side_down():
    assert size_note((101, 77), (100, 76)) == "101x77 rounded down to even for 4:2:0"
    assert size_note((1, 1), (2, 2)) == "1x1 made 2x2: 4:2:0 needs even sides of at least 2"
    assert size_note((1, 7), (2, 6)) == "1x7 made 2x6: 4:2:0 needs even sides of at least 2"


def test_a_recording_whose_clock_jumps_back_is_measured_after_the_jump_is_closed(tmp_path):
    """A jump back of over a minute reads as the clock wrapping: a day of video at probe. Its
    frames are checked there (no copy for a file too large), its length once the jump is closed."""
    path = joined_recordings(tmp_path / "joined.ts", (100, 0))
    wrapped = probe_video(path)
    check_video_frames(wrapped, DEFAULTS)
    with pytest.raises(InputError, match="over the limit"):
        check_video_length(wrapped, DEFAULT_LIMITS)
    check_video_length(probe_video(continuous_source(path, tmp_path / "continuous.ts")), DEFAULT_LIMITS)
    with pytest.raises(InputError, match=r"64x48 = 3,072 pixels, over the limit of 1,000"):
        check_video_frames(wrapped, Settings(max_input_pixels=1000))


def test_a_browser_recording_that_states_no_length_is_held_to_the_limits_by_its_packet_index(tmp_path):
    """A MediaRecorder WebM states no duration and no frame count: it passed any length limit."""
    path = media_recorder_webm(tmp_path / "recording.webm", frames=60)
    info = probe_video(path)
    assert info.duration_s is None and info.frames_hint == 0
    plan = plan_segments(path, info, DEFAULTS.video_cutting)
    check_video_length(info, LengthLimits(50, 1.0))  # nothing stated to check
    with pytest.raises(InputError, match="video has 60 frames, over the limit of 50"):
        check_indexed_length(info, plan, LengthLimits(50, DEFAULTS.max_video_duration_s))
    with pytest.raises(InputError, match="video lasts 2 s, over the limit of 1 s"):
        check_indexed_length(info, plan, LengthLimits(DEFAULTS.max_video_frames, 1.0))
    check_indexed_length(info, plan, DEFAULT_LIMITS)
    assert plan.span_ticks == 1972 + 33  # 59 steps of its milliseconds, and its last frame


def test_a_frame_flood_in_a_recording_that_states_no_duration_is_refused_by_its_timestamps(tmp_path):
    """A live WebM states no duration, so the frames-per-second limit had nothing to hold its
    frames to: 60 frames over its 2 s of timestamps pass at 1,000 a second and fail at 20."""
    path = media_recorder_webm(tmp_path / "recording.webm", frames=60)
    info = probe_video(path)
    plan = plan_segments(path, info, DEFAULTS.video_cutting)
    check_frame_flood(path, info, plan.frames, DEFAULTS, indexed_span_s(info, plan))
    with pytest.raises(InputError, match=r"video has 60 frames in timestamps spanning 2 s, over the limit of 20 "
                                         r"frames per second \(max_frames_per_second\)"):
        check_frame_flood(path, info, plan.frames, Settings(max_frames_per_second=20), indexed_span_s(info, plan))


@pytest.mark.parametrize("codec,audio_codec,container", [("libx264", "aac", "matroska"), ("libvpx", "libopus", "webm")])
def test_a_matroska_remux_that_kept_a_live_streams_clock_lasts_from_its_first_frame(tmp_path, codec, audio_codec,
                                                                                     container):
    """``ffmpeg -copyts -i live.m3u8 -c copy out.mkv`` keeps the stream's clock; Matroska's Duration
    says where the file ends, and 2 s of video 20,000 s in were refused as 20,002 s long."""
    path = make_clip(tmp_path / f"live.{container}", frames=24, codec=codec, audio_codec=audio_codec,
                     container=container, start_s=20_000.0)
    info = probe_video(path)
    assert info.duration_s == pytest.approx(2.0, abs=0.1) and info.frames_hint == pytest.approx(24, abs=2)
    check_video_length(info, DEFAULT_LIMITS)


def test_a_mov_whose_sample_table_times_every_frame_zero_is_refused_saying_its_times_are_damaged(tmp_path):
    """FFmpeg puts each frame of such a track its whole stated length (1 s) after the last: a 1 s
    ProRes clip of 24 frames came out 24 s long, after 25 s of work on its 16,000 one-sample audio packets."""
    clip = make_clip(tmp_path / "clip.mov", frames=24, rate=24, codec="prores_ks", pix_fmt="yuv422p10le",
                     audio_codec="pcm_s16le")
    check_video_length(probe_video(clip), DEFAULT_LIMITS)
    with pytest.raises(InputError, match=r"video's 24 frames are timed 1 s apart, each the whole length its track "
                                         r"states: its frame times are damaged"):
        check_video_length(probe_video(with_sample_durations_zero(clip)), DEFAULT_LIMITS)
