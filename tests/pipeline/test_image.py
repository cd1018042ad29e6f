import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers import SHARED, shared_path
from tmlsr_ray.pipeline.errors import InputError
from tmlsr_ray.pipeline.image import decode_image, encode_image, output_format, probe_image

BAD = sorted((SHARED / "media" / "bad").glob("*")) if (SHARED / "media" / "bad").is_dir() else []


def _write(tmp_path, name, image: Image.Image, **save) -> Path:
    path = tmp_path / name
    image.save(path, **save)
    return path


def test_probe_reads_size_and_format_from_the_header(tmp_path):
    path = _write(tmp_path, "a.png", Image.new("RGB", (31, 17)))
    info = probe_image(path, 10_000)
    assert (info.width, info.height, info.format) == (31, 17, "png")


def test_images_over_the_pixel_limit_are_refused_before_decoding(tmp_path):
    path = _write(tmp_path, "big.png", Image.new("L", (200, 100)))
    with pytest.raises(InputError, match="20,000 pixels, over the limit of 19,999"):
        probe_image(path, 19_999)


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    path = _write(tmp_path, "rot.jpg", image, exif=exif.tobytes())
    info = probe_image(path, 10_000)
    assert decode_image(path, info).shape == (40, 20, 3)


def test_text_renamed_as_image_is_refused_readably(tmp_path):
    path = tmp_path / "x.png"
    path.write_text("<html>hello</html>")
    with pytest.raises(InputError, match="not a readable image"):
        probe_image(path, 10_000)


def test_truncated_png_is_refused_readably(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(InputError):
        decode_image(path, probe_image(path, 10_000))


@pytest.mark.parametrize("path", BAD or [None], ids=lambda p: p.name if p else "no-shared-media")
def test_every_shared_bad_input_is_refused_with_a_readable_error(path):
    if path is None:
        shared_path("media", "bad")
    with pytest.raises(InputError) as caught:
        decode_image(path, probe_image(path, 64_000_000))
    assert str(caught.value) and "Traceback" not in str(caught.value)


def test_cmyk_jpeg_decodes_to_three_channels():
    path = shared_path("media", "image", "cmyk_adobe_100x100.jpg")
    assert decode_image(path, probe_image(path, 10**6)).shape == (100, 100, 3)


@pytest.mark.parametrize(
    "fmt,channels,dtype,expected",
    [("jpeg", 3, np.uint8, "jpeg"), ("jpeg", 4, np.uint8, "png"), ("webp", 4, np.uint8, "webp"),
     ("png", 3, np.uint16, "png"), ("jpeg", 3, np.uint16, "png")],
)
def test_output_format_keeps_the_input_format_where_it_can_hold_the_result(tmp_path, fmt, channels, dtype, expected):
    from tmlsr_ray.pipeline.image import ImageInfo

    image = np.zeros((4, 4, channels), dtype)
    chosen = output_format(ImageInfo(4, 4, fmt, "RGB", 1), image)
    assert chosen == expected
    assert encode_image(image, chosen)[:4] in (b"\x89PNG", b"\xff\xd8\xff\xe0", b"RIFF", b"\xff\xd8\xff\xdb")


def test_a_gif_image_decodes_its_first_frame(tmp_path):
    first = Image.new("RGB", (12, 10), (255, 0, 0))
    second = Image.new("RGB", (12, 10), (0, 255, 0))
    path = tmp_path / "anim.gif"
    first.save(path, save_all=True, append_images=[second])
    info = probe_image(path, 10_000)
    image = decode_image(path, info)
    assert info.format == "gif" and image.shape == (10, 12, 3)
    assert image[5, 5, 2] > 200 and image[5, 5, 1] < 50  # red in BGR: the first frame
    assert output_format(info, image) == "png"
