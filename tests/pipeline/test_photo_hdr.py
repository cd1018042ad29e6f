"""What an HDR photo comes back as: a PQ or HLG photo kept HDR (its PNG's cICP, cLLI and mDCV) or tone-mapped
as a video is, and an Ultra HDR JPEG with its gain map scaled, or without it, saying why."""

import io
import re
import struct
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from tests.helpers import (GAIN_MAP_METADATA, ISO_GAIN_MAP_SIGNATURE, REFERENCE_WHITE_CODES, apple_hdr_heic, bt2100_icc,
                           deep_levels, deep_photo, display_p3_icc, extended_xmp_segments, hdr_white_photo,
                           image_round_trip, iso_gain_map_metadata, iso_hdr_avif, iso_hdr_heic, jpeg_marker_segment,
                           png_chunks_in_order, srgb_level, ultra_hdr_jpeg, with_png_chunk)
from tmlsr_ray.pipeline.colour import ToneMap, nits_to_pq, pq_to_nits
from tmlsr_ray.pipeline.gainmap import GAIN_MAP_NOT_DESCRIBED
from tmlsr_ray.pipeline.image import (apply_exif_orientation, png_with_metadata, decode_image, encode_image,
                                      output_format, probe_image)
from tmlsr_ray.pipeline.photo_hdr import as_shown, gain_map_for, hdr_metadata, transfer_name


def hdr_round_trip(path: Path, hdr: str = "keep", requested=None, scale: int = 1, quality: int = 95):
    """An image task's output as the runner makes it, ``hdr``, the format and ``quality`` asked; a
    nearest neighbour ``scale`` in place of the model."""
    info = probe_image(path, 10**8)
    image, shown = as_shown(decode_image(path, info), info, hdr, requested)
    image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST) if scale != 1 else image
    fmt = output_format(shown, image, requested)
    gain_map = gain_map_for(shown, fmt, (image.shape[1], image.shape[0]), quality)
    return shown, image, fmt, encode_image(image, fmt, quality, shown.icc_profile, shown.exif, shown.png_colour,
                                           shown.hdr_colour, gain_map)


def video_tone_map(transfer: int, sixteen_bit_code: int, mastering=None) -> int:
    """What a BT.2020 video's frame of this grey comes out as with hdr "sdr" (BT.1886 levels)."""
    grey = np.full((1, 1, 1, 3), sixteen_bit_code, np.uint16)
    return int(ToneMap.for_stream({"color_trc": transfer, "color_primaries": 9}, mastering)(grey)[0, 0, 0, 1])


def as_srgb(bt1886_level: int) -> int:
    """The sRGB level of the light a BT.1886 level shows: a tone-mapped photo's of a video's."""
    return srgb_level((bt1886_level / 255) ** 2.4)


@pytest.mark.parametrize("transfer", [16, 18])
@pytest.mark.parametrize("suffix", [".heic", ".avif"])
def test_a_pq_or_hlg_photo_kept_hdr_is_a_png_whose_cicp_chunk_states_its_colour(tmp_path, suffix, transfer):
    """Android phones, Chrome and libavif tag an HDR photo PQ or HLG in its nclx box alone: its
    16-bit PNG came back with no colour tag, shown as sRGB (washed out, dim, the wrong colours)."""
    path = deep_photo(tmp_path / f"hdr{suffix}", deep_levels(10, "colour"), 10, color_primaries=9,
                      transfer_characteristics=transfer)
    shown, image, fmt, data = hdr_round_trip(path)
    chunks = png_chunks_in_order(data)
    kinds = [kind for kind, _ in chunks]
    assert fmt == "png" and dict(chunks)[b"cICP"] == bytes([9, transfer, 0, 1])
    assert kinds.index(b"cICP") < kinds.index(b"IDAT") and b"iCCP" not in kinds
    assert np.array_equal(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED), image)
    assert image.dtype == np.uint16 and transfer_name(shown) == {16: "smpte2084", 18: "arib-std-b67"}[transfer]


def test_an_eight_bit_hlg_heic_kept_hdr_is_a_png_with_cicp_not_a_jpeg_that_cannot_state_it(tmp_path):
    path = tmp_path / "hlg8.heic"
    Image.new("RGB", (32, 16), (191, 191, 191)).save(path, "HEIF", quality=95, color_primaries=9,
                                                     transfer_characteristics=18)
    _, image, fmt, data = hdr_round_trip(path)
    assert fmt == "png" and image.dtype == np.uint8
    assert dict(png_chunks_in_order(data))[b"cICP"] == bytes([9, 18, 0, 1])


@pytest.mark.parametrize("transfer", [16, 18])
@pytest.mark.parametrize("suffix", [".heic", ".avif"])
def test_a_pq_or_hlg_photo_asked_sdr_shows_reference_white_where_a_videos_tone_map_does(tmp_path, suffix, transfer):
    """hdr "sdr" acted on videos alone: the photo came back HDR levels in an untagged 16-bit PNG."""
    path = hdr_white_photo(tmp_path / f"white{suffix}", transfer)
    shown, image, fmt, data = hdr_round_trip(path, "sdr")
    video = video_tone_map(transfer, round(REFERENCE_WHITE_CODES[transfer] * 65535 / 1023))
    assert abs(video - 230) <= 1, "the video path's 203 nits, README's table"
    expected = as_srgb(video)
    assert fmt == "jpeg" and image.dtype == np.uint8 and np.abs(image.astype(int) - expected).max() <= 1
    assert np.abs(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED).astype(int) - expected).max() <= 1
    assert transfer_name(shown) is None and shown.icc_profile is None


def test_a_pq_photo_tone_mapped_shows_its_shadows_at_their_light_in_an_srgb_viewer(tmp_path):
    """An untagged photo is shown as sRGB: its levels were BT.1886's 2.4 gamma, a video's, so 1 nit
    showed as 2.4 and 5 as 7.5 (code 28 and 54, now 16 and 43). Below the tone map's knee (about
    90 nits at the 1,000-nit default peak) light is kept: the sRGB level of nits / 203."""
    nits = np.array([1.0, 5.0, 20.0, 50.0])
    codes = np.round(nits_to_pq(nits) * 1023).astype(np.uint16)
    path = deep_photo(tmp_path / "shadows.heic", np.repeat(np.repeat(codes, 8)[None, :, None], 3, axis=2)
                      .repeat(8, axis=0), 10, color_primaries=9, transfer_characteristics=16)
    image = hdr_round_trip(path, "sdr")[1]
    stored_nits = pq_to_nits(codes / 1023)
    expected = [srgb_level(light / 203) for light in stored_nits]
    assert np.abs(image[4, 4::8, 1].astype(int) - expected).max() <= 1


@pytest.mark.parametrize("layout, fmt", [("gray", "jpeg"), ("alpha", "png")])
def test_a_gray_hdr_photo_tone_mapped_stays_gray_and_one_with_alpha_keeps_it(tmp_path, layout, fmt):
    levels = deep_levels(10, layout)
    path = deep_photo(tmp_path / "hdr.heic", levels, 10, color_primaries=9, transfer_characteristics=16)
    _, image, out_fmt, _ = hdr_round_trip(path, "sdr")
    assert out_fmt == fmt and image.dtype == np.uint8 and image.shape == levels.shape
    if layout == "alpha":
        assert np.abs(image[:, :, 3].astype(int) - np.round(levels[:, :, 3] / 1023 * 255)).max() <= 1


