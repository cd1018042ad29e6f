import io
import re
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms, PngImagePlugin

from tests.helpers import (SHARED, bmp_with_alpha_mask, deep_levels, deep_photo, deflated_tiff, display_p3_icc,
                           flat_gray_jpeg, grid_heic, icc_colourants, image_round_trip, jpeg_cut_and_closed,
                           meta_box_damaged, os2_bitmap, png_bomb, png_chunk, png_chunks_in_order, shared_path,
                           sixteen_bit_bmp, small_noise_jpeg, tagged_photo,
                           tiff_with_alpha, uncompressed_tiff, with_png_checksum_broken, with_png_chunk,
                           with_ispe, with_tiff_strip_damaged, zlib_bomb)
from tmlsr_ray.errors import InputError
from tmlsr_ray.pipeline.png_chunks import PNG_SIGNATURE
from tmlsr_ray.pipeline.image import (png_with_metadata, decode_image, encode_image, output_format,
                                      probe_image, stored_layout)
from tmlsr_ray.pipeline.nclx import icc_from_nclx

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


def test_a_png_over_the_pixel_limit_is_refused_by_its_header_without_inflating_its_pixels(tmp_path):
    """Pillow looks for a PNG's EXIF past its pixels: the probe inflated a 9000x9000 PNG of 240 kB
    (243 MB of pixels, 4 s) before refusing it. Pixels cut short show none were read."""
    whole = png_bomb(3000, 3000)
    path = tmp_path / "bomb.png"
    path.write_bytes(whole[:len(whole) // 2])
    with pytest.raises(InputError, match="3000x3000 = 9,000,000 pixels, over the limit of 1,000,000"):
        probe_image(path, 1_000_000)


def test_a_size_over_pillows_own_bound_is_judged_by_max_input_pixels_alone(tmp_path):
    """Pillow refuses more than 179 Mpx as a decompression bomb: a 15000x12000 image was refused
    under a max_input_pixels of 200 million, as 'far over the limit of 200,000,000 pixels'."""
    path = tmp_path / "huge.png"
    ihdr = struct.pack(">IIBBBBB", 15_000, 12_000, 8, 2, 0, 0, 0)
    path.write_bytes(PNG_SIGNATURE + png_chunk(b"IHDR", ihdr) + png_chunk(b"IEND", b""))
    info = probe_image(path, 200_000_000)
    assert (info.width, info.height) == (15_000, 12_000)
    with pytest.raises(InputError, match="15000x12000 = 180,000,000 pixels, over the limit of 64,000,000"):
        probe_image(path, 64_000_000)


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    path = _write(tmp_path, "rot.jpg", image, exif=exif.tobytes())
    info = probe_image(path, 10_000)
    assert decode_image(path, info).shape == (40, 20, 3) and info.upright_size == (20, 40)


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


def _image_bytes(image: Image.Image, fmt: str, **save) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **save)
    return buf.getvalue()


def _turned_exif() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6
    return exif.tobytes()


def _commented() -> PngImagePlugin.PngInfo:
    text = PngImagePlugin.PngInfo()
    text.add_text("Comment", "scanned")
    return text


@pytest.mark.parametrize("kind,save", [
    (b"eXIf", {"exif": _turned_exif()}),
    (b"iCCP", {"icc_profile": ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()}),
    (b"tEXt", {"pnginfo": _commented()}),
    (b"pHYs", {"dpi": (300, 300)}),
    (b"gAMA", {}),
])
def test_a_png_whose_ancillary_chunk_is_damaged_reads_as_browsers_show_it_without_that_chunk(tmp_path, kind, save):
    """libpng (browsers, OpenCV) drops an ancillary chunk whose checksum does not match with a
    warning; Pillow checks every chunk's, and the probe refused the whole PNG as 'not a readable
    image (no PNG ... data found)'. A damaged eXIf means no EXIF (upright), a damaged iCCP no profile."""
    pixels = np.random.default_rng(1).integers(0, 255, (6, 10, 3), dtype=np.uint8)
    png = _image_bytes(Image.fromarray(pixels), "PNG", **save)
    if kind == b"gAMA":  # Pillow writes none
        png = with_png_chunk(png, b"gAMA", struct.pack(">I", 45455))
    path = tmp_path / "damaged.png"
    path.write_bytes(with_png_checksum_broken(png, kind))
    info = probe_image(path, 10_000)
    assert (info.width, info.height, info.orientation, info.exif, info.icc_profile) == (10, 6, 1, None, None)
    assert info.png_colour is None
    assert np.array_equal(decode_image(path, info), pixels[:, :, ::-1])


def test_a_damaged_exif_chunk_past_the_pixels_is_left_out(tmp_path):
    png = _image_bytes(Image.new("RGB", (10, 6)), "PNG")
    iend = len(png) - 12
    path = tmp_path / "late.png"
    path.write_bytes(with_png_checksum_broken(png[:iend] + png_chunk(b"eXIf", _turned_exif()[6:]) + png[iend:], b"eXIf"))
    info = probe_image(path, 10_000)
    assert (info.orientation, info.exif, info.upright_size) == (1, None, (10, 6))


def test_a_gray_png_whose_trns_chunk_is_damaged_stays_gray_as_libpng_drops_it(tmp_path):
    path = tmp_path / "key.png"
    path.write_bytes(with_png_checksum_broken(_image_bytes(Image.new("L", (8, 6), 0), "PNG", transparency=0), b"tRNS"))
    assert decode_image(path, probe_image(path, 10_000)).shape == (6, 8)


@pytest.mark.parametrize("kind,image", [(b"IHDR", Image.new("RGB", (8, 6))), (b"PLTE", Image.new("P", (8, 6)))])
def test_a_png_whose_critical_chunk_is_damaged_is_refused_naming_it(tmp_path, kind, image):
    path = tmp_path / "broken.png"
    path.write_bytes(with_png_checksum_broken(_image_bytes(image, "PNG"), kind))
    with pytest.raises(InputError, match=f"input PNG is damaged: its {kind.decode()} chunk does not match its checksum"):
        probe_image(path, 10_000)


def test_a_png_whose_pixel_data_is_damaged_is_refused(tmp_path):
    path = tmp_path / "broken.png"
    path.write_bytes(with_png_checksum_broken(_image_bytes(Image.new("RGB", (8, 6)), "PNG"), b"IDAT"))
    with pytest.raises(InputError, match="png image could not be decoded"):
        decode_image(path, probe_image(path, 10_000))


def _gif_with_frame_size(width: int, height: int) -> bytes:
    """A 10x10 GIF whose one frame's descriptor states ``width`` x ``height``."""
    gif = _image_bytes(Image.new("P", (10, 10)), "GIF")
    descriptor = gif.index(b"\x2c")  # the image separator: left, top, width, height follow
    return gif[:descriptor + 5] + struct.pack("<HH", width, height) + gif[descriptor + 9:]


def _cut(data: bytes) -> bytes:
    return data[:len(data) * 3 // 4]


def _noise(size=(64, 48)) -> Image.Image:
    return Image.fromarray(np.random.default_rng(2).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))


@pytest.mark.parametrize("data,says,jargon", [
    (lambda: _cut(_image_bytes(_noise(), "WEBP")), "input image cannot be read: its WebP chunks are cut off or damaged",
     "decoder object"),
    (lambda: _gif_with_frame_size(0, 4), "gif image could not be decoded: a part of its picture (a frame, strip or "
     "tile) has no pixels or lies outside the image (the file is damaged)", "tile cannot extend"),
    (lambda: _cut(_image_bytes(_noise(), "GIF")), "gif image could not be decoded: the file is cut off before its "
     "picture ends", "not processed"),
], ids=["webp-cut", "gif-empty-frame", "gif-cut"])
def test_a_damaged_image_is_refused_saying_what_is_wrong_with_the_file_not_in_the_decoders_words(tmp_path, data, says,
                                                                                                  jargon):
    path = tmp_path / "damaged"
    path.write_bytes(data())
    with pytest.raises(InputError) as refusal:
        decode_image(path, probe_image(path, 10_000))
    assert str(refusal.value) == says and jargon not in str(refusal.value)


@pytest.mark.parametrize("sampling", [(0x13, 0x11, 0x11), (0x11, 0x22, 0x11), (0x12, 0x21, 0x11)],
                         ids=["luma-1x3", "blue-sampled-finer-than-luma", "luma-1x2-blue-2x1"])
def test_a_jpeg_sampled_in_a_way_ffmpeg_lacks_is_judged_by_libjpeg_alone(tmp_path, sampling):
    """FFmpeg's decoder, which checks each JPEG for damage, answers such sampling factors 'Not yet
    implemented in FFmpeg' (PatchWelcomeError), and the task failed as 'process failed:
    PatchWelcomeError'; libjpeg (OpenCV's decoder) reads them whole."""
    path = tmp_path / "sampled.jpg"
    path.write_bytes(flat_gray_jpeg(48, 48, sampling))
    decoded = decode_image(path, probe_image(path, 10_000))
    assert decoded.shape == (48, 48, 3) and (decoded == 128).all()


@pytest.mark.parametrize("path", BAD or [None], ids=lambda p: p.name if p else "no-shared-media")
def test_every_shared_bad_input_is_refused_with_a_readable_error(path):
    if path is None:
        shared_path("media", "bad")
    with pytest.raises(InputError) as caught:
        decode_image(path, probe_image(path, 64_000_000))
    assert str(caught.value) and "Traceback" not in str(caught.value)


def _photo_jpeg(progressive: bool) -> bytes:
    """A 640x480 JPEG of smooth gradients and noise, none of it flat gray, ending in its EOI marker."""
    ramp = (np.add.outer(np.arange(480), np.arange(640)) % 256).astype(np.uint8)
    noise = np.random.default_rng(0).integers(0, 255, (480, 640), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(np.dstack([ramp, ramp[::-1], noise])).save(buf, "JPEG", quality=90, progressive=progressive)
    return buf.getvalue()


@pytest.mark.parametrize("progressive", [False, True], ids=["baseline", "progressive"])
@pytest.mark.parametrize("damage", ["cut-30%", "cut-60%", "cut-90%", "taller-than-its-data"])
def test_a_jpeg_whose_picture_data_ends_before_its_last_row_is_refused(tmp_path, progressive, damage):
    """libjpeg fills the rows past the data's end flat gray with a warning alone: a JPEG cut off and
    closed by an EOI marker, or whose frame header states 960 rows of 480, came out gray-bottomed."""
    whole = _photo_jpeg(progressive)
    if damage == "taller-than-its-data":
        frame = whole.index(b"\xff\xc2" if progressive else b"\xff\xc0")
        damaged = whole[:frame + 5] + struct.pack(">H", 960) + whole[frame + 7:]
    else:
        damaged = whole[:len(whole) * int(damage[4:6]) // 100] + b"\xff\xd9"
    path = tmp_path / "damaged.jpg"
    path.write_bytes(damaged)
    with pytest.raises(InputError, match="jpeg image is cut off or damaged: its picture data ends or breaks before"):
        decode_image(path, probe_image(path, 10**6))


@pytest.mark.parametrize("kept", [0.9, 0.97, 0.995])
def test_a_small_jpeg_cut_short_without_its_eoi_marker_is_refused(tmp_path, kept):
    """FFmpeg's damage check passes a 48x32 JPEG cut short; closed by an EOI marker of ours (to read
    a JPEG lacking only that), libjpeg filled its last rows gray, 20 levels off, with no word."""
    picture = (np.random.default_rng(3).random((32, 48, 3)) * 255).astype(np.uint8)
    whole = cv2.imencode(".jpg", picture)[1].tobytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(whole[:int(len(whole) * kept)])
    with pytest.raises(InputError, match="could not be decoded|cut off or damaged"):
        decode_image(path, probe_image(path, 10**6))


@pytest.mark.parametrize("kept", [0.9, 0.95, 0.97, 0.99, 0.995])
def test_a_small_jpeg_cut_short_and_closed_by_an_eoi_marker_is_refused(tmp_path, kept):
    """FFmpeg's decoder reads on past a scan cut short into zero bits, which decode as blocks: a
    48x32 JPEG cut at 90% and closed by an EOI marker passed its damage check, and libjpeg filled
    its last 16 rows gray (up to 156 levels off) with a warning alone."""
    path = tmp_path / "cut.jpg"
    path.write_bytes(jpeg_cut_and_closed(small_noise_jpeg(), kept))
    with pytest.raises(InputError, match="jpeg image is cut off or damaged: its picture data ends or breaks before"):
        decode_image(path, probe_image(path, 10**6))


@pytest.mark.parametrize("restart_interval", [0, 1, 3])
@pytest.mark.parametrize("progressive", [False, True], ids=["baseline", "progressive"])
def test_a_whole_small_jpeg_passes_the_damage_check_with_or_without_restart_markers(tmp_path, progressive,
                                                                                   restart_interval):
    picture = (np.random.default_rng(4).random((32, 48, 3)) * 255).astype(np.uint8)
    params = [cv2.IMWRITE_JPEG_PROGRESSIVE, int(progressive), cv2.IMWRITE_JPEG_RST_INTERVAL, restart_interval]
    whole = cv2.imencode(".jpg", picture, params)[1].tobytes()
    path = tmp_path / "whole.jpg"
    path.write_bytes(whole)
    expected = cv2.imdecode(np.frombuffer(whole, np.uint8), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(decode_image(path, probe_image(path, 10**6)), expected)


@pytest.mark.parametrize("progressive", [False, True], ids=["baseline", "progressive"])
def test_a_jpeg_with_bytes_after_its_eoi_marker_is_read_whole(tmp_path, progressive):
    whole = _photo_jpeg(progressive)
    path = tmp_path / "ending.jpg"
    path.write_bytes(whole + b"\x00trailer\xff\xd8\xff" * 8)
    expected = cv2.imdecode(np.frombuffer(whole, np.uint8), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(decode_image(path, probe_image(path, 10**6)), expected)


def test_cmyk_jpeg_decodes_to_three_channels():
    path = shared_path("media", "image", "cmyk_adobe_100x100.jpg")
    assert decode_image(path, probe_image(path, 10**6)).shape == (100, 100, 3)


@pytest.mark.parametrize("compression", [None, "tiff_lzw"])
def test_a_cmyk_tiff_decodes_to_its_colours_without_an_alpha_it_never_had(tmp_path, compression):
    """OpenCV reads a CMYK TIFF as BGR plus an opaque fourth channel; taken for alpha, the model
    made it translucent in places."""
    ink = np.random.default_rng(0).integers(0, 256, (16, 24, 4), dtype=np.uint8)
    path = _write(tmp_path, "cmyk.tif", Image.fromarray(ink, "CMYK"), **({"compression": compression} if compression else {}))
    decoded = decode_image(path, probe_image(path, 10_000))
    expected = np.asarray(Image.open(path).convert("RGB"))[:, :, ::-1]
    assert decoded.shape == (16, 24, 3) and np.abs(decoded.astype(int) - expected).max() <= 1


def _ramps(height=40, width=48) -> np.ndarray:
    ramp = (np.add.outer(np.arange(height), np.arange(width)) * 3 % 256).astype(np.uint8)
    return np.dstack([ramp, ramp[::-1], 255 - ramp])


@pytest.mark.parametrize("damage", ["zeroed-tail", "changed-middle"])
@pytest.mark.parametrize("compression", ["tiff_lzw", "tiff_adobe_deflate"])
def test_a_tiff_whose_compressed_strip_is_damaged_part_way_is_refused(tmp_path, compression, damage):
    """libtiff takes as many bytes of a strip as its rows need and says nothing of the rest: such a
    strip, its LZW codes still codes, its zlib checksum never read, was upscaled as garbage (up to
    255 levels off)."""
    path = tmp_path / "damaged.tif"
    path.write_bytes(with_tiff_strip_damaged(_image_bytes(Image.fromarray(_ramps()), "TIFF", compression=compression),
                                             damage))
    with pytest.raises(InputError, match=r"input TIFF is corrupt: strip 1 of 1 of its picture data is damaged \(it "):
        decode_image(path, probe_image(path, 10_000))


@pytest.mark.parametrize("empty", [[1], [2], [1, 2]], ids=["green", "blue", "green-and-blue"])
def test_a_tiff_stored_by_plane_a_strip_of_which_states_no_bytes_is_refused(tmp_path, empty):
    """libtiff reads no bytes for such a plane and OpenCV handed over whatever its buffer held
    (255 levels off); a one-strip TIFF's 0, which libtiff takes as 'to the end of the file', is read so."""
    counts = [len(zlib.compress(plane.tobytes())) for plane in np.moveaxis(_ramps(), 2, 0)]
    path = tmp_path / "planes.tif"
    path.write_bytes(deflated_tiff(_ramps(), planar=True, byte_counts=[0 if i in empty else n
                                                                       for i, n in enumerate(counts)]))
    with pytest.raises(InputError, match=f"input TIFF is corrupt: strip {empty[0] + 1} of 3 of its picture data "
                                         "holds no bytes"):
        decode_image(path, probe_image(path, 10_000))


@pytest.mark.parametrize("layout", [{}, {"planar": True}, {"tile": 16}, {"tile": 16, "planar": True},
                                    {"byte_counts": [0]}], ids=["strip", "planes", "tiles", "tiled-planes",
                                                                "one-strip-stating-no-bytes"])
def test_a_whole_deflated_tiff_decodes_as_stored_however_its_pieces_lie(tmp_path, layout):
    path = tmp_path / "whole.tif"
    path.write_bytes(deflated_tiff(_ramps(), **layout))
    assert np.array_equal(decode_image(path, probe_image(path, 10_000)), _ramps()[:, :, ::-1])


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

@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "HEIF", "AVIF"])
def test_the_icc_profile_and_exif_survive_with_the_orientation_reset_after_turning_upright(tmp_path, fmt):
    info, image, out_fmt, data = image_round_trip(tagged_photo(tmp_path / f"p.{fmt.lower()}", fmt))
    assert info.format == {"HEIF": "heic", "AVIF": "avif"}.get(fmt, fmt.lower())
    assert out_fmt == {"PNG": "png", "WEBP": "webp"}.get(fmt, "jpeg")
    assert image.shape[:2] == (40, 24), "orientation 6 turns the 40x24 photo upright: 24 wide, 40 high"
    with Image.open(io.BytesIO(data)) as out:
        assert out.info.get("icc_profile") == display_p3_icc()
        exif = out.getexif()
        assert exif.get(0x0112) == 1 and exif.get(0x010F) == "TMLSR test camera"
        assert out.size == (24, 40)


@pytest.mark.parametrize("layout", ["colour", "gray", "alpha"])
@pytest.mark.parametrize("bits", [10, 12])
@pytest.mark.parametrize("suffix", [".heic", ".avif"])
def test_a_ten_or_twelve_bit_heic_or_avif_keeps_its_depth_spread_over_sixteen_bits(tmp_path, suffix, bits, layout):
    """Phones and Chrome write 10-bit HEIC and AVIF: Pillow handed them over as 8-bit, and the
    result came back an 8-bit JPEG. A level v is v * 65535 / (2**bits - 1), white 65,535."""
    levels = deep_levels(bits, layout)
    info, image, fmt, data = image_round_trip(deep_photo(tmp_path / f"deep{suffix}", levels, bits))
    top = (1 << bits) - 1
    assert image.dtype == np.uint16 and image.shape == levels.shape
    stored = np.round(image * (top / 65535))
    assert np.array_equal(image, np.round(stored * (65535 / top))), "each level on the spread grid, not shifted"
    assert np.abs(stored - levels).max() <= 1, "within a level of the lossless file's colour conversion"
    assert image.max() == 65535 and image.min() == 0
    assert fmt == "png" and stored_layout(image, fmt)[1] == 16
    assert np.array_equal(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED), image)


@pytest.mark.parametrize("suffix", [".heic", ".avif"])
def test_a_heic_or_avif_tagged_display_p3_by_its_nclx_box_alone_comes_out_with_a_p3_profile(tmp_path, suffix):
    """Phones and Chrome say a photo's colour by H.273 code points (primaries 12: Display P3), no
    ICC profile: PNG and JPEG have no such tag, and the output was shown as sRGB, less saturated."""
    path = deep_photo(tmp_path / f"p3{suffix}", deep_levels(10, "colour"), 10,
                      color_primaries=12, transfer_characteristics=13)
    info, _, _, data = image_round_trip(path)
    with Image.open(io.BytesIO(data)) as out:
        profile = out.info["icc_profile"]
    reference = icc_colourants(display_p3_icc())
    for tag, xyz in icc_colourants(profile).items():
        assert np.abs(np.subtract(xyz, reference[tag])).max() < 1e-3, tag
    assert ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(profile)))


