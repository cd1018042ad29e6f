"""The probe: which stream is the video, its rate and codec as a player reads them, a file cut
off or stating too much refused readably, and the pixel limit checked before a frame is made."""

from __future__ import annotations

from fractions import Fraction

import av
import pytest

from tests.helpers import (camcorder_dv, damaged_clip, interlaced_clip, make_clip, video_tracks,
                           video_under_a_smaller_header, with_box_field)
from tmlsr_ray.errors import InputError
from tmlsr_ray.pipeline.damage import concealment_told
from tmlsr_ray.pipeline.probe import largest_picture, probe_video


def _vp8_clip_and_keyframes(tmp_path, size) -> tuple:
    path = make_clip(tmp_path / f"{size[0]}x{size[1]}.webm", frames=2, size=size, audio=False, codec="libvpx")
    with av.open(str(path)) as container:
        return path, [bytes(p) for p in container.demux(container.streams.video[0]) if p.size and p.is_keyframe]


def _vp8_keyframe_stating_no_size(tmp_path) -> tuple:
    """A 64x48 VP8 clip and its keyframe with the width its header states (14 bits and a scale,
    after the start code) made 0: a damaged header."""
    path, keyframes = _vp8_clip_and_keyframes(tmp_path, (64, 48))
    return path, keyframes[0][:6] + b"\x00\x00" + keyframes[0][8:]


@pytest.mark.parametrize("preview_first", [False, True])
def test_the_main_video_is_upscaled_not_a_small_preview_track_with_a_higher_bit_rate(tmp_path, preview_first):
    # MP4 enables both tracks, so both are default; the 12-frame preview's bit rate is the higher
    tracks = [((96, 64), 36, True), ((32, 24), 12, True)]
    path = video_tracks(tmp_path / "preview.mp4", tracks[::-1] if preview_first else tracks)
    info = probe_video(path)
    assert (info.width, info.height, info.stream_index) == (96, 64, int(preview_first))


@pytest.mark.parametrize("default", [0, 1])
def test_of_several_angles_the_default_one_is_upscaled_whatever_its_size(tmp_path, default):
    sizes = [(64, 48), (96, 64)]
    path = video_tracks(tmp_path / "angles.mkv", [(size, 24, n == default) for n, size in enumerate(sizes)])
    info = probe_video(path)
    assert (info.width, info.height, info.stream_index) == (*sizes[default], default)


def test_a_still_picture_track_beside_the_video_is_not_taken_for_it(tmp_path):
    path = video_tracks(tmp_path / "poster.mp4", [((96, 64), 1, True), ((64, 48), 24, True)])
    assert probe_video(path).stream_index == 1


def test_a_raw_dv_captures_frame_rate_is_its_frames_not_its_clock(tmp_path):
    """FFmpeg's DV reader states its time base, 60,000 ticks a second, as the average rate: the
    output said 60,000 fps, its Matroska track 30,000, and the tape's timecode was dropped."""
    info = probe_video(camcorder_dv(tmp_path / "tape.dv"))
    assert info.average_rate == 25 and info.time_base == Fraction(1, 60000)


@pytest.mark.parametrize("codec,container", [("libx264", "h264"), ("libx265", "hevc")])
def test_a_raw_elementary_streams_rate_is_the_one_its_headers_state(tmp_path, codec, container):
    """An anime raw ``.264`` at 23.976 (its H.264 VUI says so): FFmpeg's raw reader states 25 fps
    for every such stream, and its frames were stamped and encoded at 25, 4 % fast."""
    path = make_clip(tmp_path / f"film.{container}", frames=6, rate=Fraction(24000, 1001), audio=False, codec=codec,
                     container=container, options={"x265-params": "log-level=error"} if codec == "libx265" else None)
    assert probe_video(path).average_rate == Fraction(24000, 1001)


@pytest.mark.parametrize("container", ["webm", "mp4"])
def test_an_av1_input_is_named_by_its_codec_not_by_the_decoder_ffmpeg_picked(tmp_path, container):
    """yt-dlp's AV1 downloads: metadata.input.codec said libdav1d, the decoder FFmpeg picked for them."""
    if "libsvtav1" not in av.codecs_available:
        pytest.skip("this FFmpeg has no SVT-AV1")
    path = make_clip(tmp_path / f"av1.{container}", frames=4, size=(64, 64), audio=False, codec="libsvtav1",
                     options={"preset": "12"})
    assert probe_video(path).codec == "av1"


def test_a_matroska_file_cut_off_in_its_header_is_refused_as_cut_off(tmp_path):
    """FFmpeg calls it an 'Input/output error', which read as a fault of the server's disk."""
    source = make_clip(tmp_path / "in.mkv")
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(source.read_bytes()[:100])
    with pytest.raises(InputError, match=r"^input is not a readable video \(Input/output error: the file is cut off "
                                         r"or damaged\)$"):
        probe_video(cut)


def test_an_mp4_stating_two_billion_sample_times_is_refused_as_stating_more_than_ffmpeg_allocates(tmp_path):
    """FFmpeg's 'Cannot allocate memory' read as the server's memory running out."""
    path = with_box_field(make_clip(tmp_path / "in.mp4"), tmp_path / "huge.mp4", b"stts", 8, 1 << 31)
    with pytest.raises(InputError, match=r"\(Cannot allocate memory: the file states a size or count larger than "
                                         r"FFmpeg allocates\)$"):
        probe_video(path)


def test_an_mp4_cut_off_before_its_header_ends_is_refused_as_cut_off(tmp_path):
    source = make_clip(tmp_path / "in.mp4", container_options={"movflags": "faststart"})
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(source.read_bytes()[:512])
    with pytest.raises(InputError, match=r"\(End of file: the file is cut off\)$"):
        probe_video(cut)