# a P3-D65 display of 4,000 nits, its primaries in HEVC's order (green, blue, red), and MaxCLL 4,000
LIGHT_LEVELS = {"content_light_level": {"max_content_light_level": 4000, "max_pic_average_light_level": 400},
                "mastering_display_colour_volume": {
                    "display_primaries_x": [13250, 7500, 34000], "display_primaries_y": [34500, 3000, 16000],
                    "white_point_x": 15635, "white_point_y": 16450,
                    "max_display_mastering_luminance": 40_000_000, "min_display_mastering_luminance": 50}}


@pytest.mark.parametrize("order", [(0, 1, 2), (2, 0, 1)])  # HEVC's green, blue, red; and red first
def test_a_pq_photos_light_levels_go_into_its_png_as_clli_and_mdcv_red_first(tmp_path, order):
    display = dict(LIGHT_LEVELS["mastering_display_colour_volume"])
    for axis in ("display_primaries_x", "display_primaries_y"):
        display[axis] = [display[axis][i] for i in order]
    path = deep_photo(tmp_path / "graded.heic", deep_levels(10, "colour"), 10, color_primaries=9,
                      transfer_characteristics=16, **{**LIGHT_LEVELS, "mastering_display_colour_volume": display})
    chunks = png_chunks_in_order(hdr_round_trip(path)[3])
    kinds = [kind for kind, _ in chunks]
    assert struct.unpack(">II", dict(chunks)[b"cLLI"]) == (40_000_000, 4_000_000)
    assert struct.unpack(">8HII", dict(chunks)[b"mDCV"]) == (34000, 16000, 13250, 34500, 7500, 3000, 15635, 16450,
                                                            40_000_000, 50)
    assert max(kinds.index(b"cLLI"), kinds.index(b"mDCV")) < kinds.index(b"IDAT")


@pytest.mark.parametrize("hdr", ["keep", "sdr"])
def test_an_hdr_png_this_service_made_upscaled_again_keeps_its_cicp_clli_and_mdcv_or_is_tone_mapped(tmp_path, hdr):
    """Its cICP was not read: the second pass came back an untagged 16-bit PNG, shown as sRGB (203
    nits at 148 of 255), and hdr "sdr" left it so; an iCCP beside the cICP is left out, as readers do."""
    path = deep_photo(tmp_path / "graded.heic", np.full((16, 32, 3), REFERENCE_WHITE_CODES[16], np.uint16), 10,
                      color_primaries=9, transfer_characteristics=16, **LIGHT_LEVELS)
    first_png = hdr_round_trip(path)[3]
    first = dict(png_chunks_in_order(first_png))
    again = tmp_path / "again.png"
    again.write_bytes(png_with_metadata(first_png, display_p3_icc(), None))
    shown, image, fmt, data = hdr_round_trip(again, hdr)
    chunks = dict(png_chunks_in_order(data))
    assert fmt == "png" and b"iCCP" not in chunks and transfer_name(probe_image(again, 10**8)) == "smpte2084"
    if hdr == "keep":
        assert image.dtype == np.uint16 and all(chunks[kind] == first[kind] for kind in (b"cICP", b"cLLI", b"mDCV"))
    else:  # at MaxCLL 4,000, as the HEIC itself
        assert b"cICP" not in chunks and np.abs(image.astype(int) - hdr_round_trip(path, "sdr")[1]).max() == 0


@pytest.mark.parametrize("cicp", [bytes([9, 16, 0, 0]), bytes([9, 16, 1, 1]), bytes([9, 1, 0, 1])])
def test_a_png_cicp_of_narrow_range_a_matrix_or_sdr_is_not_taken_for_an_hdr_photo(tmp_path, cicp):
    path = tmp_path / "tagged.png"
    path.write_bytes(with_png_chunk(cv2.imencode(".png", np.zeros((4, 4, 3), np.uint16))[1].tobytes(), b"cICP", cicp))
    assert transfer_name(probe_image(path, 10**8)) is None


def test_a_pq_photo_tone_mapped_takes_its_peak_from_its_maxcll_as_a_video_does(tmp_path):
    """With no peak stated a PQ photo is taken to reach 1,000 nits; at MaxCLL 4,000 its 203-nit
    white comes out darker (a video's 210, README's table), leaving room for its highlights."""
    white = np.full((16, 32, 3), REFERENCE_WHITE_CODES[16], np.uint16)
    path = deep_photo(tmp_path / "graded.heic", white, 10, color_primaries=9, transfer_characteristics=16,
                      **LIGHT_LEVELS)
    image = hdr_round_trip(path, "sdr")[1]
    video = video_tone_map(16, round(REFERENCE_WHITE_CODES[16] * 65535 / 1023), {"cll": "4000,400"})
    assert abs(video - 210) <= 1 and np.abs(image.astype(int) - as_srgb(video)).max() <= 1


@pytest.mark.parametrize("requested", ["jpeg", "webp"])
def test_an_hdr_photo_asked_as_jpeg_or_webp_is_tone_mapped_and_the_metadata_says_so(tmp_path, requested):
    """Only PNG's cICP states PQ or HLG here: a JPEG of the HDR levels would show them as sRGB."""
    path = hdr_white_photo(tmp_path / "white.avif", 16)
    info = probe_image(path, 10**8)
    shown, image, fmt, _ = hdr_round_trip(path, "keep", requested)
    assert fmt == requested and image.dtype == np.uint8 and abs(int(image.mean()) - 229) <= 1
    metadata = hdr_metadata(info, shown, "keep", fmt)
    assert metadata["hdr"] is None and metadata["hdr_note"].startswith(f"{requested} holds no HDR")
    assert hdr_metadata(info, info, "keep", "png") == {"hdr": "smpte2084"}


@pytest.mark.parametrize("hdr", ["keep", "sdr"])
@pytest.mark.parametrize("transfer", [13, 1])
def test_an_sdr_nclx_photo_comes_out_the_same_whichever_hdr_is_asked(tmp_path, hdr, transfer):
    path = deep_photo(tmp_path / "sdr.avif", deep_levels(10, "colour"), 10, color_primaries=12,
                      transfer_characteristics=transfer)
    shown, _, fmt, data = hdr_round_trip(path, hdr)
    assert data == image_round_trip(path)[3] and fmt == "png" and b"cICP" not in dict(png_chunks_in_order(data))
    assert transfer_name(shown) is None


# what Pillow writes each format with: lossless where it can be, the rest at their best
ICC_TAGGED_SAVES = {"png": ("PNG", {}), "tiff": ("TIFF", {}), "webp": ("WEBP", {"lossless": True}),
                    "jpeg": ("JPEG", {"quality": 100}), "avif": ("AVIF", {"quality": 100}),
                    "heic": ("HEIF", {"quality": -1})}


def icc_tagged_photo(tmp_path: Path, fmt: str, profile: bytes, level: int) -> Path:
    """An 8-bit photo of one grey ``level`` in ``fmt`` whose only colour tag is ``profile``."""
    path = tmp_path / f"tagged.{fmt}"
    pillow_format, options = ICC_TAGGED_SAVES[fmt]
    Image.new("RGB", (32, 16), (level,) * 3).save(path, pillow_format, icc_profile=profile, **options)
    return path


