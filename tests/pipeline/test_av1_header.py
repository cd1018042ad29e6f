
import av
import pytest
from PIL import Image

from tests.helpers import make_clip
from tmlsr_ray.pipeline.av1_header import first_frame, largest_frame_size
from tmlsr_ray.pipeline.heif_boxes import primary_item_start


@pytest.mark.parametrize("size", [(1, 1), (17, 9), (640, 480)])
def test_an_avif_pictures_reduced_sequence_header_gives_its_size(tmp_path, size):
    """libavif writes a still picture's reduced sequence header, after a temporal delimiter."""
    path = tmp_path / "still.avif"
    Image.new("RGB", size, (200, 30, 60)).save(path, "AVIF")
    assert largest_frame_size(primary_item_start(path, 600)) == size


def test_a_videos_full_sequence_header_gives_its_size(tmp_path):
    """SVT-AV1 writes a full one: timing and operating points before the size."""
    path = make_clip(tmp_path / "clip.mp4", frames=2, size=(200, 120), audio=False, codec="libsvtav1")
    with av.open(str(path)) as container:
        first = next(bytes(p) for p in container.demux(container.streams.video[0]) if p.size)
    assert largest_frame_size(first) == (200, 120)


def test_obus_without_a_sequence_header_give_no_size():
    assert largest_frame_size(b"\x12\x00") is None  # a temporal delimiter alone
    assert largest_frame_size(b"\x0a\x02\xff") is None  # a sequence header cut short
    assert largest_frame_size(b"") is None


def test_an_items_obus_are_cut_at_their_second_frame():
    """A temporal delimiter, a sequence header, a frame, then a frame header with its tile group
    and a frame: what follows the first frame is cut; a frame header alone begins one too."""
    delimiter, sequence_header, frame = b"\x12\x00", b"\x0a\x02\xab\xcd", b"\x32\x03\x01\x02\x03"
    frame_header, tile_group = b"\x1a\x01\x10", b"\x22\x02\x44\x55"
    first = delimiter + sequence_header + frame
    assert first_frame(first + frame_header + tile_group + frame) == first
    assert first_frame(first + frame) == first
    assert first_frame(delimiter + frame_header + tile_group + frame_header) == delimiter + frame_header + tile_group
    assert first_frame(first) == first and first_frame(b"") == b""