def test_the_probe_reads_past_a_damaged_first_frame_only_for_a_task_that_takes_damaged_frames(tmp_path):
    """Refused by default, as before, saying where: a file whose first frames are damaged is often
    damaged beyond (two fuzzed fragmented MP4s, probed past it, completed with 2 frames)."""
    path = damaged_clip(tmp_path, [0])
    with pytest.raises(InputError, match=r"^video could not be decoded: a frame at about 0\.\d\d s is damaged \(Invalid "
                                         r"data found when processing input\); damaged_frames \"repeat\""):
        probe_video(path)
    assert (probe_video(path, repeat_damaged=True).width, probe_video(path, repeat_damaged=True).height) == (64, 48)


def test_a_keyframe_stating_a_picture_over_the_pixel_limit_is_refused_before_it_is_decoded(tmp_path):
    """A stream whose header says 64x48 and whose keyframe says more: the keyframe was decoded at
    its size before max_input_pixels was checked against it (8192x8192: 97 MB, 0.19 s)."""
    small, _ = _vp8_clip_and_keyframes(tmp_path, (64, 48))
    _, grown = _vp8_clip_and_keyframes(tmp_path, (640, 480))
    with av.open(str(small)) as container:
        with pytest.raises(InputError, match="keyframe whose picture is over the limit of 307,199 pixels "
                                             r"\(the stream's header states 64x48\)"):
            largest_picture(container.streams.video[0], grown, max_pixels=640 * 480 - 1)


def test_a_keyframe_within_the_pixel_limit_gives_the_grown_picture_size(tmp_path):
    small, _ = _vp8_clip_and_keyframes(tmp_path, (64, 48))
    _, grown = _vp8_clip_and_keyframes(tmp_path, (640, 480))
    with av.open(str(small)) as container:
        assert largest_picture(container.streams.video[0], grown, max_pixels=640 * 480) == (640, 480)


def test_a_video_whose_header_states_frames_over_the_pixel_limit_is_refused_before_its_first_frame_is_decoded(
        tmp_path):
    """The probe decoded the first frame (an 8192x8192 one: 124 MB, 0.8 s) before the runner
    checked the header's size against max_input_pixels."""
    path = make_clip(tmp_path / "large.webm", frames=2, size=(640, 480), audio=False, codec="libvpx")
    with pytest.raises(InputError, match="video frames are 640x480 = 307,200 pixels, over the limit of 307,199"):
        probe_video(path, max_pixels=640 * 480 - 1)
    assert (probe_video(path, max_pixels=640 * 480).width, probe_video(path).width) == (640, 640)


def test_a_video_whose_first_keyframe_is_over_the_pixel_limit_its_header_is_within_is_refused_by_the_probe(tmp_path):
    path = video_under_a_smaller_header(tmp_path / "liar.webm", (64, 48), (640, 480))
    with pytest.raises(InputError, match="keyframe whose picture is over the limit of 100,000 pixels "
                                         r"\(the stream's header states 64x48\)"):
        probe_video(path, max_pixels=100_000)


def test_only_a_progressive_stream_is_told_the_errors_its_decoder_conceals(tmp_path):
    """err_detect explode finds HEVC's damaged keyframe in a decode come short with no word; told
    so, an interlaced capture's harmless reference-marking warnings would fail it, and a stream of
    a field per packet always comes short of its packets."""
    assert concealment_told(probe_video(make_clip(tmp_path / "progressive.mp4", audio=False)))
    assert not concealment_told(probe_video(interlaced_clip(tmp_path / "interlaced.mp4")))


@pytest.mark.parametrize("codec", ["libvpx", "libx264"])
def test_a_video_exactly_at_the_pixel_limit_whose_width_is_no_multiple_of_64_is_probed(tmp_path, codec):
    """A decoder checks max_pixels against its picture with each row padded to 64 pixels: a
    portrait 1080x1920 video under a limit of 1920x1080 was refused, VP8 as 'over the limit' and
    H.264 as 'damaged'."""
    path = make_clip(tmp_path / "portrait.mkv", frames=2, size=(200, 100), audio=False, codec=codec)
    info = probe_video(path, max_pixels=200 * 100)
    assert (info.width, info.height) == (200, 100)


def test_a_first_keyframe_over_the_pixel_limit_and_within_the_decoders_headroom_is_refused_by_the_probe(tmp_path):
    path = video_under_a_smaller_header(tmp_path / "liar.webm", (64, 48), (200, 100))
    with pytest.raises(InputError, match="keyframe whose picture is over the limit of 15,000 pixels"):
        probe_video(path, max_pixels=15_000)


def test_a_keyframe_stating_no_size_is_said_to_be_maybe_damaged_not_only_over_the_pixel_limit(tmp_path):
    """The decoder refuses a picture of 0x0 as it does one over its cap (EINVAL): such a keyframe
    was refused as 'over the limit' alone."""
    path, damaged = _vp8_keyframe_stating_no_size(tmp_path)
    with av.open(str(path)) as container, pytest.raises(InputError, match=r"64x48\), or whose own header is damaged"):
        largest_picture(container.streams.video[0], [damaged], max_pixels=100_000)


def test_a_keyframe_stating_no_size_is_passed_over_where_no_pixel_limit_is_given(tmp_path):
    """It failed with a TypeError (a limit of None formatted as a number)."""
    path, damaged = _vp8_keyframe_stating_no_size(tmp_path)
    with av.open(str(path)) as container:
        assert largest_picture(container.streams.video[0], [damaged]) is None