@pytest.mark.parametrize("transfer", [16, 18])
@pytest.mark.parametrize("fmt", sorted(ICC_TAGGED_SAVES))
def test_a_photo_whose_icc_profile_states_pq_or_hlg_in_its_cicp_tag_is_an_hdr_photo(tmp_path, fmt, transfer):
    """An ICC v4.4 profile's cicp tag (macOS's and Photoshop's HDR profiles) states the transfer
    its matrix/TRC cannot: taken at its matrix/TRC, the photo was an SDR one (hdr "sdr" left its
    PQ or HLG levels as they were, 203-nit white at 148 of 255, and metadata.input.hdr said null).
    It is an HDR photo as a HEIC's nclx makes one: kept, a PNG whose cICP states it; tone-mapped,
    white where a video's goes."""
    white = round(REFERENCE_WHITE_CODES[transfer] * 255 / 1023)
    path = icc_tagged_photo(tmp_path, fmt, bt2100_icc(transfer), white)
    info = probe_image(path, 10**8)
    assert transfer_name(info) == {16: "smpte2084", 18: "arib-std-b67"}[transfer] and info.icc_profile is None
    kept_fmt, kept = hdr_round_trip(path)[2:]
    chunks = dict(png_chunks_in_order(kept))
    assert kept_fmt == "png" and chunks[b"cICP"] == bytes([9, transfer, 0, 1]) and b"iCCP" not in chunks
    shown, image, sdr_fmt, _ = hdr_round_trip(path, "sdr")
    expected = as_srgb(video_tone_map(transfer, white * 257))
    assert transfer_name(shown) is None and np.abs(image.astype(int) - expected).max() <= 2


@pytest.mark.parametrize("cicp", [bytes([9, 1, 0, 1]), bytes([9, 16, 0, 0]), bytes([9, 16, 1, 1])],
                         ids=["sdr", "narrow", "matrix"])
def test_an_icc_profile_whose_cicp_tag_states_no_full_range_rgb_hdr_stays_the_photos_profile(tmp_path, cicp):
    path = icc_tagged_photo(tmp_path, "png", bt2100_icc(16, cicp), 148)
    info = probe_image(path, 10**8)
    assert transfer_name(info) is None and info.icc_profile == bt2100_icc(16, cicp)


def _halves_gain_map() -> np.ndarray:
    """A 16x12 gain map (a quarter of a 64x48 photo) boosting its left half (200) more than its right (40)."""
    gain = np.full((12, 16), 40, np.uint8)
    gain[:, :8] = 200
    return gain


def _mp_index(data: bytes):
    """The MP entries of a JPEG, where its MP index starts (its TIFF header) and its first XMP, as
    Pillow reads them: it opens an Ultra HDR JPEG as its primary picture alone, its index read all the same."""
    with Image.open(io.BytesIO(data)) as img:
        return img._getmp()[0xB002], img.info["mpoffset"], img.info["xmp"]


@pytest.mark.parametrize("iso", [True, False])
def test_an_ultra_hdr_jpeg_comes_back_ultra_hdr_its_gain_map_scaled_with_the_primary(tmp_path, iso):
    """Its gain map was dropped: the upscaled photo came back an SDR JPEG of one picture."""
    path = tmp_path / "ultra.jpg"
    path.write_bytes(ultra_hdr_jpeg(np.full((48, 64, 3), 90, np.uint8), _halves_gain_map(), iso=iso))
    info = probe_image(path, 10**8)
    shown, image, fmt, data = hdr_round_trip(path, scale=2)
    assert fmt == "jpeg" and image.shape[:2] == (96, 128)
    assert transfer_name(info) == "gain map" and hdr_metadata(info, shown, "keep", fmt) == {"hdr": "gain map"}
    entries, index_at, xmp = _mp_index(data)
    primary_bytes = entries[0]["Size"]
    assert [entry["DataOffset"] for entry in entries] == [0, primary_bytes - index_at]
    gain_map = data[primary_bytes:]
    assert entries[1]["Size"] == len(gain_map) and data[primary_bytes - 2:primary_bytes + 2] == b"\xff\xd9\xff\xd8"
    assert f'Item:Length="{len(gain_map)}"'.encode() in xmp and b'hdrgm:Version="1.0"' in xmp
    metadata = GAIN_MAP_METADATA if iso else GAIN_MAP_METADATA[:GAIN_MAP_METADATA.index(b"\xff\xe2")]
    assert gain_map[2:2 + len(metadata)] == metadata
    iso_version = jpeg_marker_segment(0xE2, ISO_GAIN_MAP_SIGNATURE + bytes(4))
    assert data[:primary_bytes].count(iso_version) == (1 if iso else 0)
    scaled = cv2.imdecode(np.frombuffer(gain_map, np.uint8), cv2.IMREAD_UNCHANGED)
    assert scaled.shape == (24, 32)
    assert abs(scaled[:, :14].mean() - 200) <= 2 and abs(scaled[:, 18:].mean() - 40) <= 2
    with Image.open(io.BytesIO(data)) as primary:
        assert primary.size == (128, 96)  # what a viewer without gain maps shows


@pytest.mark.parametrize("layout", [
    dict(mpf=False), dict(mpf=False, video=b"\x00\x00\x00\x18ftypmp42" + bytes(40)),
    dict(mpf=False, padding=16), dict(mpf=False, directory=False)],
    ids=["directory", "motion photo", "primary padded", "no directory"])
def test_an_ultra_hdr_jpeg_without_an_mp_index_has_its_gain_map_found_after_the_primary(tmp_path, layout):
    """Skia finds a gain map by the primary's GContainer directory where no MPF segment lists it
    (its items follow the primary's EOI and padding in order: a motion photo's video may come first), and
    libultrahdr takes the picture after the primary's EOI: such a photo came back SDR, its
    gain map dropped."""
    path = tmp_path / "ultra.jpg"
    path.write_bytes(ultra_hdr_jpeg(np.full((48, 64, 3), 90, np.uint8), _halves_gain_map(), **layout))
    info = probe_image(path, 10**8)
    shown, image, fmt, data = hdr_round_trip(path, scale=2)
    assert transfer_name(info) == "gain map" and hdr_metadata(info, shown, "keep", fmt) == {"hdr": "gain map"}
    entries, _, _ = _mp_index(data)
    scaled = cv2.imdecode(np.frombuffer(data[entries[0]["Size"]:], np.uint8), cv2.IMREAD_UNCHANGED)
    assert scaled.shape == (24, 32) and abs(scaled[:, :14].mean() - 200) <= 2 and abs(scaled[:, 18:].mean() - 40) <= 2


@pytest.mark.parametrize("layout", [[cv2.IMWRITE_JPEG_PROGRESSIVE, 1], [cv2.IMWRITE_JPEG_RST_INTERVAL, 1], []],
                         ids=["progressive", "restart markers", "a picture in a segment"])