def _nclx(primaries: int, transfer: int) -> bytes:
    return b"nclx" + struct.pack(">HHHB", primaries, transfer, 6, 0x80)


def test_a_grid_photo_whose_colour_only_its_tiles_state_is_read_in_their_colour(tmp_path):
    """Early iPhones stated a photo's colour on its grid's tiles alone; libheif reads the first
    tile's where the grid has none (and decodes by it): the photo came out sRGB, less saturated."""
    path = grid_heic(tmp_path / "p3.heic", np.full((100, 150, 3), 120, np.uint8), 64, tile_colour=_nclx(12, 13))
    info, _, _, data = image_round_trip(path)
    reference = icc_colourants(display_p3_icc())
    for tag, xyz in icc_colourants(info.icc_profile).items():
        assert np.abs(np.subtract(xyz, reference[tag])).max() < 1e-3, tag
    with Image.open(io.BytesIO(data)) as out:
        assert out.info["icc_profile"] == info.icc_profile


def test_a_grid_photo_whose_tiles_state_pq_is_an_hdr_photo(tmp_path):
    path = grid_heic(tmp_path / "pq.heic", np.full((100, 150, 3), 120, np.uint8), 64, tile_colour=_nclx(9, 16))
    info = probe_image(path, 10**8)
    assert (info.hdr_colour.primaries, info.hdr_colour.transfer, info.icc_profile) == (9, 16, None)


