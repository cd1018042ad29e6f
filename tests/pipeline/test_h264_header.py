import av
import pytest

from tests.helpers import intra_refresh_clip
from tmlsr_ray.pipeline.h264_header import nal_length_size, starts_at_recovery_point


@pytest.mark.parametrize("suffix", ["mkv", "ts"])  # NAL units after their lengths; after start codes
def test_an_intra_refresh_streams_keyframe_at_its_first_refresh_is_a_recovery_point(tmp_path, suffix):
    """Its first keyframe is an IDR picture, the next (1.25 s) a recovery point (x264 puts IDR
    pictures at the scene cuts it finds after)."""
    path = intra_refresh_clip(tmp_path / f"in.{suffix}")
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        length_size = nal_length_size(stream.codec_context.extradata)
        keyframes = [starts_at_recovery_point(memoryview(packet), length_size)
                     for packet in container.demux(stream) if packet.size and packet.is_keyframe]
    assert keyframes[:2] == [False, True]


def test_a_packet_whose_headers_are_unreadable_is_no_recovery_point():
    """A damaged keyframe's bytes (0xFF) hold no slice: its lost GOP is still damage."""
    assert not starts_at_recovery_point(b"\xff" * 64)
    assert not starts_at_recovery_point(b"\x00\x00\x01" + b"\xff" * 64)