def test_the_picture_after_a_primary_of_several_scans_or_restart_markers_is_its_gain_map(tmp_path, layout):
    """The primary's end is found past its scans' stuffed bytes (noise has many), the segments
    between a progressive JPEG's scans, its restart markers, and a segment holding a JPEG of its
    own (as EXIF holds a thumbnail), whose EOI is not the primary's; the gain map ends at its own
    EOI, bytes an app appends after it left out."""
    noise = np.random.default_rng(0).integers(0, 256, (48, 64, 3), np.uint8)
    primary = cv2.imencode(".jpg", noise, [cv2.IMWRITE_JPEG_QUALITY, 100, *layout])[1].tobytes()
    if not layout:
        primary = primary[:2] + jpeg_marker_segment(0xFE, cv2.imencode(".jpg", noise[:8, :8])[1].tobytes()) + primary[2:]
    xmp = jpeg_marker_segment(0xE1, b"http://ns.adobe.com/xap/1.0/\x00" + b'<x:xmpmeta xmlns:x="adobe:ns:meta/">'
                              b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
                              b'xmlns:hdrgm="http://ns.adobe.com/hdr-gain-map/1.0/" hdrgm:Version="1.0"/>'
                              b'</rdf:RDF></x:xmpmeta>')
    gain_map = cv2.imencode(".jpg", _halves_gain_map())[1].tobytes()
    path = tmp_path / "scans.jpg"
    gain_map = gain_map[:2] + GAIN_MAP_METADATA + gain_map[2:]
    path.write_bytes(primary[:2] + xmp + primary[2:] + gain_map + b"trailer")
    info = probe_image(path, 10**8)
    assert info.gain_map is not None and info.gain_map.jpeg == gain_map


def test_a_gain_map_found_by_its_directory_is_taken_at_the_length_it_states(tmp_path):
    """Bytes after the gain map (a trailer an app appends) are not part of it."""
    photo = ultra_hdr_jpeg(np.full((48, 64, 3), 90, np.uint8), _halves_gain_map(), mpf=False)
    path = tmp_path / "trailer.jpg"
    path.write_bytes(photo + b"SEFH" + bytes(100))
    gain_map = probe_image(path, 10**8).gain_map
    assert gain_map is not None and gain_map.jpeg.endswith(b"\xff\xd9") and photo.endswith(gain_map.jpeg)


@pytest.mark.parametrize("stated", [b"\x00\x00\x00\x18ftypmp42" + bytes(40), bytes(16)], ids=["video", "padding"])
def test_a_gain_map_right_after_the_primary_is_found_where_a_stale_directory_places_it_elsewhere(tmp_path, stated):
    """A directory still stating a motion photo's video or a padding before the gain map that a tool
    cut out of the file sent the search past the gain map alone, and the photo came back SDR, its
    note saying the gain map was missing; libultrahdr, which reads no directory, takes the picture
    right after the primary's EOI."""
    layout = dict(video=stated) if stated.startswith(b"\x00\x00\x00\x18") else dict(padding=len(stated))
    photo = ultra_hdr_jpeg(np.full((48, 64, 3), 90, np.uint8), _halves_gain_map(), mpf=False, **layout)
    gain_map_at = photo.index(stated + b"\xff\xd8")
    path = tmp_path / "stale.jpg"
    path.write_bytes(photo[:gain_map_at] + photo[gain_map_at + len(stated):])
    info = probe_image(path, 10**8)
    assert (info.gain_map_left_out, transfer_name(info)) == (None, "gain map")
    assert info.gain_map.jpeg == photo[gain_map_at + len(stated):]


@pytest.mark.parametrize("iso", [True, False])
def test_a_picture_declaring_a_gain_map_as_a_primary_does_is_not_taken_for_one(tmp_path, iso):
    """Another Ultra HDR photo's primary after the primary's EOI (two such photos joined in one
    file) states hdrgm:Version and the ISO 21496-1 version alone, as a primary does, and no gain map
    numbers (hdrgm:GainMapMax, ISO 21496-1's headroom): it was taken for the gain map, a whole
    colour photo applied as one."""
    first = ultra_hdr_jpeg(np.full((48, 64, 3), 90, np.uint8), _halves_gain_map(), iso=iso, mpf=False,
                           directory=False)
    primary = first[:first.index(b"\xff\xd9\xff\xd8") + 2]
    path = tmp_path / "joined.jpg"
    path.write_bytes(primary + ultra_hdr_jpeg(np.full((48, 64, 3), 30, np.uint8), _halves_gain_map(), iso=iso))
    info = probe_image(path, 10**8)
    assert info.gain_map is None and info.gain_map_left_out == GAIN_MAP_NOT_DESCRIBED


@pytest.mark.parametrize("layout", [dict(), dict(mpf=False, video=b"\x00\x00\x00\x18ftypmp42" + bytes(40))],
                         ids=["mp index", "directory"])
def test_an_ultra_hdr_jpeg_whose_primary_states_hdrgm_in_extended_xmp_keeps_its_gain_map(tmp_path, layout):
    """XMP too large for one segment goes on in extended XMP segments (Lightroom's and Photoshop's
    history does), which Skia reads: a primary whose hdrgm:Version and GContainer directory stood
    there was taken for an SDR photo's, its gain map dropped."""
    path = tmp_path / "extended.jpg"
    path.write_bytes(ultra_hdr_jpeg(np.full((48, 64, 3), 90, np.uint8), _halves_gain_map(), iso=False,
                                    extended_xmp=True, **layout))
    info = probe_image(path, 10**8)
    shown, _, fmt, data = hdr_round_trip(path, scale=2)
    assert transfer_name(info) == "gain map" and hdr_metadata(info, shown, "keep", fmt) == {"hdr": "gain map"}
    assert b'hdrgm:Version="1.0"' in _mp_index(data)[2]


def test_a_gain_maps_extended_xmp_describes_it_and_comes_back_with_it(tmp_path):
    gain_map_xmp = GAIN_MAP_METADATA[:GAIN_MAP_METADATA.index(b"\xff\xe2")]
    extended = extended_xmp_segments(gain_map_xmp[4 + len(b"http://ns.adobe.com/xap/1.0/\x00"):])
    photo = ultra_hdr_jpeg(np.full((48, 64, 3), 90, np.uint8), _halves_gain_map(), iso=False, mpf=False,
                           directory=False)
    path = tmp_path / "extended.jpg"
    path.write_bytes(photo.replace(gain_map_xmp, extended))
    _, _, fmt, data = hdr_round_trip(path, scale=2)
    gain_map = data[_mp_index(data)[0][0]["Size"]:]
    assert fmt == "jpeg" and gain_map[2:2 + len(extended)] == extended


def test_an_ultra_hdr_jpeg_turned_upright_has_its_gain_map_turned_as_well(tmp_path):
    """A gain map is stored as its primary is: EXIF orientation 6 turns both a quarter clockwise."""
    path = tmp_path / "turned.jpg"
    path.write_bytes(ultra_hdr_jpeg(np.full((48, 64, 3), 90, np.uint8), _halves_gain_map(), orientation=6))
    shown, image, fmt, data = hdr_round_trip(path, scale=2)
    entries, _, _ = _mp_index(data)
    scaled = cv2.imdecode(np.frombuffer(data[entries[0]["Size"]:], np.uint8), cv2.IMREAD_UNCHANGED)
    expected = cv2.resize(apply_exif_orientation(_halves_gain_map(), 6), (24, 32), interpolation=cv2.INTER_LINEAR)
    assert image.shape[:2] == (128, 96) and scaled.shape == (32, 24)
    assert np.abs(scaled.astype(int) - expected).max() <= 3