def test_a_grid_photos_own_colour_is_read_before_its_tiles(tmp_path):
    """Where the grid states its colour (sRGB), its tiles' (Display P3) are not looked at."""
    path = grid_heic(tmp_path / "srgb.heic", np.full((100, 150, 3), 120, np.uint8), 64,
                     grid_properties=[struct.pack(">I4s", 8 + 11, b"colr") + _nclx(1, 13)], tile_colour=_nclx(12, 13))
    assert probe_image(path, 10**8).icc_profile is None


def test_an_eight_bit_heic_tagged_display_p3_by_nclx_comes_out_a_jpeg_with_the_profile(tmp_path):
    path = tmp_path / "p3.heic"
    Image.new("RGB", (32, 16), (200, 40, 40)).save(path, "HEIF", quality=95, color_primaries=12,
                                                   transfer_characteristics=13)
    info, image, fmt, data = image_round_trip(path)
    assert image.dtype == np.uint8 and fmt == "jpeg"
    with Image.open(io.BytesIO(data)) as out:
        assert icc_colourants(out.info["icc_profile"]).keys() == {"rXYZ", "gXYZ", "bXYZ"}


@pytest.mark.parametrize("primaries, transfer", [(1, 13), (9, 16), (9, 18), (12, 16), (2, 2)])
def test_sdr_srgb_unspecified_and_hdr_code_points_get_no_made_up_profile(tmp_path, primaries, transfer):
    """sRGB is what an untagged output is shown as already; PQ and HLG (HDR) are no display curve
    an ICC matrix/TRC profile can hold, so they stay as they were (shown as sRGB)."""
    path = deep_photo(tmp_path / "tagged.heic", deep_levels(10, "colour"), 10,
                      color_primaries=primaries, transfer_characteristics=transfer)
    assert probe_image(path, 10**8).icc_profile is None


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


def test_a_tiffs_own_layout_tags_do_not_become_the_outputs_exif(tmp_path):
    """A TIFF's first directory is where Pillow reads EXIF from: its strips, compression and size
    described the input's file, and contradicted the output's."""
    path = _write(tmp_path, "plain.tif", Image.new("RGB", (32, 16), (90, 90, 90)), compression="tiff_lzw")
    assert probe_image(path, 10_000).exif is None
    exif = Image.Exif()
    exif[0x010F] = "TMLSR scanner"
    path = _write(tmp_path, "tagged.tif", Image.new("RGB", (32, 16)), exif=exif, compression="tiff_lzw")
    info, _, out_fmt, data = image_round_trip(path)
    with Image.open(io.BytesIO(data)) as out:
        kept = dict(out.getexif())
    assert out_fmt == "png" and kept == {0x010F: "TMLSR scanner", 0x0112: 1}


def test_the_pixel_size_before_upscaling_is_not_kept_in_the_exif(tmp_path):
    exif = Image.Exif()
    exif[0x010F] = "TMLSR test camera"
    exif.get_ifd(0x8769).update({0xA002: 40, 0xA003: 20, 0x9003: "2026:12:05 10:00:00"})
    info = probe_image(_write(tmp_path, "camera.jpg", Image.new("RGB", (40, 20)), exif=exif.tobytes()), 10_000)
    kept = Image.Exif()
    kept.load(b"Exif\0\0" + info.exif)
    assert kept.get_ifd(0x8769) == {0x9003: "2026:12:05 10:00:00"} and kept[0x010F] == "TMLSR test camera"


def test_a_photo_without_a_profile_gets_none(tmp_path):
    cv2.imwrite(str(tmp_path / "plain.jpg"), np.full((8, 8, 3), 90, np.uint8))
    info, _, _, data = image_round_trip(tmp_path / "plain.jpg")
    assert info.icc_profile is None and info.exif is None
    with Image.open(io.BytesIO(data)) as out:
        assert "icc_profile" not in out.info


# --- what cameras, editors and odd sizes bring -----------------------------------------------

def test_a_camera_jpeg_with_the_multi_picture_extension_is_read_as_its_first_picture(tmp_path):
    first, second = Image.new("RGB", (32, 24), (200, 30, 30)), Image.new("RGB", (32, 24), (30, 30, 200))
    path = tmp_path / "camera.jpg"
    first.save(path, "MPO", save_all=True, append_images=[second], quality=95)
    with Image.open(path) as check:
        assert check.format == "MPO"
    info = probe_image(path, 10_000)
    image = decode_image(path, info)
    assert info.format == "jpeg" and output_format(info, image) == "jpeg"
    assert image.shape == (24, 32, 3) and image[12, 16, 2] > 150  # the first picture, red in BGR


