import av
import pytest

from tests.helpers import make_clip
from tmlsr_ray.pipeline.vpx_header import shows_no_frame

VP9_SHOWN, VP9_HIDDEN = 0x86, 0x84  # an inter frame's first header byte, profile 0, show_frame set / clear


def superframe(*frames: bytes) -> bytes:
    """Frames joined with an annex B index of one-byte sizes."""
    marker = 0xc0 | (len(frames) - 1)
    return b"".join(frames) + bytes([marker, *(len(frame) for frame in frames), marker])


@pytest.mark.parametrize("codec", ["libvpx", "libvpx-vp9"])
def test_every_packet_libvpx_makes_by_default_shows_a_frame(tmp_path, codec):
    path = make_clip(tmp_path / "in.webm", frames=24, audio=False, codec=codec)
    with av.open(str(path)) as container:
        name = container.streams.video[0].codec_context.codec.canonical_name
        assert not any(shows_no_frame(name, bytes(p)) for p in container.demux(video=0) if p.size)


def test_a_vp8_frame_not_shown_is_told_by_its_frame_tag():
    assert shows_no_frame("vp8", bytes([0x21, 0, 0])) and not shows_no_frame("vp8", bytes([0x31, 0, 0]))


def test_a_vp9_superframe_shows_a_frame_where_one_of_its_frames_is_shown():
    hidden, shown = bytes([VP9_HIDDEN, 1, 2]), bytes([VP9_SHOWN, 3])
    assert not shows_no_frame("vp9", superframe(hidden, shown))
    assert shows_no_frame("vp9", superframe(hidden, hidden)) and shows_no_frame("vp9", hidden)


def test_a_vp9_frame_showing_an_existing_one_shows_a_frame():
    assert not shows_no_frame("vp9", bytes([0x88]))  # show_existing_frame, frame 0


def test_other_codecs_and_empty_packets_are_never_told_hidden():
    assert not shows_no_frame("h264", bytes([0])) and not shows_no_frame("vp8", b"")