def test_a_gain_map_of_more_pixels_than_its_photo_is_not_decoded_and_the_photo_is_sdr(tmp_path):
    """max_input_pixels bounds the primary picture alone: a gain map stating more pixels than its
    photo (no camera's does) is not decoded, a way past the bound, and the photo counts as SDR."""
    path = tmp_path / "hostile.jpg"
    path.write_bytes(ultra_hdr_jpeg(np.full((48, 64, 3), 90, np.uint8), np.zeros((49, 64), np.uint8)))
    assert probe_image(path, 64 * 48).gain_map is None
    path.write_bytes(ultra_hdr_jpeg(np.full((48, 64, 3), 90, np.uint8), np.zeros((48, 64), np.uint8)))
    assert probe_image(path, 64 * 48).gain_map is not None


@pytest.mark.parametrize("hdr, requested, fmt, note", [
    ("sdr", None, "jpeg", 'hdr "sdr" was asked: the Ultra HDR photo\'s gain map was left out'),
    ("keep", "png", "png", "png holds no gain map: the Ultra HDR photo's gain map was left out"),
    ("keep", "webp", "webp", "webp holds no gain map"),
])
def test_an_ultra_hdr_jpeg_without_its_gain_map_says_so(tmp_path, hdr, requested, fmt, note):
    """The SDR primary is the SDR rendition: it comes back alone, and the note says why."""
    path = tmp_path / "ultra.jpg"
    path.write_bytes(ultra_hdr_jpeg(np.full((48, 64, 3), 90, np.uint8), _halves_gain_map()))
    info = probe_image(path, 10**8)
    shown, image, chosen, data = hdr_round_trip(path, hdr, requested, scale=2)
    metadata = hdr_metadata(info, shown, hdr, chosen)
    assert chosen == fmt and metadata["hdr"] is None and metadata["hdr_note"].startswith(note)
    assert b"hdr-gain-map" not in data and ISO_GAIN_MAP_SIGNATURE not in data
    with Image.open(io.BytesIO(data)) as out:
        assert out.size == (128, 96) and "mp" not in out.info


def test_an_mpo_stereo_pair_is_no_gain_map_photo_and_comes_back_its_first_picture(tmp_path):
    """A second picture that is no gain map (a stereo pair's, a camera's large thumbnail) stays out."""
    path = tmp_path / "stereo.mpo"
    Image.new("RGB", (32, 24), (200, 0, 0)).save(path, "MPO", save_all=True,
                                                 append_images=[Image.new("RGB", (32, 24), (0, 0, 200))])
    info = probe_image(path, 10**8)
    shown, image, fmt, data = hdr_round_trip(path, scale=2)
    assert (info.format, info.gain_map, fmt) == ("jpeg", None, "jpeg")
    assert hdr_metadata(info, shown, "keep", fmt) == {"hdr": None}
    with Image.open(io.BytesIO(data)) as out:
        assert out.format == "JPEG" and out.size == (64, 48) and "mp" not in out.info


def _cut_short_gain_map(photo: bytes) -> bytes:
    entries, _, _ = _mp_index(photo)
    return photo[:entries[0]["Size"] + entries[1]["Size"] // 2] + b"\xff\xd9"


def _quantization(jpeg: bytes) -> dict:
    with Image.open(io.BytesIO(jpeg)) as img:
        return img.quantization


@pytest.mark.parametrize("quality, gain_map_quality", [(None, 95), (100, 100), (85, 85), (60, 80)])
def test_an_ultra_hdr_jpegs_gain_map_is_written_at_its_primarys_quality_never_under_80(tmp_path, quality,
                                                                                         gain_map_quality):
    """The gain map was written at quality 95 whatever output_quality asked: 100 gave a primary of
    100 with a gain map of 95, 60 a small primary with a gain map as large as ever. Under 80 a
    smooth map's JPEG error passes 2 of its levels (gainmap.LEAST_GAIN_MAP_QUALITY)."""
    path = tmp_path / "ultra.jpg"
    path.write_bytes(ultra_hdr_jpeg(np.full((48, 64, 3), 90, np.uint8), _halves_gain_map()))
    _, _, fmt, data = hdr_round_trip(path, scale=2, quality=quality)
    gain_map = data[_mp_index(data)[0][0]["Size"]:]
    expected = cv2.imencode(".jpg", np.zeros((8, 8), np.uint8), [cv2.IMWRITE_JPEG_QUALITY, gain_map_quality])[1]
    assert fmt == "jpeg" and _quantization(gain_map) == _quantization(expected.tobytes())
    assert _quantization(data) == _quantization(cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8), [
        cv2.IMWRITE_JPEG_QUALITY, quality or 95])[1].tobytes())


def test_a_gain_map_cut_short_is_left_out_rather_than_scaled_gray(tmp_path):
    """libjpeg fills the rows a gain map cut short and closed by an EOI lacks flat gray, with a
    warning alone: such a gain map went into the output, brightening what it no longer described."""
    photo = ultra_hdr_jpeg(np.full((48, 64, 3), 90, np.uint8),
                           np.random.default_rng(0).integers(0, 255, (48, 64), np.uint8))
    path = tmp_path / "cut.jpg"
    path.write_bytes(_cut_short_gain_map(photo))
    info = probe_image(path, 10**8)
    assert info.gain_map is None and transfer_name(info) is None


@pytest.mark.parametrize("gain_map, note", [
    ("cut short", "the Ultra HDR photo's gain map could not be read whole (cut short or damaged): its SDR picture "
                  "was upscaled alone"),
    ("higher", "the Ultra HDR photo's gain map is wider or higher than its picture: its SDR picture was upscaled "
               "alone"),
    ("stripped", "the Ultra HDR photo's gain map is missing: its primary picture declares one, but no picture "
                 "follows it (an editor or an upload may have cut it off): its SDR picture was upscaled alone"),
    ("plain picture", "the Ultra HDR photo's second picture is no gain map: no hdrgm XMP or ISO 21496-1 segment of "
                      "its own states a gain map's numbers: its SDR picture was upscaled alone"),
])
def test_an_ultra_hdr_jpeg_whose_gain_map_cannot_be_kept_says_why_it_came_back_sdr(tmp_path, gain_map, note):
    """A gain map left out as damaged or too large, or declared by the primary's hdrgm XMP, ISO
    21496-1 and MPF segments but cut off the file or replaced by a plain picture, came back with
    hdr null and no hdr_note: the user's HDR photo came back SDR with no word of why."""
    primary = np.full((48, 64, 3), 90, np.uint8)
    if gain_map == "cut short":
        photo = _cut_short_gain_map(ultra_hdr_jpeg(primary, np.random.default_rng(0).integers(0, 255, (48, 64),
                                                                                             np.uint8)))
    elif gain_map == "higher":
        photo = ultra_hdr_jpeg(primary, np.zeros((49, 64), np.uint8))
    else:
        photo = ultra_hdr_jpeg(primary, _halves_gain_map())
        photo = photo[:_mp_index(photo)[0][0]["Size"]]
        photo += cv2.imencode(".jpg", _halves_gain_map())[1].tobytes() if gain_map == "plain picture" else b""
    path = tmp_path / "ultra.jpg"
    path.write_bytes(photo)
    info = probe_image(path, 10**8)
    shown, _, fmt, data = hdr_round_trip(path, scale=2)
    assert fmt == "jpeg" and b"hdr-gain-map" not in data
    assert hdr_metadata(info, shown, "keep", fmt) == {"hdr": None, "hdr_note": note}


