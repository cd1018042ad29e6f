
import av
import pytest
from PIL import Image

from tests.helpers import make_clip
from tmlsr_ray.pipeline.av1_header import largest_frame_size
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
