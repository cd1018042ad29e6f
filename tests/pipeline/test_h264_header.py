import av
import pytest

from tests.helpers import intra_refresh_clip, make_clip
from tmlsr_ray.pipeline.h264_header import nal_length_size, starts_at_recovery_point


def keyframes_at_recovery_points(path):
    """Of each keyframe-flagged packet, whether it starts at a recovery point."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        length_size = nal_length_size(stream.codec_context.extradata)
        return [starts_at_recovery_point(memoryview(packet), length_size)
                for packet in container.demux(stream) if packet.size and packet.is_keyframe]


@pytest.mark.parametrize("suffix", ["mkv", "ts"])  # NAL units after their lengths; after start codes
def test_an_intra_refresh_streams_keyframe_at_its_first_refresh_is_a_recovery_point(tmp_path, suffix):
    """Its first keyframe is an IDR picture, the next (1.25 s) a recovery point (x264 puts IDR
    pictures at the scene cuts it finds after)."""
    path = intra_refresh_clip(tmp_path / f"in.{suffix}")
    keyframes = keyframes_at_recovery_points(path)
    assert keyframes[:2] == [False, True]


@pytest.mark.parametrize("suffix", ["mkv", "ts"])
def test_an_open_gops_keyframes_are_no_recovery_points(tmp_path, suffix):
    """Intra pictures other than IDR, whole at once: a decode started at one that comes short is
    still damage."""
    path = make_clip(tmp_path / f"in.{suffix}", frames=48, rate=24, audio=False,
                     options={"x264-params": "open-gop=1:keyint=12:bframes=3:b-adapt=0"})
    keyframes = keyframes_at_recovery_points(path)
    assert keyframes == [False] * 5  # the IDR picture, then four others


def test_a_packet_whose_headers_are_unreadable_is_no_recovery_point():
    """A damaged keyframe's bytes (0xFF) hold no slice: its lost GOP is still damage."""
    assert not starts_at_recovery_point(b"\xff" * 64)
    assert not starts_at_recovery_point(b"\x00\x00\x01" + b"\xff" * 64)