def test_an_ultra_hdr_jpeg_too_wide_for_jpeg_says_why_its_gain_map_was_left_out(tmp_path):
    """A result wider than JPEG's 65,535 pixels comes back png: its note said "ask jpeg to keep it
    HDR", and jpeg asked was refused as too wide."""
    path = tmp_path / "panorama.jpg"
    path.write_bytes(ultra_hdr_jpeg(np.full((4, 33000, 3), 90, np.uint8), np.zeros((1, 8250), np.uint8)))
    info = probe_image(path, 10**8)
    shown, image, fmt, _ = hdr_round_trip(path, scale=2)
    assert fmt == "png" and info.gain_map is not None
    assert hdr_metadata(info, shown, "keep", fmt) == {
        "hdr": None, "hdr_note": "a result wider or higher than jpeg's 65,535 pixels is png, which holds no gain "
                                 "map: the Ultra HDR photo's gain map was left out and its SDR picture upscaled alone"}


def test_a_gain_maps_icc_profile_the_colour_space_it_is_applied_in_comes_back_with_it(tmp_path):
    """ISO 21496-1: a gain map not applied in its primary's colour space is applied in the HDR
    rendition's, which the gain map picture's ICC profile states (Skia writes one): it was dropped
    with the rest of the gain map's header, so viewers applied it in the primary's."""
    path = tmp_path / "p3.jpg"
    path.write_bytes(ultra_hdr_jpeg(np.full((48, 64, 3), 90, np.uint8), np.dstack([_halves_gain_map()] * 3),
                                    gain_map_icc=display_p3_icc()))
    _, _, _, data = hdr_round_trip(path, scale=2)
    entries, _, _ = _mp_index(data)
    with Image.open(io.BytesIO(data[entries[0]["Size"]:])) as scaled:
        assert scaled.size == (32, 24) and scaled.info.get("icc_profile") == display_p3_icc()


def test_a_gain_map_wider_than_its_photo_is_left_out_and_the_photo_comes_back(tmp_path):
    """A gain map wider than its photo (no camera's is), scaled with it, could pass JPEG's 65,535
    pixels: a 1000x100 photo's 40000x2 gain map, upscaled x2, failed the task ("could not encode
    the gain map as jpeg")."""
    path = tmp_path / "wide_gain_map.jpg"
    path.write_bytes(ultra_hdr_jpeg(np.full((100, 1000, 3), 90, np.uint8), np.zeros((2, 40000), np.uint8)))
    shown, image, fmt, data = hdr_round_trip(path, scale=2)
    assert shown.gain_map is None and fmt == "jpeg"
    with Image.open(io.BytesIO(data)) as out:
        assert out.size == (2000, 200) and "mp" not in out.info


def test_a_jpeg_declaring_no_gain_map_is_probed_from_its_header_alone(tmp_path, monkeypatch):
    """Every JPEG was read whole by the probe to look for a gain map (an 18.6 MB photo's probe took
    3.4 ms, 0.07 ms before), though only the primary's XMP or ISO 21496-1 segment declares one."""
    path = tmp_path / "plain.jpg"
    path.write_bytes(cv2.imencode(".jpg", np.full((48, 64, 3), 90, np.uint8))[1].tobytes())

    def read_whole(self):
        raise AssertionError(f"{self.name} read whole")

    monkeypatch.setattr(Path, "read_bytes", read_whole)
    assert probe_image(path, 10**8).gain_map is None


def _rec709_linear(level):
    """Apple's gain map level as linear gain: Rec. 709's inverse transfer, as Apple's article has it."""
    signal = np.asarray(level, float) / 255
    return np.where(signal < 0.081, signal / 4.5, ((signal + 0.099) / 1.099) ** (1 / 0.45))


def _hdrgm(xmp: bytes, name: str) -> float:
    return float(re.search(rb'hdrgm:' + name.encode() + rb'="([-0-9.]+)"', xmp).group(1))


def _hdr_over_sdr(data: bytes) -> np.ndarray:
    """What a viewer of Ultra HDR multiplies an output's primary (linear) by at full headroom, by
    hdrgm's formula and its gain map's XMP, at each pixel of its gain map scaled to the primary."""
    entries, _, _ = _mp_index(data)
    gain_map = data[entries[0]["Size"]:]
    levels = cv2.imdecode(np.frombuffer(gain_map, np.uint8), cv2.IMREAD_UNCHANGED) / 255
    primary = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    levels = cv2.resize(levels, primary.shape[::-1], interpolation=cv2.INTER_NEAREST)
    low, high, gamma, offset_sdr, offset_hdr = [_hdrgm(gain_map, name) for name in
                                                ("GainMapMin", "GainMapMax", "Gamma", "OffsetSDR", "OffsetHDR")]
    sdr = (primary / 255) ** 2.2  # near enough sRGB's curve: only the offsets, if any, make it count
    boost = 2 ** (low + (high - low) * levels ** (1 / gamma))
    return ((sdr + offset_sdr) * boost - offset_hdr) / sdr


CORNERS = [(8, 8), (-8, 8), (8, -8), (-8, -8)]  # one in each quarter, away from the edges between


def _gain_map_round_trip(path: Path):
    """An HDR photo whose primary has one bright quarter, upscaled 2x and kept Ultra HDR: its
    output, the output's primary, the HDR/SDR ratio its gain map gives at each pixel, and which of
    :data:`CORNERS` is bright (one, wherever the photo's turns put it)."""
    info = probe_image(path, 10**8)
    shown, image, fmt, data = hdr_round_trip(path, scale=2)
    assert fmt == "jpeg" and hdr_metadata(info, shown, "keep", fmt) == {"hdr": "gain map"}
    ratio = _hdr_over_sdr(data)
    bright = [image[y, x, 1] > 128 for y, x in CORNERS]
    assert sum(bright) == 1 and ratio.shape == image.shape[:2]
    return data, image, ratio, bright


def _tmap_ratio(primary_level: int, level: int) -> float:
    """The HDR/SDR ratio of a default tmap (0 to 2 stops, gamma 1, offsets 1/64) at a gain map's level."""
    sdr = (primary_level / 255) ** 2.2
    return ((sdr + 1 / 64) * 2 ** (2 * level / 255) - 1 / 64) / sdr


# the iPhone's maker note tags by default: 33 = 1.02 (at least 1), 48 = 0.0064 (at most 0.01)
APPLE_STOPS = -70 * 0.0064 + 3.0