def exif_orientation_entry(kind: int, value: bytes, data: bytes = b"") -> bytes:
    """EXIF (big-endian TIFF) whose one entry is the Orientation tag of another type than SHORT."""
    entry = struct.pack(">HHI", 0x0112, kind, 1 if data else len(value)) + value.ljust(4, b"\0")
    return b"Exif\0\0MM\0\x2a" + struct.pack(">IH", 8, 1) + entry + struct.pack(">I", 0) + data


@pytest.mark.parametrize("exif", [
    exif_orientation_entry(2, b"abc\0"),  # text
    exif_orientation_entry(5, struct.pack(">I", 26), struct.pack(">II", 6, 0)),  # the fraction 6/0
    exif_orientation_entry(3, struct.pack(">H", 99)),  # no such orientation
], ids=["text", "six-over-zero", "99"])
def test_an_unreadable_exif_orientation_is_read_as_upright(tmp_path, exif):
    path = _write(tmp_path, "odd.jpg", Image.new("RGB", (40, 20)), exif=exif)
    info = probe_image(path, 10_000)
    assert info.orientation == 1 and decode_image(path, info).shape == (20, 40, 3)


@pytest.mark.parametrize("orientation", [2, 3, 5, 6, 7, 8])
def test_a_tiff_is_turned_upright_once_as_viewers_show_it(tmp_path, orientation):
    """Pillow gives a TIFF's size upright and OpenCV its pixels: turning either again made a
    portrait photo a squashed landscape output."""
    from PIL import ImageOps

    pixels = np.zeros((24, 32, 3), np.uint8)
    pixels[:4, :6] = 255  # a mark in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = _write(tmp_path, "o.tif", Image.fromarray(pixels), exif=exif)
    upright = np.asarray(ImageOps.exif_transpose(Image.open(path)))[:, :, ::-1]
    info = probe_image(path, 10_000)
    assert np.array_equal(decode_image(path, info), upright)
    assert info.upright_size == (upright.shape[1], upright.shape[0])


def test_a_result_too_large_for_its_format_is_png_and_one_too_large_for_the_asked_format_is_refused():
    from tmlsr_ray.pipeline.image import ImageInfo, check_format_holds

    for fmt, side in (("webp", 16_384), ("jpeg", 65_536)):
        assert output_format(ImageInfo(8, 8, fmt, "RGB", 1), np.zeros((2, side, 3), np.uint8)) == "png"
        assert output_format(ImageInfo(8, 8, fmt, "RGB", 1), np.zeros((2, side - 1, 3), np.uint8)) == fmt
        with pytest.raises(InputError, match=f"does not fit {fmt}.*ask for png"):
            check_format_holds(fmt, (side, 2))
    check_format_holds(None, (65_536, 2))
    with pytest.raises(InputError, match="does not fit png, which holds at most 1,000,000 pixels a side"):
        check_format_holds(None, (2, 1_000_001))


def icc_of(space: bytes) -> bytes:
    """A copy of the Display P3 profile declaring another colour space: what the selection reads."""
    profile = bytearray(display_p3_icc())
    profile[16:20] = space
    return bytes(profile)


@pytest.mark.parametrize("image,fmt,space,kept", [
    (np.zeros((4, 4, 3), np.uint8), "jpeg", b"CMYK", False),  # a CMYK JPEG decodes to RGB
    (np.zeros((4, 4, 3), np.uint8), "jpeg", b"RGB ", True),
    (np.zeros((4, 4), np.uint8), "png", b"GRAY", True),
    (np.zeros((4, 4), np.uint8), "webp", b"GRAY", False),  # WebP stores gray as RGB
    (np.zeros((4, 4, 4), np.uint8), "png", b"GRAY", False),  # gray with alpha comes out RGBA
])
def test_the_icc_profile_goes_along_only_where_it_describes_the_output(image, fmt, space, kept):
    with Image.open(io.BytesIO(encode_image(image, fmt, icc_profile=icc_of(space)))) as out:
        assert (out.info.get("icc_profile") == icc_of(space)) is kept


@pytest.mark.parametrize("image,fmt,quality,layout,stored_quality", [
    (np.zeros((4, 4, 3), np.uint16), "jpeg", None, (3, 8), 95),
    (np.zeros((4, 4, 4), np.uint8), "jpeg", 40, (3, 8), 40),
    (np.zeros((4, 4), np.uint8), "webp", None, (3, 8), 95),
    (np.zeros((4, 4, 4), np.uint8), "webp", None, (4, 8), None),  # lossless
    # libwebp leaves out an alpha that is opaque everywhere (16-bit: once rounded to 8 bits)
    (np.full((4, 4, 4), 255, np.uint8), "webp", None, (3, 8), None),
    (np.full((4, 4, 4), 65450, np.uint16), "webp", 80, (3, 8), 80),
    (np.zeros((4, 4, 3), np.uint16), "png", None, (3, 16), None),
])
def test_the_metadata_describes_the_file_the_format_stores(image, fmt, quality, layout, stored_quality):
    from tmlsr_ray.pipeline.image import effective_quality, stored_layout

    assert stored_layout(image, fmt) == layout and effective_quality(fmt, image, quality) == stored_quality
    decoded = cv2.imdecode(np.frombuffer(encode_image(image, fmt, quality), np.uint8), cv2.IMREAD_UNCHANGED)
    assert (1 if decoded.ndim == 2 else decoded.shape[2], 8 * decoded.dtype.itemsize) == layout


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
@pytest.mark.parametrize("shape", [(4, 4), (4, 4, 3), (4, 4, 4)])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_the_stored_layout_is_what_fitting_to_the_format_makes_of_the_image(fmt, shape, dtype):
    from tmlsr_ray.pipeline.image import fit_to_format, stored_layout

    fitted = fit_to_format(np.zeros(shape, dtype), fmt)
    channels = 1 if fitted.ndim == 2 else fitted.shape[2]
    expected = (3 if fmt == "webp" and channels == 1 else channels, 8 * fitted.dtype.itemsize)
    assert stored_layout(np.zeros(shape, dtype), fmt) == expected


