"""What a video's probe found, as the stages read it: its rate, its times, its colour tags."""

from fractions import Fraction
from types import SimpleNamespace

import av
import pytest

from tests.helpers import make_clip, probed_info
from tmlsr_ray.pipeline.video_info import colour_tags, with_container_colour

PQ_BT2020 = {"color_primaries": 9, "color_trc": 16, "colorspace": 9, "color_range": 1}


def test_the_rate_a_video_plays_at_and_a_frames_length_in_its_time_base_come_from_its_average_rate():
    info = probed_info(average_rate=Fraction(30000, 1001), time_base=Fraction(1, 30000))
    assert info.fps == pytest.approx(29.97, abs=0.001)
    assert info.frame_ticks == pytest.approx(1001)


def test_a_video_stating_no_rate_has_no_fps_and_no_frame_length():
    info = probed_info(average_rate=None)
    assert info.fps is None and info.frame_ticks is None


def test_times_count_from_the_first_frame_as_a_player_does():
    """A broadcast recording's clock starts hours in: its first frame is 0 s, as a player shows it."""
    info = probed_info(start_pts=10 * 3600 * 12288)
    assert info.seconds(info.start_pts) == 0.0
    assert info.seconds(info.start_pts + 3 * 12288 // 2) == 1.5
    assert info.seconds(info.start_pts - 12288) == -1.0  # a frame before the first one found (B-frame reorder)


def test_colour_tags_are_read_from_a_codec_context_with_0_where_the_video_states_none(tmp_path):
    pq = {"color_primaries": "bt2020", "color_trc": "smpte2084", "colorspace": "bt2020nc", "color_range": "tv"}
    tagged = make_clip(tmp_path / "tagged.mp4", frames=1, audio=False, options=pq)
    untagged = make_clip(tmp_path / "untagged.mkv", frames=1, audio=False, pix_fmt="yuvj420p")
    with av.open(str(tagged)) as container:
        assert colour_tags(container.streams.video[0].codec_context) == PQ_BT2020
    with av.open(str(untagged)) as container:
        assert colour_tags(container.streams.video[0].codec_context)["color_range"] == 2  # full range: stated
    assert colour_tags(SimpleNamespace(color_primaries=None, color_trc=None, colorspace=None, color_range=None)) == {
        "color_primaries": 0, "color_trc": 0, "colorspace": 0, "color_range": 0}


def test_the_containers_colour_stands_where_the_decoder_states_none():
    """HEVC's decoder drops the colour an MP4 colr box states where its bitstream has none: PQ
    HDR was read as SDR."""
    unstated = {"color_primaries": 2, "color_trc": 2, "colorspace": 2, "color_range": 0}
    assert with_container_colour(unstated, PQ_BT2020) == PQ_BT2020
    assert with_container_colour({**unstated, "color_primaries": 0, "color_trc": 0}, PQ_BT2020) == PQ_BT2020


def test_the_colour_the_decoder_states_wins_over_the_containers_rgb_included():
    decoded = {"color_primaries": 1, "color_trc": 1, "colorspace": 0, "color_range": 2}  # 0: RGB, stated
    assert with_container_colour(decoded, PQ_BT2020) == decoded