@pytest.mark.parametrize("rotation, mirror", [(0, None), (90, None), (270, None), (0, 0), (0, 1), (90, 0)])
def test_an_iphone_hdr_heic_comes_back_ultra_hdr_showing_the_hdr_apples_formula_gives(tmp_path, rotation, mirror):
    """An iPhone's gain map (an auxiliary image, its headroom in the maker note) was dropped: the
    photo came back an SDR JPEG. Its Ultra HDR gain map, applied by hdrgm's formula to the
    output's primary, gives Apple's HDR/SDR ratio, 1 + (headroom - 1) * gain, within 3% (the gain
    map's JPEG at quality 95, about two of its levels, 0.02 stops); with the primary turned by its
    irot or imir, the gain map is turned with it (libheif turns the primary alone): the quarter
    bright in the primary is the one the gain map brightens most, wherever it ends up."""
    primary = np.full((48, 64, 3), 60, np.uint8)
    primary[:24, :32] = 200
    apple_levels = np.full((24, 32), 90, np.uint8)
    apple_levels[:12, :16] = 250  # the primary's bright quarter
    path = apple_hdr_heic(tmp_path / "iphone.heic", primary, apple_levels, rotation=rotation, mirror=mirror)
    data, image, ratio, bright = _gain_map_round_trip(path)
    for (y, x), level in zip(CORNERS, np.where(bright, 250, 90)):
        apple = 1 + (2 ** APPLE_STOPS - 1) * _rec709_linear(level)
        assert abs(ratio[y, x] / apple - 1) < 0.03, (y, x, ratio[y, x], apple)
    entries, _, xmp = _mp_index(data)
    assert b'hdrgm:Version="1.0"' in xmp and ISO_GAIN_MAP_SIGNATURE in data[entries[0]["Size"]:]


def test_an_ios_18_hdr_heic_with_an_iso_tmap_item_keeps_its_apple_gain_map(tmp_path):
    """iOS 18 adds an ISO 21496-1 tmap item derived from the primary and the same gain map, which
    stays the primary's Apple auxiliary image (libheif 1.17 refused such files: "Too many
    auxiliary image references"); pillow-heif 1.8.1 reads it, and the photo comes back Ultra HDR
    by Apple's gain map and maker note as before iOS 18."""
    path = apple_hdr_heic(tmp_path / "ios18.heic", np.full((48, 64, 3), 120, np.uint8),
                          np.full((24, 32), 200, np.uint8), tmap=True)
    info = probe_image(path, 10**8)
    shown, _, fmt, data = hdr_round_trip(path, scale=2)
    assert info.gain_map is not None and hdr_metadata(info, shown, "keep", fmt) == {"hdr": "gain map"}
    assert abs(_hdrgm(data[_mp_index(data)[0][0]["Size"]:], "HDRCapacityMax") - APPLE_STOPS) < 1e-4


def test_an_ios_18_hdr_heic_of_48_tiles_with_thumbnails_comes_back_ultra_hdr_as_one_of_single_pictures(tmp_path):
    """As an iPhone writes it: the photo a grid of 48 tiles (8x6, of 64 here, 512 there), the gain
    map one of 12, two HEVC thumbnails, Exif and a tmap item: the same picture, gain map and
    headroom as the file holding each as one picture. The builder dropped the tiles' references
    beside a tmap item (a grid of no tiles, no gain map read: no iPhone's file)."""
    photo, levels = np.full((384, 512, 3), 120, np.uint8), np.full((192, 256), 90, np.uint8)
    photo[:192, :256], levels[:96, :128] = (40, 200, 90), 250
    results = []
    for name, tile in (("single.heic", 0), ("grids.heic", 64)):
        path = apple_hdr_heic(tmp_path / name, photo, levels, tmap=True, tile=tile, thumbnails=2 if tile else 0)
        info = probe_image(path, 10**8)
        _, image, fmt, data = hdr_round_trip(path)
        gain_map = cv2.imdecode(np.frombuffer(info.gain_map.jpeg, np.uint8), cv2.IMREAD_UNCHANGED)
        results.append((image.astype(int), gain_map.astype(int), fmt,
                        _hdrgm(data[_mp_index(data)[0][0]["Size"]:], "HDRCapacityMax")))
    (single, single_map, single_fmt, single_stops), (grid, grid_map, grid_fmt, grid_stops) = results
    assert (grid_fmt, grid_map.shape, grid_stops) == (single_fmt, single_map.shape, single_stops) == (
        "jpeg", (192, 256), pytest.approx(APPLE_STOPS, abs=1e-4))
    # away from the coloured quarter's edge, which each coding's subsampled chroma blurs its own way
    far_from_its_edge = np.ones((192, 256), np.uint8)  # the gain map's scale
    far_from_its_edge[88:104], far_from_its_edge[:, 120:136] = 0, 0
    for ours, theirs in ((grid, single), (grid_map, single_map)):
        compared = cv2.resize(far_from_its_edge, ours.shape[1::-1], interpolation=cv2.INTER_NEAREST) == 1
        assert np.abs(ours - theirs)[compared].max() <= 6


@pytest.mark.parametrize("hdr, requested, fmt, note", [
    ("sdr", None, "jpeg", 'hdr "sdr" was asked: the Apple HDR photo\'s gain map was left out'),
    ("keep", "png", "png", "png holds no gain map: the Apple HDR photo's gain map was left out"),
    ("keep", "webp", "webp", "webp holds no gain map"),
])
def test_an_iphone_hdr_heic_without_its_gain_map_says_so(tmp_path, hdr, requested, fmt, note):
    path = apple_hdr_heic(tmp_path / "iphone.heic", np.full((48, 64, 3), 120, np.uint8), np.full((24, 32), 200,
                                                                                                 np.uint8))
    info = probe_image(path, 10**8)
    shown, image, chosen, data = hdr_round_trip(path, hdr, requested, scale=2)
    metadata = hdr_metadata(info, shown, hdr, chosen)
    assert chosen == fmt and metadata["hdr"] is None and metadata["hdr_note"].startswith(note)
    assert b"hdr-gain-map" not in data and ISO_GAIN_MAP_SIGNATURE not in data


@pytest.mark.parametrize("maker_tags, gain_map, note", [
    ({48: Fraction(64, 10000)}, (24, 32), "the Apple HDR photo's maker note states no headroom (its tag 33): its "
                                          "SDR picture was upscaled alone"),
    (None, (49, 64), "the Apple HDR photo's gain map is wider or higher than its picture: its SDR picture was "
                     "upscaled alone"),
])
def test_an_iphone_hdr_heic_whose_gain_map_cannot_be_kept_comes_back_sdr_saying_why(tmp_path, maker_tags, gain_map,
                                                                                   note):
    path = apple_hdr_heic(tmp_path / "iphone.heic", np.full((48, 64, 3), 120, np.uint8),
                          np.full(gain_map, 200, np.uint8), maker_tags=maker_tags)
    info = probe_image(path, 10**8)
    shown, _, fmt, data = hdr_round_trip(path, scale=2)
    assert fmt == "jpeg" and info.gain_map is None and b"hdr-gain-map" not in data
    assert hdr_metadata(info, shown, "keep", fmt) == {"hdr": None, "hdr_note": note}


def _quarter_bright_android_heic(path: Path, turns: tuple = ()) -> Path:
    """An Android HDR HEIC whose primary's top-left quarter is bright and its gain map's (levels
    230, else 40; ISO 21496-1: 0 to 2 stops, gamma 1, offsets 1/64), the gain map stored turned
    back by ``turns`` (its own irot) so that it shows upright."""
    primary = np.full((48, 64, 3), 60, np.uint8)
    primary[:24, :32] = 200
    levels = np.full((24, 32), 40, np.uint8)
    levels[:12, :16] = 230
    stored = np.rot90(levels, -turns[0][8]) if turns else levels
    return iso_hdr_heic(path, primary, np.ascontiguousarray(stored), gain_map_turns=turns)


