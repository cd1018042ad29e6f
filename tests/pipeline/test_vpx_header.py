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
    assert shows_no_frame("vp8", bytes([0x21, 0, 0, 0])) and not shows_no_frame("vp8", bytes([0x31, 0, 0, 0]))


@pytest.mark.parametrize("data", [bytes([0x01]), bytes([0x01, 0]), bytes([0x01, 0xff, 0xff, 0, 0]),
                                  bytes([0x00, 0, 0, 0x9d, 0x01, 0x2a, 0, 0, 0]),
                                  bytes([0x00, 0, 0, 0xff, 0xff, 0xff, 0, 0, 0, 0])],
                         ids=["1 byte", "2 bytes", "first partition past the packet", "key frame cut short",
                              "key frame without its start code"])
def test_a_vp8_packet_whose_frame_tag_ffmpeg_refuses_is_not_told_hidden(data):
    """Damage its decoder tells, where frame threads do not drop it unsaid: its show bit clear,
    it was counted a hidden frame, the frame it lost not missed."""
    assert not shows_no_frame("vp8", data)


def test_a_vp8_key_frame_not_shown_is_told_by_its_frame_tag():
    assert shows_no_frame("vp8", bytes([0x00, 0, 0, 0x9d, 0x01, 0x2a, 0, 0, 0, 0]))


def test_a_vp9_superframe_shows_a_frame_where_one_of_its_frames_is_shown():
    hidden, shown = bytes([VP9_HIDDEN, 1, 2]), bytes([VP9_SHOWN, 3])
    assert not shows_no_frame("vp9", superframe(hidden, shown))
    assert shows_no_frame("vp9", superframe(hidden, hidden)) and shows_no_frame("vp9", hidden)


@pytest.mark.parametrize("sizes", [(3, 0), (3, 3), (0, 4)], ids=["a frame of no size", "past the index",
                                                                  "a first frame of no size"])
def test_a_vp9_superframe_whose_index_ffmpeg_refuses_is_not_told_hidden(sizes):
    """FFmpeg refuses a frame of no size or sizes past the index (vp9_superframe_split): each read
    as a hidden frame from a slice of the packet."""
    marker = 0xc0 | 1
    assert not shows_no_frame("vp9", bytes([VP9_HIDDEN, 1, 2, VP9_HIDDEN, marker, *sizes, marker]))


def test_a_vp9_profile_3_frame_with_its_reserved_bit_set_is_not_told_hidden():
    assert shows_no_frame("vp9", bytes([0xb2])) and not shows_no_frame("vp9", bytes([0xba]))


def test_a_vp9_frame_showing_an_existing_one_shows_a_frame():
    assert not shows_no_frame("vp9", bytes([0x88]))  # show_existing_frame, frame 0


def test_other_codecs_and_empty_packets_are_never_told_hidden():
    assert not shows_no_frame("h264", bytes([0])) and not shows_no_frame("vp8", b"")
