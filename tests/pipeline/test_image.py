import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from tests.helpers import SHARED, display_p3_icc, shared_path
from tmlsr_ray.errors import InputError
from tmlsr_ray.pipeline.image import png_with_metadata, decode_image, encode_image, output_format, probe_image

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


# --- photos as phones and cameras make them: ICC profiles, EXIF, HEIC, AVIF -------------------

def tagged_photo(path: Path, fmt: str, size=(40, 24), orientation: int = 6, mode: str = "RGB") -> Path:
    """A photo tagged with a Display P3 profile and an EXIF orientation (6: shown turned 90° clockwise)."""
    pixels = np.zeros((size[1], size[0], len(mode)), np.uint8)
    pixels[:, : size[0] // 2] = 200  # left half bright: shows where the pixels went
    image = Image.fromarray(pixels[:, :, 0] if mode == "L" else pixels, mode)
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "TMLSR test camera"
    image.save(path, fmt, icc_profile=display_p3_icc(), exif=exif.tobytes(), **({"quality": 95} if fmt != "PNG" else {}))
    return path


def round_trip(path: Path):
    info = probe_image(path, 10**8)
    image = decode_image(path, info)
    fmt = output_format(info, image)
    return info, image, fmt, encode_image(image, fmt, 95, info.icc_profile, info.exif)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "HEIF", "AVIF"])
def test_the_icc_profile_and_exif_survive_with_the_orientation_reset_after_turning_upright(tmp_path, fmt):
    info, image, out_fmt, data = round_trip(tagged_photo(tmp_path / f"p.{fmt.lower()}", fmt))
    assert info.format == {"HEIF": "heic", "AVIF": "avif"}.get(fmt, fmt.lower())
    assert out_fmt == {"PNG": "png", "WEBP": "webp"}.get(fmt, "jpeg")
    assert image.shape[:2] == (40, 24), "orientation 6 turns the 40x24 photo upright: 24 wide, 40 high"
    with Image.open(io.BytesIO(data)) as out:
        assert out.info.get("icc_profile") == display_p3_icc()
        exif = out.getexif()
        assert exif.get(0x0112) == 1 and exif.get(0x010F) == "TMLSR test camera"
        assert out.size == (24, 40)


def test_a_sixteen_bit_png_keeps_its_depth_and_its_profile(tmp_path):

    source = tmp_path / "deep.png"
    deep = (np.arange(32 * 16 * 3, dtype=np.uint16).reshape(16, 32, 3) * 41)
    cv2.imwrite(str(source), deep)
    plain = source.read_bytes()
    source.write_bytes(png_with_metadata(plain, display_p3_icc(), None))
    info = probe_image(source, 10**8)
    assert info.icc_profile == display_p3_icc()
    data = encode_image(deep, "png", icc_profile=info.icc_profile)
    assert np.array_equal(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED), deep)
    with Image.open(io.BytesIO(data)) as out:
        assert out.info["icc_profile"] == display_p3_icc()


def test_a_photo_without_a_profile_gets_none(tmp_path):
    cv2.imwrite(str(tmp_path / "plain.jpg"), np.full((8, 8, 3), 90, np.uint8))
    info, _, _, data = round_trip(tmp_path / "plain.jpg")
    assert info.icc_profile is None and info.exif is None
    with Image.open(io.BytesIO(data)) as out:
        assert "icc_profile" not in out.info