def straight_rgba(dtype) -> np.ndarray:
    """Colour over alpha from opaque to one in four, every pixel different."""
    top = np.iinfo(dtype).max
    rgba = np.random.default_rng(3).integers(0, top, (6, 8, 4), dtype=np.int64)
    rgba[..., 3] = np.linspace(top, top // 4, 8).round()[None, :]
    return rgba.astype(dtype)


def premultiplied(rgba: np.ndarray) -> np.ndarray:
    top = np.iinfo(rgba.dtype).max
    out = rgba.copy()
    out[..., :3] = (rgba[..., :3].astype(np.int64) * rgba[..., 3:] / top).round()
    return out


@pytest.mark.parametrize("dtype,associated,compression", [
    (np.uint8, False, None), (np.uint8, False, "tiff_lzw"),  # Photoshop's and Pillow's RGBA TIFF
    (np.uint8, True, None),  # GIMP's
    (np.uint16, True, None), (np.uint16, False, None),
])
def test_a_tiff_with_alpha_keeps_its_colours_where_it_is_translucent(tmp_path, dtype, associated, compression):
    """OpenCV reads 8-bit TIFFs through libtiff's RGBA interface, which premultiplies the colour by
    the alpha: every translucent pixel of a cut-out came out darker, toward black where the alpha
    is low. A TIFF whose alpha is associated stores premultiplied colour; the output's is straight."""
    rgba = straight_rgba(dtype)
    path = tmp_path / "cutout.tif"
    if dtype == np.uint8 and not associated:
        Image.fromarray(rgba, "RGBA").save(path, **({"compression": compression} if compression else {}))
    else:
        path.write_bytes(tiff_with_alpha(premultiplied(rgba) if associated else rgba, associated))
    decoded = decode_image(path, probe_image(path, 10_000))
    # straight colour from 8-bit premultiplied samples is exact to within 255 / alpha / 2 levels
    tolerance = 2 if dtype == np.uint8 else (3 if associated else 0)
    assert decoded.shape == (6, 8, 4) and np.array_equal(decoded[..., 3], rgba[..., 3])
    assert np.abs(decoded[..., :3].astype(int) - rgba[..., 2::-1]).max() <= tolerance


@pytest.mark.parametrize("paletted", [False, True])
def test_an_os2_bitmap_keeps_its_colours(tmp_path, paletted):
    """OS/2's BMP header (12 bytes, as OS/2 and Windows 2 wrote it): OpenCV read its pixels as one
    channel of garbage, a gray image of none of its colours."""
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    path = tmp_path / "os2.bmp"
    if paletted:
        palette = [tuple(colour) for colour in rgb.reshape(-1, 3)]
        path.write_bytes(os2_bitmap(np.arange(35, dtype=np.uint8).reshape(5, 7), palette))
    else:
        path.write_bytes(os2_bitmap(rgb))
    assert np.array_equal(decode_image(path, probe_image(path, 10_000)), rgb[..., ::-1])


@pytest.mark.parametrize("v5_header", [False, True])
@pytest.mark.parametrize("green_bits", [5, 6])
def test_a_sixteen_bit_bmp_spreads_its_levels_over_eight_bits(tmp_path, green_bits, v5_header):
    """OpenCV shifts a 16-bit BMP's 5- and 6-bit levels up without filling the low bits: white came
    out 248 (252 in a 6-bit green), every colour up to 7 levels dark. Viewers show 31 of 31 as 255.
    GIMP writes a BITMAPV5HEADER, whose 16-bit pixels OpenCV refused outright."""
    tops = np.array([31, 2 ** green_bits - 1, 31])
    levels = np.random.default_rng(0).integers(0, tops + 1, (5, 7, 3))
    levels[0, 0] = tops
    path = tmp_path / "game.bmp"
    path.write_bytes(sixteen_bit_bmp(levels, green_bits, v5_header))
    decoded = decode_image(path, probe_image(path, 10_000))
    assert np.abs(decoded[..., ::-1] - levels * 255 / tops).max() <= 2 and (decoded[0, 0] == 255).all()


@pytest.mark.parametrize("alpha,expected_channels", [(0, 3), (128, 4)])
def test_a_bmp_whose_alpha_is_zero_everywhere_is_opaque(tmp_path, alpha, expected_channels):
    """Many 32-bit BMPs name an alpha mask and leave every alpha byte 0; browsers and Windows show
    them opaque. Read as alpha, the whole output came out transparent, an empty picture."""
    bgra = np.random.default_rng(0).integers(0, 256, (5, 7, 4), dtype=np.uint8)
    bgra[..., 3] = alpha
    path = tmp_path / "screenshot.bmp"
    path.write_bytes(bmp_with_alpha_mask(bgra))
    decoded = decode_image(path, probe_image(path, 10_000))
    assert decoded.shape == (5, 7, expected_channels) and np.array_equal(decoded, bgra[..., :expected_channels])


@pytest.mark.parametrize("samples,extra_sample", [(3, None), (4, 2)])
def test_a_sixteen_bit_tiff_stored_plane_by_plane_keeps_its_colours(tmp_path, samples, extra_sample):
    """A scanner's or Photoshop's "per channel" TIFF stores each colour as a plane of its own:
    OpenCV read a 16-bit one's planes as if interleaved, and every pixel came out garbage."""
    levels = np.random.default_rng(0).integers(0, 65536, (6, 8, samples), dtype=np.uint16)
    path = tmp_path / "scan.tif"
    path.write_bytes(uncompressed_tiff(levels, extra_sample, planar=True))
    decoded = decode_image(path, probe_image(path, 10_000))
    order = [2, 1, 0, 3][:samples]  # BGR(A)
    assert decoded.dtype == np.uint16 and np.array_equal(decoded, levels[..., order])


def test_a_tiff_of_a_layout_pillow_cannot_read_is_refused_naming_the_layout(tmp_path):
    """GIMP's 16-bit gray with alpha: Pillow identifies no such TIFF, and the refusal said the
    input held no TIFF data at all."""
    path = tmp_path / "gimp.tif"
    path.write_bytes(tiff_with_alpha(np.zeros((4, 6, 2), np.uint16), associated=False))
    with pytest.raises(InputError, match=r"a TIFF of 2 samples of 16 bits \(gray\), which is not supported"):
        probe_image(path, 10_000)


@pytest.mark.parametrize("samples", [1, 3])
def test_a_tiff_in_small_tiles_decodes(tmp_path, samples):
    """OpenCV's decoder from memory refuses 8-bit gray or RGB in tiles of 16, 48, 80 ... pixels a
    side (libtiff: "Invalid tile byte count"), which it reads from the file."""
    levels = np.random.default_rng(0).integers(0, 256, (40, 70, samples), dtype=np.uint8)
    path = tmp_path / "tiles.tif"
    path.write_bytes(uncompressed_tiff(levels, tile=16))
    assert np.array_equal(decode_image(path, probe_image(path, 10_000)), levels[..., ::-1].squeeze())


def test_a_tiff_of_a_layout_opencv_cannot_read_is_refused_naming_the_layout(tmp_path):
    """A prepress 16-bit CMYK TIFF: OpenCV reads none, and the refusal called it corrupt."""
    path = tmp_path / "prepress.tif"
    path.write_bytes(uncompressed_tiff(np.zeros((4, 6, 4), np.uint16), photometric=5))
    with pytest.raises(InputError, match=r"TIFF of 4 samples of 16 bits \(CMYK\) could not be decoded"):
        decode_image(path, probe_image(path, 10_000))


def test_a_sixteen_bit_tiff_stored_plane_by_plane_in_tiles_is_refused_naming_the_layout(tmp_path):
    """Neither OpenCV nor FFmpeg's decoder reads those tiles (FFmpeg's reads tiles of DNG alone):
    each made garbage of every pixel."""
    levels = np.random.default_rng(0).integers(0, 65536, (40, 70, 3), dtype=np.uint16)
    path = tmp_path / "tiles.tif"
    path.write_bytes(uncompressed_tiff(levels, planar=True, tile=32))
    with pytest.raises(InputError, match="16-bit TIFF stored plane by plane in tiles"):
        decode_image(path, probe_image(path, 10_000))


def test_a_gray_tiff_with_alpha_stored_plane_by_plane_is_refused_naming_the_layout(tmp_path):
    """Photoshop's "per channel" order of gray with alpha: Pillow cannot read its alpha (a
    ValueError, no readable error) and OpenCV made garbage of its gray."""
    path = tmp_path / "gray.tif"
    path.write_bytes(uncompressed_tiff(np.zeros((4, 6, 2), np.uint8), extra_sample=2, planar=True))
    with pytest.raises(InputError, match="gray TIFF with alpha stored plane by plane"):
        decode_image(path, probe_image(path, 10_000))


def _with_piece_offsets(tiff: bytes, offset: int) -> bytes:
    """A little-endian TIFF with every strip or tile said to start at ``offset``."""
    data = bytearray(tiff)
    directory = struct.unpack("<I", data[4:8])[0]
    for entry in range(directory + 2, directory + 2 + 12 * struct.unpack("<H", data[directory:directory + 2])[0], 12):
        tag, _, count, value = struct.unpack("<HHII", data[entry:entry + 12])
        if tag in (273, 324):  # StripOffsets, TileOffsets: in the entry if one, else where it points
            for at in [entry + 8] if count == 1 else range(value, value + 4 * count, 4):
                data[at:at + 4] = struct.pack("<I", offset)
    return bytes(data)


@pytest.mark.parametrize("layout", ["strip", "planes", "tiles", "lzw"])
def test_a_tiff_whose_picture_data_is_said_to_start_inside_its_header_is_refused(tmp_path, layout):
    """With StripOffsets 0, libtiff read the header's bytes as pixels (an LZW strip as a decoding
    error OpenCV let pass), and garbage was upscaled with no word."""
    levels = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    if layout == "lzw":
        tiff = io.BytesIO()
        Image.fromarray(levels).save(tiff, "TIFF", compression="tiff_lzw")
        tiff = tiff.getvalue()
    else:
        tiff = uncompressed_tiff(levels, planar=layout == "planes", tile=16 if layout == "tiles" else None)
    path = tmp_path / "garbled.tif"
    path.write_bytes(_with_piece_offsets(tiff, 0))
    piece = "tile" if layout == "tiles" else "strip"
    with pytest.raises(InputError, match=f"TIFF is corrupt: a {piece} of its picture data is said to start at byte 0"):
        decode_image(path, probe_image(path, 10_000))


@pytest.mark.parametrize("bits", [1, 2, 4, 8, 16])
def test_a_gray_png_whose_trns_chunk_marks_a_transparent_level_keeps_that_transparency(tmp_path, bits):
    """A gray PNG can mark one level transparent (tRNS, as icons and line art use it): OpenCV reads
    it as plain gray, and the background came out opaque."""
    top = 2 ** bits - 1
    levels = np.random.default_rng(5).integers(0, top + 1, (6, 8))
    levels[0, 0], levels[0, 1] = 0, top
    path = tmp_path / "key.png"
    if bits == 16:
        Image.frombytes("I;16", (8, 6), levels.astype("<u2").tobytes()).save(path, transparency=0)
    else:
        Image.fromarray(levels.astype(np.uint8)).save(path, bits=bits, transparency=0)  # bits: PNG's bit depth
    decoded = decode_image(path, probe_image(path, 10_000))
    full = np.iinfo(np.uint16 if bits == 16 else np.uint8).max
    assert decoded.shape == (6, 8, 4) and decoded.dtype == (np.uint16 if bits == 16 else np.uint8)
    assert np.array_equal(decoded[..., 3], np.where(levels == 0, 0, full))
    assert np.array_equal(decoded[..., 0], levels * (full // top)) and decoded[0, 1, 3] == full


def test_a_gray_png_whose_transparent_level_no_pixel_has_stays_gray(tmp_path):
    path = _write(tmp_path, "unused.png", Image.new("L", (8, 6), 90), transparency=0)
    assert decode_image(path, probe_image(path, 10_000)).shape == (6, 8)


@pytest.mark.parametrize("chunks", [
    {b"gAMA": struct.pack(">I", 100_000)},  # linear light, as renderers write it
    {b"gAMA": struct.pack(">I", 55_556), b"cHRM": struct.pack(">8I", 31_270, 32_900, 68_000, 32_000, 26_500,
                                                              69_000, 15_000, 6_000)},  # 1.8, P3 primaries
    {b"sRGB": b"\x00"},
], ids=["linear", "gamma-1.8-p3", "srgb"])
def test_a_pngs_gamma_and_primaries_go_into_the_png_output(tmp_path, chunks):
    """Without an ICC profile, a PNG's gAMA and cHRM chunks say how viewers show its levels:
    OpenCV's encoder wrote none, and a linear-light PNG came out far darker."""
    from PIL import PngImagePlugin

    meta = PngImagePlugin.PngInfo()
    for kind, data in chunks.items():
        meta.add(kind, data)
    path = _write(tmp_path, "tagged.png", Image.new("RGB", (8, 6), (90, 120, 150)), pnginfo=meta)
    info, _, out_fmt, data = image_round_trip(path)
    with Image.open(path) as source, Image.open(io.BytesIO(data)) as out:
        kept = {key: out.info.get(key) for key in ("gamma", "chromaticity", "srgb")}
        assert out_fmt == "png" and kept == {key: source.info.get(key) for key in kept}
        assert any(value is not None for value in kept.values())


def test_a_png_with_an_icc_profile_and_an_srgb_chunk_comes_back_with_the_profile_alone(tmp_path):
    """The PNG specification allows one of them: the profile says more."""
    from PIL import ImageCms

    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    path = _write(tmp_path, "both.png", Image.new("RGB", (8, 6), (90, 120, 150)), icc_profile=profile)
    data = path.read_bytes()  # Pillow writes one or the other: the sRGB chunk goes in by hand, after IHDR
    srgb = struct.pack(">I", 1) + b"sRGB\x00" + struct.pack(">I", zlib.crc32(b"sRGB\x00"))
    path.write_bytes(data[:33] + srgb + data[33:])
    with Image.open(path) as source:
        assert source.info.get("srgb") is not None and source.info.get("icc_profile")
    _, _, _, data = image_round_trip(path)
    with Image.open(io.BytesIO(data)) as out:
        assert out.info.get("icc_profile") == profile and out.info.get("srgb") is None


def _png_tagged(tmp_path, cicp: bytes) -> Path:
    """An 8-bit PNG with a cICP chunk and the sRGB-ish chunks an editor leaves beside it (a
    Display P3 iCCP, gAMA and cHRM of sRGB), which readers of cICP ignore."""
    from PIL import PngImagePlugin

    meta = PngImagePlugin.PngInfo()
    meta.add(b"gAMA", struct.pack(">I", 45_455))
    meta.add(b"cHRM", struct.pack(">8I", 31_270, 32_900, 64_000, 33_000, 30_000, 60_000, 15_000, 6_000))
    path = _write(tmp_path, "tagged.png", Image.new("RGB", (8, 6), (200, 40, 40)), pnginfo=meta,
                  icc_profile=display_p3_icc())
    path.write_bytes(with_png_chunk(path.read_bytes(), b"cICP", cicp))
    return path


@pytest.mark.parametrize("primaries, transfer", [(12, 13), (9, 1), (9, 14), (1, 1), (1, 13)],
                         ids=["display-p3", "bt2020", "bt2020-12bit", "bt709", "srgb"])
def test_a_pngs_sdr_cicp_comes_back_in_a_png_alone_and_as_a_profile_in_a_jpeg_or_webp(tmp_path, primaries, transfer):
    """A PNG's cICP is what readers show it by (PNG Third Edition), whatever iCCP, gAMA or cHRM it
    has beside: an SDR one was dropped and the output was shown by those (here as P3, not sRGB), or
    untagged (a P3 photo as sRGB, less saturated). The PNG carries the cICP again before its pixels
    and only a profile made from it; a JPEG or WebP that profile (none for sRGB, what it is shown as)."""
    cicp = bytes([primaries, transfer, 0, 1])
    info, image, fmt, data = image_round_trip(_png_tagged(tmp_path, cicp))
    chunks = png_chunks_in_order(data)
    kinds = [kind for kind, _ in chunks]
    assert fmt == "png" and dict(chunks)[b"cICP"] == cicp and kinds.index(b"cICP") < kinds.index(b"IDAT")
    assert not {b"gAMA", b"cHRM", b"sRGB"} & set(kinds)
    made = icc_from_nclx(primaries, transfer)
    assert dict(chunks).get(b"iCCP") == (b"ICC Profile\x00\x00" + zlib.compress(made) if made else None)
    for other in ("jpeg", "webp"):
        with Image.open(io.BytesIO(encode_image(image, other, 95, info.icc_profile, info.exif, info.png_colour))) as out:
            assert out.info.get("icc_profile") == made, other
    if primaries == 12:
        reference = icc_colourants(display_p3_icc())
        for tag, xyz in icc_colourants(made).items():
            assert np.abs(np.subtract(xyz, reference[tag])).max() < 1e-3, tag


@pytest.mark.parametrize("cicp", [bytes([12, 99, 0, 1]), bytes([99, 13, 0, 1]), bytes([2, 2, 0, 1]),
                                  bytes([12, 13, 0, 0]), bytes([12, 13, 1, 1]), bytes([12, 13, 0])],
                         ids=["unknown-transfer", "unknown-primaries", "unspecified", "narrow", "matrix", "short"])
def test_a_pngs_cicp_of_code_points_no_profile_holds_is_dropped_and_its_other_chunks_kept(tmp_path, cicp):
    info, _, fmt, data = image_round_trip(_png_tagged(tmp_path, cicp))
    chunks = dict(png_chunks_in_order(data))
    assert fmt == "png" and b"cICP" not in chunks and info.icc_profile == display_p3_icc()
    assert zlib.decompress(chunks[b"iCCP"][13:]) == display_p3_icc() and b"gAMA" in chunks


@pytest.mark.parametrize("associated", [None, False, True], ids=["pillow", "unassociated", "associated"])
def test_a_gray_tiff_with_alpha_keeps_its_alpha(tmp_path, associated):
    """OpenCV reads a gray TIFF with alpha as plain gray: a scanned signature's or a logo's
    transparent background came out opaque. Gray with alpha comes back BGRA, as from a PNG."""
    la = straight_rgba(np.uint8)[..., [0, 3]]
    path = tmp_path / "gray-alpha.tif"
    if associated is None:
        Image.fromarray(la, "LA").save(path, compression="tiff_lzw")
    else:
        stored = premultiplied(la[..., [0, 0, 0, 1]])[..., [0, 3]] if associated else la
        path.write_bytes(tiff_with_alpha(stored, associated))
    decoded = decode_image(path, probe_image(path, 10_000))
    assert decoded.shape == (6, 8, 4) and np.array_equal(decoded[..., 3], la[..., 1])
    assert np.abs(decoded[..., :3].astype(int) - la[..., :1]).max() <= (2 if associated else 0)


def test_an_exif_too_large_for_a_jpeg_segment_is_left_out_and_said_to_be(tmp_path):
    """One APP1 segment holds 65,533 bytes: a larger EXIF (a PNG's or a TIFF's, with a big
    description or maker note) is left out of a JPEG output, and the metadata said it was kept."""
    from tmlsr_ray.pipeline.image import fitting_exif

    exif = Image.Exif()
    exif[0x010E] = "x" * 70_000
    info = probe_image(_write(tmp_path, "big.png", Image.new("RGB", (8, 6)), exif=exif.tobytes()), 10_000)
    assert fitting_exif(info.exif, "png") == info.exif and fitting_exif(info.exif, "webp") == info.exif
    assert fitting_exif(info.exif, "jpeg") is None
    with Image.open(io.BytesIO(encode_image(np.zeros((6, 8, 3), np.uint8), "jpeg", exif=info.exif))) as out:
        assert not out.getexif()
    small = probe_image(tagged_photo(tmp_path / "p.jpg", "JPEG"), 10_000).exif
    assert fitting_exif(small, "jpeg") == small


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_a_gray_heic_or_avif_stays_gray(tmp_path, fmt):
    """Those read through Pillow came back in colour, where grayscale stays grayscale."""
    levels = np.tile(np.arange(0, 256, 8, dtype=np.uint8), (16, 1))
    path = _write(tmp_path, f"gray.{fmt.lower()}", Image.fromarray(levels), format=fmt, quality=100)
    info = probe_image(path, 10_000)
    image = decode_image(path, info)
    assert image.shape == (16, 32) and np.abs(image.astype(int) - levels).max() <= 3
    assert output_format(info, image) == "jpeg"


def test_a_heic_whose_primary_picture_is_not_its_first_is_read_as_its_primary(tmp_path):
    """The probe read the primary picture's size and the decoder took the first picture: a
    different photo, at a size the header did not give."""
    path = tmp_path / "two.heic"
    Image.new("RGB", (40, 20), (255, 0, 0)).save(path, "HEIF", save_all=True, quality=90, primary_index=1,
                                                 append_images=[Image.new("RGB", (30, 10), (0, 0, 255))])
    info = probe_image(path, 10_000)
    image = decode_image(path, info)
    assert (info.width, info.height) == (30, 10) and image.shape == (10, 30, 3)
    assert image[5, 5, 0] > 200 and image[5, 5, 2] < 50, "blue in BGR: the primary picture"


def _gray_palette_image(levels: np.ndarray) -> Image.Image:
    """``levels`` as a palette image whose palette holds those grays in an order of its own (as an
    editor writes a gray GIF: the levels used, not a ramp of all 256)."""
    used = np.unique(levels)
    indices = (len(used) - 1 - np.searchsorted(used, levels)).astype(np.uint8)  # the lightest first
    image = Image.fromarray(indices, "P")
    image.putpalette([v for level in used[::-1] for v in (int(level),) * 3])
    return image


@pytest.mark.parametrize("palette", ["ramp", "levels used"])
@pytest.mark.parametrize("fmt", ["GIF", "PNG", "TIFF"])
def test_a_palette_image_of_grays_stays_gray(tmp_path, fmt, palette):
    """A GIF (or a palette PNG or TIFF) whose palette holds only grays came out in colour (three
    equal channels), where a gray PNG, JPEG or HEIC stays gray."""
    levels = np.tile(np.arange(0, 256, 8, dtype=np.uint8), (16, 1))
    picture = _gray_palette_image(levels)
    if palette == "ramp":
        picture = Image.fromarray(levels).convert("P")
        picture.putpalette([v for level in range(256) for v in (level,) * 3])
    path = _write(tmp_path, f"gray.{fmt.lower()}", picture, format=fmt)
    info = probe_image(path, 10_000)
    image = decode_image(path, info)
    assert image.shape == (16, 32) and (image == levels).all()
    assert output_format(info, image) == "png"


@pytest.mark.parametrize("fmt", ["GIF", "PNG"])
def test_a_palette_image_with_one_colour_in_use_stays_in_colour(tmp_path, fmt):
    levels = np.tile(np.arange(0, 256, 8, dtype=np.uint8), (16, 1))
    picture = _gray_palette_image(levels)
    palette = picture.getpalette()
    palette[3 * 5:3 * 6] = [255, 0, 0]
    picture.putpalette(palette)
    path = _write(tmp_path, f"red.{fmt.lower()}", picture, format=fmt)
    image = decode_image(path, probe_image(path, 10_000))
    assert image.ndim == 3 and image.shape[2] == 3


def test_a_png_whose_compressed_text_inflates_past_pillows_bound_is_refused_naming_its_metadata(tmp_path):
    """A zTXt chunk of 2 kB that inflates to 2 MB (a zlib bomb): Pillow refuses it with ValueError,
    and the task failed with 'process failed: ValueError: Decompressed data too large ...'."""
    data = _write(tmp_path, "plain.png", Image.new("RGB", (8, 6))).read_bytes()
    path = tmp_path / "bomb.png"
    path.write_bytes(with_png_chunk(data, b"zTXt", b"Comment\x00\x00" + zlib_bomb(2_000_000)))
    with pytest.raises(InputError, match="metadata that could not be read .* text or ICC profile chunk"):
        probe_image(path, 10_000)


def test_a_truncated_avif_is_refused_as_not_decodable(tmp_path):
    """libavif's error reaches Pillow as SyntaxError: the task failed with 'process failed:
    SyntaxError: Failed to decode frame 0: Truncated data'."""
    whole = _write(tmp_path, "whole.avif", Image.new("RGB", (48, 32), (200, 30, 60)), quality=80).read_bytes()
    path = tmp_path / "cut.avif"
    path.write_bytes(whole[:len(whole) * 9 // 10])
    with pytest.raises(InputError, match="avif image could not be decoded"):
        decode_image(path, probe_image(path, 10_000))


@pytest.mark.parametrize("stated", [(96, 64), (49, 32), (48, 33)])
def test_an_avif_stating_a_larger_picture_than_it_holds_is_refused(tmp_path, stated):
    """libavif scales the coded picture to the size ispe states: a 48x32 AVIF stating 96x64 came
    back 96x64, each pixel doubled, and was upscaled as if it were the photo."""
    whole = _write(tmp_path, "whole.avif", Image.fromarray(_ramps(32, 48)), quality=90).read_bytes()
    path = tmp_path / "stated.avif"
    path.write_bytes(with_ispe(whole, *stated))
    with pytest.raises(InputError, match=f"input AVIF is damaged: it states a {stated[0]}x{stated[1]} picture "
                                         r"\(ispe\) and holds a 48x32 one"):
        probe_image(path, 10_000)


def test_an_avif_probes_at_the_size_it_holds(tmp_path):
    path = _write(tmp_path, "whole.avif", Image.fromarray(_ramps(32, 48)), quality=90)
    info = probe_image(path, 10_000)
    assert (info.width, info.height) == (48, 32) and decode_image(path, info).shape == (32, 48, 3)


def test_a_heic_whose_stated_size_is_over_libheifs_limit_is_refused_as_not_decodable(tmp_path):
    """Its ispe box says 100000x100000 (the probe reads the cropped 48x32): libheif's refusal
    reaches Python as RuntimeError, and the task failed with 'process failed: RuntimeError'."""
    data = _write(tmp_path, "photo.heic", Image.new("RGB", (48, 32), (200, 30, 60)), quality=80).read_bytes()
    path = tmp_path / "huge.heic"
    path.write_bytes(with_ispe(data, 100_000, 100_000))
    with pytest.raises(InputError, match="heic image could not be decoded: it states a size over what its decoder reads .*100000x100000"):
        decode_image(path, probe_image(path, 10_000))


def test_a_heic_grid_of_thousands_of_tiles_is_refused_naming_libheifs_limit(tmp_path):
    """A 4096x4096 photo in 64x64 tiles of 64 (a panorama, or hostile): libheif reads no file of
    over 1,000 items, and Pillow said it found no image ('no ... HEIC ... data found')."""
    path = grid_heic(tmp_path / "tiles.heic", np.full((4096, 4096, 3), 120, np.uint8), 64)
    with pytest.raises(InputError, match=r"^input HEIC cannot be read: it holds more items \(a grid's tiles among "
                                         r"them\) than its decoder reads \(.*4097 items.*1000 items"):
        probe_image(path, 10**8)


@pytest.mark.parametrize("grid, why", [
    (struct.pack(">BBBBHH", 0, 0, 255, 255, 16384, 16384), "its grid of 256x256 tiles links 4"),
    (struct.pack(">BBBBHH", 0, 0, 0, 0, 128, 128), "its grid of 1x1 tiles links 4"),
    (b"\0\0\1", "its grid item's ImageGrid is cut short or of a version past 0"),
])
def test_a_heic_grid_stating_cells_its_tiles_do_not_fill_is_refused_saying_so(tmp_path, grid, why):
    """65,536 cells declared (the most an ImageGrid holds) and 4 tiles linked: pillow-heif failed
    with an IndexError, which Pillow took for no image at all."""
    path = grid_heic(tmp_path / "grid.heic", np.full((128, 128, 3), 120, np.uint8), 64, grid=grid)
    with pytest.raises(InputError, match=f"^input HEIC cannot be read: {re.escape(why)}$"):
        probe_image(path, 10**8)


@pytest.mark.parametrize("box, count_at, count, why", [
    (b"iinf", 4, struct.pack(">H", 5000), "its item list (iinf) states 5,000 items and holds 7"),
    (b"iloc", 6, struct.pack(">H", 5000), "its item locations (iloc) are cut short"),
    (b"ipma", 4, struct.pack(">I", 5000), "its item properties (ipma) are cut short"),
])
def test_a_heic_whose_item_count_is_damaged_is_not_said_to_hold_more_items_than_its_decoder_reads(
        tmp_path, box, count_at, count, why):
    """A grid of 6 tiles whose item count a bit error raised to 5,000: libheif refuses it at its
    security limit, and it was said to hold more items than its decoder reads (or to state a size
    over it), a limit claimed of a damaged file of 7 items."""
    data = grid_heic(tmp_path / "grid.heic", np.full((100, 150, 3), 120, np.uint8), 64).read_bytes()
    at = data.index(box) + 4 + count_at  # past the box's type, then its version and flags and what precedes
    path = tmp_path / "damaged.heic"
    path.write_bytes(data[:at] + count + data[at + len(count):])
    with pytest.raises(InputError, match=f"^input HEIC cannot be read: {re.escape(why)} \\(the file is damaged\\)$"):
        probe_image(path, 10**8)


def test_random_damage_to_a_grid_photos_meta_box_gives_a_picture_or_an_input_error(tmp_path):
    """150 copies of a grid HEIC (6 tiles, their colour on them alone), each with 1 to 8 of its
    meta box's bytes overwritten (a fixed seed), probed and decoded: never another exception."""
    path = grid_heic(tmp_path / "grid.heic", np.full((100, 150, 3), 120, np.uint8), 64, tile_colour=_nclx(12, 13))
    refusals = set()
    for damaged in meta_box_damaged(path, tmp_path / "damaged.heic", 150, 23008):
        try:
            decode_image(damaged, probe_image(damaged, 10**8))
        except InputError as exc:
            refusals.add(str(exc).split(" (")[0])
    assert any("its grid of" in refusal for refusal in refusals)


def test_an_avif_whose_meta_box_is_cut_is_not_called_a_heic(tmp_path):
    """libheif's words are asked of a HEIF Pillow cannot identify; an AVIF is Pillow's plugin's."""
    data = _write(tmp_path, "whole.avif", Image.fromarray(_ramps(32, 48)), quality=90).read_bytes()
    path = tmp_path / "cut.avif"
    path.write_bytes(data[:data.index(b"meta") + 40])
    with pytest.raises(InputError, match=r"^input is not a readable image \(no PNG, JPEG, WEBP, GIF, BMP, TIFF, HEIC "
                                         r"or AVIF data found\)$"):
        probe_image(path, 10**8)


def test_a_heic_grid_is_read_as_its_tiles_laid_out(tmp_path):
    picture = np.full((100, 150, 3), 40, np.uint8)
    picture[:50, :75] = (0, 0, 230)
    path = grid_heic(tmp_path / "grid.heic", picture, 64)
    info = probe_image(path, 10**8)
    image = decode_image(path, info)
    assert (info.width, info.height) == (150, 100) and image.shape == (100, 150, 3)
    # away from the red quarter's edge, which the tiles' subsampled chroma blurs
    assert np.abs(image[:46, :71].astype(int) - (0, 0, 230)).max() <= 8
    assert np.abs(image[54:, 79:].astype(int) - 40).max() <= 8


def _png_with_exif_chunk_moved(data: bytes, before: bytes) -> bytes:
    """A PNG as Pillow writes it with its eXIf chunk moved to just before the chunk ``before``."""
    start = data.index(b"eXIf") - 4
    chunk = data[start:start + 12 + struct.unpack(">I", data[start:start + 4])[0]]
    rest = data.replace(chunk, b"")
    at = rest.index(before) - 4
    return rest[:at] + chunk + rest[at:]


def test_the_probe_reads_a_pngs_exif_before_or_after_its_pixels_without_decoding_them(tmp_path):
    """Pillow's getexif decodes a PNG's pixels to look past them: every PNG was decoded twice,
    and a corrupt last IDAT length had the probe read 4 GB. Pixels cut short show none were read."""
    exif = Image.Exif()
    exif[0x0112] = 6
    data = _write(tmp_path, "tagged.png", Image.new("RGB", (64, 48)), exif=exif.tobytes()).read_bytes()
    after = tmp_path / "after.png"
    after.write_bytes(_png_with_exif_chunk_moved(data, b"IEND"))
    assert probe_image(after, 10_000).orientation == 6
    untagged = _write(tmp_path, "untagged.png", Image.new("RGB", (64, 48))).read_bytes()
    cut = tmp_path / "cut.png"  # no eXIf before the pixels: Pillow looked for one past them
    cut.write_bytes(untagged[:untagged.index(b"IDAT") + 12])
    info = probe_image(cut, 10_000)
    assert (info.width, info.height, info.exif) == (64, 48, None)
    with pytest.raises(InputError, match="png image could not be decoded"):
        decode_image(cut, info)


def _imagemagick_raw_exif_profile(exif: bytes) -> str:
    """EXIF as ImageMagick 6 wrote it into a PNG's text before eXIf existed: a name, a length, hex lines."""
    hexed = exif.hex()
    return f"\nexif\n{len(exif):8d}\n" + "\n".join(hexed[at:at + 72] for at in range(0, len(hexed), 72)) + "\n"


@pytest.mark.parametrize("where", ["raw-profile-text", "xmp"])
def test_a_pngs_orientation_in_its_text_chunks_is_applied(tmp_path, where):
    """Pillow reads a PNG's orientation from ImageMagick's 'Raw profile type exif' text or from XMP
    too; the probe's own eXIf walk left both out, and such a PNG came out lying on its side."""
    exif = Image.Exif()
    exif[0x0112] = 6
    text = PngImagePlugin.PngInfo()
    if where == "xmp":
        text.add_itxt("XML:com.adobe.xmp", '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://'
                      'www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description xmlns:tiff="http://ns.adobe.com/'
                      'tiff/1.0/" tiff:Orientation="6"/></rdf:RDF></x:xmpmeta>')
    else:
        text.add_text("Raw profile type exif", _imagemagick_raw_exif_profile(exif.tobytes()), zip=True)
    path = _write(tmp_path, "tagged.png", Image.new("RGB", (8, 6), (200, 30, 60)), pnginfo=text)
    info = probe_image(path, 10_000)
    assert info.orientation == 6
    assert decode_image(path, info).shape == (8, 6, 3)


def test_a_png_whose_raw_exif_profile_text_is_not_hex_is_read_without_it(tmp_path):
    """Pillow's bytes.fromhex raised ValueError, and the sound PNG was refused as one whose 'compressed
    text or ICC profile chunk may inflate to 1,048,576 bytes'."""
    text = PngImagePlugin.PngInfo()
    text.add_text("Raw profile type exif", "\nexif\n       4\nzz000000\n")
    path = _write(tmp_path, "tagged.png", Image.new("RGB", (8, 6), (200, 30, 60)), pnginfo=text)
    info = probe_image(path, 10_000)
    assert (info.orientation, info.exif) == (1, None)
    assert decode_image(path, info).shape == (6, 8, 3)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
@pytest.mark.parametrize("exif", [b"II*\x00", b"EM\x00*\x00\x00\x00\x08"], ids=["cut-short", "bad-byte-order"])
def test_an_image_whose_exif_is_damaged_is_read_without_it(tmp_path, fmt, exif):
    """Pillow raised struct.error or SyntaxError reading such EXIF: the task failed as 'process failed:
    error: unpack requires a buffer of 4 bytes', or refused a sound WebP as 'not a TIFF file'."""
    exif = (b"Exif\x00\x00" if fmt == "WEBP" else b"") + exif
    path = _write(tmp_path, f"damaged.{fmt.lower()}", Image.new("RGB", (8, 6), (200, 30, 60)), exif=exif,
                  **({"lossless": True} if fmt == "WEBP" else {}))
    info = probe_image(path, 10_000)
    assert (info.orientation, info.exif) == (1, None)
    assert decode_image(path, info).shape == (6, 8, 3)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_an_exif_block_that_cannot_be_written_again_is_left_out_and_its_orientation_kept(tmp_path, fmt):
    """Its TransferFunction tag holds text, which Pillow writes as numbers: writing the output's EXIF
    raised struct.error, and the task failed as 'process failed: error: required argument is not an
    integer' (4 of 1,500 EXIF blocks of a JPEG or WebP with bytes changed at random)."""
    entries = struct.pack(">HHIHH", 0x0112, 3, 1, 6, 0) + struct.pack(">HHII", 0x012D, 2, 6, 8 + 2 + 24 + 4)
    exif = b"MM\x00*" + struct.pack(">IH", 8, 2) + entries + struct.pack(">I", 0) + b"Maker\x00"
    path = _write(tmp_path, f"odd.{fmt.lower()}", Image.new("RGB", (8, 6), (200, 30, 60)),
                  exif=(b"" if fmt == "PNG" else b"Exif\x00\x00") + exif, **({"lossless": True} if fmt == "WEBP" else {}))
    info = probe_image(path, 10_000)
    assert (info.orientation, info.exif) == (6, None)
    assert decode_image(path, info).shape[:2] == (8, 6)


def test_a_heic_whose_picture_data_is_cut_short_is_refused_as_not_decodable(tmp_path):
    """Its iloc box gives the picture a quarter of its bytes: libheif's decoder runs out of data,
    which reaches Python as EOFError, and the task failed with 'process failed: EOFError'."""
    data = _write(tmp_path, "photo.heic", Image.new("RGB", (48, 32), (200, 30, 60)), quality=80).read_bytes()
    extent_length = data.index(b"iinf") - 8  # the one extent's length ends the iloc box, before iinf
    length = struct.unpack(">I", data[extent_length:extent_length + 4])[0]
    path = tmp_path / "cut.heic"
    path.write_bytes(data[:extent_length] + struct.pack(">I", length // 4) + data[extent_length + 4:])
    with pytest.raises(InputError, match="heic image could not be decoded: the file is cut off before its picture ends .*end of file"):
        decode_image(path, probe_image(path, 10_000))