@pytest.mark.parametrize("turns", [(), (struct.pack(">I4sB", 9, b"irot", 1),), (struct.pack(">I4sB", 9, b"irot", 3),)])
def test_an_android_hdr_heic_comes_back_ultra_hdr_showing_the_hdr_its_tmap_states(tmp_path, turns):
    """A HEIC whose gain map is a hidden item linked by an ISO 21496-1 tmap item (Android 15 on)
    came back an SDR JPEG. Its Ultra HDR gain map, applied by hdrgm's formula to the output's
    primary, gives the HDR/SDR ratio the tmap's numbers give its levels within 3%, the gain map
    turned upright by its own irot: its bright quarter under the primary's."""
    data, image, ratio, bright = _gain_map_round_trip(_quarter_bright_android_heic(tmp_path / "android.heic", turns))
    assert bright == [True, False, False, False]
    for (y, x), level in zip(CORNERS, (230, 40, 40, 40)):
        tmap = _tmap_ratio(image[y, x, 1], level)
        assert abs(ratio[y, x] / tmap - 1) < 0.03, (y, x, ratio[y, x], tmap)
    gain_map = data[_mp_index(data)[0][0]["Size"]:]
    assert ISO_GAIN_MAP_SIGNATURE + iso_gain_map_metadata(0, 2, [(0, 2, 1, Fraction(1, 64), Fraction(1, 64))]) \
        in gain_map


@pytest.mark.parametrize("hdr, requested, fmt, note", [
    ("sdr", None, "jpeg", 'hdr "sdr" was asked: the ISO 21496-1 HDR photo\'s gain map was left out'),
    ("keep", "png", "png", "png holds no gain map: the ISO 21496-1 HDR photo's gain map was left out"),
    ("keep", "webp", "webp", "webp holds no gain map"),
])
def test_an_android_hdr_heic_without_its_gain_map_says_so(tmp_path, hdr, requested, fmt, note):
    path = _quarter_bright_android_heic(tmp_path / "android.heic")
    info = probe_image(path, 10**8)
    shown, image, chosen, data = hdr_round_trip(path, hdr, requested, scale=2)
    metadata = hdr_metadata(info, shown, hdr, chosen)
    assert chosen == fmt and metadata["hdr"] is None and metadata["hdr_note"].startswith(note)
    assert b"hdr-gain-map" not in data and ISO_GAIN_MAP_SIGNATURE not in data


IROT = {turns: struct.pack(">I4sB", 9, b"irot", turns) for turns in (1, 3)}
IMIR_LEFT_RIGHT = struct.pack(">I4sB", 9, b"imir", 1)


@pytest.mark.parametrize("primary_turns, gain_map_turns", [
    ((), ()), ((IROT[1],), ()), ((IROT[3],), ()), ((IMIR_LEFT_RIGHT,), ()), ((IROT[1],), (IROT[1],)),
    ((IMIR_LEFT_RIGHT,), (IMIR_LEFT_RIGHT,)),
])
def test_an_avif_hdr_photo_comes_back_ultra_hdr_showing_the_hdr_its_tmap_states(tmp_path, primary_turns,
                                                                                gain_map_turns):
    """An AVIF whose gain map is a hidden AV1 item linked by an ISO 21496-1 tmap item (libavif's
    avifenc --gain-map, Chrome) came back an SDR JPEG, its gain map not read. Its Ultra HDR gain
    map, applied by hdrgm's formula to the output's primary, gives the HDR/SDR ratio the tmap's
    numbers give its levels within 3%: with the primary turned by its irot or imir (which Pillow
    gives as its EXIF orientation), the gain map is turned with it once, whether it states them
    too (as libavif writes it) or none, its bright quarter under the primary's wherever it ends
    up. A gain map stating its primary's turns was turned twice."""
    primary = np.full((48, 64, 3), 60, np.uint8)
    primary[:24, :32] = 200
    levels = np.full((24, 32), 40, np.uint8)
    levels[:12, :16] = 230
    path = iso_hdr_avif(tmp_path / "chrome.avif", primary, levels, primary_turns=primary_turns,
                        gain_map_turns=gain_map_turns)
    _, image, ratio, bright = _gain_map_round_trip(path)
    for (y, x), level in zip(CORNERS, np.where(bright, 230, 40)):
        tmap = _tmap_ratio(image[y, x, 1], level)
        assert abs(ratio[y, x] / tmap - 1) < 0.03, (y, x, ratio[y, x], tmap)


def test_a_heic_without_a_gain_map_comes_back_as_before(tmp_path):
    path = tmp_path / "plain.heic"
    Image.new("RGB", (32, 16), (120, 120, 120)).save(path, "HEIF", quality=95)
    info = probe_image(path, 10**8)
    shown, _, fmt, data = hdr_round_trip(path)
    assert (info.gain_map, info.gain_map_left_out) == (None, None)
    assert hdr_metadata(info, shown, "keep", fmt) == {"hdr": None} and data == image_round_trip(path)[3]


def test_a_ten_bit_iphone_hdr_heic_comes_back_png_saying_jpeg_keeps_its_gain_map(tmp_path):
    """A 10-bit photo's default is a 16-bit PNG: its note said a result wider than JPEG's 65,535
    pixels was png, of a 64x48 photo."""
    path = apple_hdr_heic(tmp_path / "iphone10.heic", np.full((48, 64, 3), 600, np.uint16),
                          np.full((24, 32), 200, np.uint8))
    info = probe_image(path, 10**8)
    shown, image, fmt, _ = hdr_round_trip(path, scale=2)
    assert fmt == "png" and image.dtype == np.uint16 and info.gain_map is not None
    assert hdr_metadata(info, shown, "keep", fmt) == {
        "hdr": None, "hdr_note": "png holds no gain map: the Apple HDR photo's gain map was left out and its SDR "
                                 "picture upscaled alone; ask jpeg to keep it HDR"}
    assert b"hdr-gain-map" in hdr_round_trip(path, requested="jpeg", scale=2)[3]  # as the note says


@pytest.mark.parametrize("data_space, mode", [(b"CMYK", "CMYK"), (b"GRAY", "L"), (b"Lab ", "RGB")],
                         ids=["cmyk", "gray", "lab"])
def test_a_cicp_tag_in_a_profile_of_other_samples_than_rgb_leaves_the_photo_sdr(tmp_path, data_space, mode):
    """ICC.1:2022 (9.2.17) lets a cicp tag stand only in an RGB, YCbCr or XYZ profile, and its
    matrix 0 speaks of RGB samples: one in a CMYK, gray or Lab profile states nothing of the
    photo's samples. A CMYK JPEG with one stating PQ came back a PQ PNG (its CMYK inverted to RGB
    as if PQ levels) and metadata.input.hdr said smpte2084; it is the SDR JPEG it was."""
    profile = bytearray(bt2100_icc(16))
    profile[16:20] = data_space
    path = tmp_path / "tagged.jpg"
    level = (148,) * len(mode) if len(mode) > 1 else 148
    Image.new(mode, (32, 16), level).save(path, "JPEG", icc_profile=bytes(profile))
    info = probe_image(path, 10**8)
    assert transfer_name(info) is None and info.icc_profile == bytes(profile)
    assert hdr_round_trip(path)[2] == "jpeg"
