"""An ISO 21496-1 HDR photo's gain map, a hidden item linked by a tmap item, read from its boxes:
an Android HEIC's (HEVC) and an AVIF's (AV1, as libavif writes it); and why it is left out where
it cannot be kept."""

import io
import re
import struct
from fractions import Fraction

import cv2
import numpy as np
import pytest
from PIL import Image

from tests.helpers import iso_gain_map_metadata, iso_hdr_avif, iso_hdr_heic, meta_box_damaged
from tmlsr_ray.errors import InputError
from tmlsr_ray.pipeline.image import probe_image
from tmlsr_ray.pipeline.iso_hdr import iso_gain_map, item_decoder
from tmlsr_ray.pipeline.nclx import icc_from_nclx

DEFAULT_CHANNEL = (0, 2, 1, Fraction(1, 64), Fraction(1, 64))


def _android_heic(path, gain_map=(24, 32), **options):
    levels = np.full(gain_map, 40, np.uint8)
    levels[:gain_map[0] // 2, :gain_map[1] // 2] = 230
    return iso_hdr_heic(path, np.full((48, 64, 3), 120, np.uint8), levels, **options)


def _hdrgm(xmp: bytes, name: str) -> str:
    found = re.search(rb"hdrgm:" + name.encode() + rb'="([-0-9.]+)"', xmp)
    return found.group(1).decode() if found else re.search(
        rb"<hdrgm:" + name.encode() + rb"><rdf:Seq>(.*?)</rdf:Seq>", xmp).group(1).decode()


def test_the_gain_map_is_the_hidden_items_picture_cropped_to_its_clean_aperture(tmp_path):
    """pillow-heif codes a 32x24 map as a 64x64 picture and a clap property: the map is the
    window, its bright quarter where it was stored."""
    info = probe_image(_android_heic(tmp_path / "android.heic"), 10**8)
    assert info.gain_map_left_out is None
    levels = cv2.imdecode(np.frombuffer(info.gain_map.jpeg, np.uint8), cv2.IMREAD_UNCHANGED)
    assert levels.shape == (24, 32)
    assert abs(int(levels[:12, :16].mean()) - 230) <= 2 and abs(int(levels[12:, 16:].mean()) - 40) <= 2


@pytest.mark.parametrize("gain_map", [(17, 100), (45, 61)])
def test_a_gain_map_of_any_width_is_kept(tmp_path, gain_map):
    """FFmpeg holds a picture's width rounded up to its row alignment (up to 64) to max_pixels: a
    map 100 wide was refused as undecodable where its limit was its ispe's area."""
    levels = np.full(gain_map, 200, np.uint8)
    path = iso_hdr_heic(tmp_path / "android.heic", np.full((120, 160, 3), 120, np.uint8), levels)
    info = probe_image(path, 10**8)
    assert info.gain_map_left_out is None
    stored = cv2.imdecode(np.frombuffer(info.gain_map.jpeg, np.uint8), cv2.IMREAD_UNCHANGED)
    assert stored.shape == gain_map and abs(int(stored.mean()) - 200) <= 2


QUARTER_TURN = struct.pack(">I4sB", 9, b"irot", 1)
THREE_QUARTER_TURNS = struct.pack(">I4sB", 9, b"irot", 3)
LEFT_HALF = struct.pack(">I4s", 40, b"clap") + struct.pack(">IIIIiIiI", 32, 1, 64, 1, -16, 1, 0, 1)


@pytest.mark.parametrize("properties, shape", [((LEFT_HALF, QUARTER_TURN), (32, 64)),
                                               ((QUARTER_TURN, LEFT_HALF), (64, 32))])
def test_a_gain_maps_clap_and_irot_are_applied_in_the_order_it_lists_them(tmp_path, properties, shape):
    """As libheif applies them, and so the primary (ISO/IEC 23008-12 requires clap first): the
    left half of a 64x64 map turned is 64 wide, the left half of the map turned is 32 wide. Its
    bright top-left quarter, turned anticlockwise, is at the bottom left."""
    levels = np.full((64, 64), 40, np.uint8)
    levels[:32, :32] = 230
    path = iso_hdr_heic(tmp_path / "photo.heic", np.full((96, 96, 3), 120, np.uint8), levels, gain_map_turns=properties)
    stored = cv2.imdecode(np.frombuffer(probe_image(path, 10**8).gain_map.jpeg, np.uint8), cv2.IMREAD_UNCHANGED)
    assert stored.shape == shape
    assert abs(int(stored[-8:, :8].mean()) - 230) <= 2 and abs(int(stored[:8, -8:].mean()) - 40) <= 2


def _marked_levels(shape):
    """A gain map's levels, 40 but for a bright top-left quarter (230) and a mid bottom-right corner (120)."""
    levels = np.full(shape, 40, np.uint8)
    levels[:shape[0] // 2, :shape[1] // 2] = 230
    levels[-8:, -8:] = 120
    return levels


def _kept_levels(path, primary_size=(160, 112)):
    gain_map, note = iso_gain_map(path, primary_size)
    assert note is None
    return cv2.imdecode(np.frombuffer(gain_map.jpeg, np.uint8), cv2.IMREAD_UNCHANGED)


def test_a_gain_map_stored_as_a_grid_is_its_tiles_laid_out_row_by_row_and_cropped(tmp_path):
    """Phones store a large gain map as a grid of tiles: 150x100 in 3x2 tiles of 64, the right and
    bottom ones cropped. It was left out ('coded as grid')."""
    path = iso_hdr_heic(tmp_path / "android.heic", np.full((112, 160, 3), 120, np.uint8), _marked_levels((100, 150)),
                        gain_map_tile=64)
    Image.open(path).load()  # pillow-heif reads the file's primary as before
    levels = _kept_levels(path)
    assert levels.shape == (100, 150)
    assert abs(levels[:50, :75].mean() - 230) <= 2 and abs(levels[50:92, 75:142].mean() - 40) <= 2
    assert abs(levels[-6:, -6:].mean() - 120) <= 3


def test_a_grid_gain_maps_own_irot_turns_the_whole_map(tmp_path):
    """The grid item's irot turns the laid-out map: its bright top-left quarter, turned
    anticlockwise, is at the bottom left."""
    path = iso_hdr_heic(tmp_path / "android.heic", np.full((160, 112, 3), 120, np.uint8), _marked_levels((100, 150)),
                        gain_map_tile=64, gain_map_turns=(QUARTER_TURN,))
    levels = _kept_levels(path, (112, 160))
    assert levels.shape == (150, 100)
    assert abs(levels[-70:, :45].mean() - 230) <= 2 and abs(levels[:70, 55:].mean() - 40) <= 2


GRID_OF_6 = struct.pack(">BBBBHH", 0, 0, 1, 2, 150, 100)


@pytest.mark.parametrize("grid, why", [
    (struct.pack(">BBBBHH", 0, 0, 2, 2, 150, 100), "its grid of 3x3 tiles links 6"),
    (struct.pack(">BBBBHH", 0, 0, 1, 2, 150, 90), "its grid makes a 150x90 picture and states 150x100"),
    (struct.pack(">BBBBHH", 0, 0, 2, 1, 150, 100), "its grid's 64x64 tiles do not cover its 150x100 picture in 3x2"),
    (struct.pack(">BBBBHH", 1, 0, 1, 2, 150, 100), "its grid item's ImageGrid is cut short or of a version past 0"),
    (struct.pack(">BBBBHH", 0, 1, 1, 2, 150, 100), "its grid item's ImageGrid is cut short or of a version past 0"),
])
def test_a_grid_gain_map_that_states_a_layout_its_tiles_do_not_make_gives_a_note(tmp_path, grid, why):
    path = iso_hdr_heic(tmp_path / "android.heic", np.full((112, 160, 3), 120, np.uint8), _marked_levels((100, 150)),
                        gain_map_tile=64)
    path = _with_bytes_replaced(path, GRID_OF_6, grid)
    assert iso_gain_map(path, (160, 112)) == (None, DAMAGED_NOTE.format(why))


@pytest.mark.parametrize("tile", [256, 512])
def test_a_grid_gain_map_of_one_tile_larger_than_the_map_is_read_cropped(tmp_path, tile):
    """A 150x100 map in one tile of 256 or 512 (a writer's fixed tile size), cropped as libheif
    crops a photo's: it was refused ('tiles do not cover'), its tile being over the map by more than
    an HEVC block, though no larger than its primary."""
    path = iso_hdr_heic(tmp_path / "android.heic", np.full((576, 640, 3), 120, np.uint8), _marked_levels((100, 150)),
                        gain_map_tile=tile)
    levels = _kept_levels(path, (640, 576))
    assert levels.shape == (100, 150)
    assert abs(levels[:50, :75].mean() - 230) <= 2 and abs(levels[-6:, -6:].mean() - 120) <= 3


def test_a_grid_gain_maps_tile_larger_than_its_primary_is_refused_saying_so(tmp_path):
    """A 150x100 map in one tile of 256 beside a 160x112 primary: what is decoded stays within the
    primary's size (rounded up to HEVC's blocks), as a map that is no grid."""
    path = iso_hdr_heic(tmp_path / "android.heic", np.full((112, 160, 3), 120, np.uint8), _marked_levels((100, 150)),
                        gain_map_tile=256)
    assert iso_gain_map(path, (160, 112)) == (None, DAMAGED_NOTE.format(
        "its grid's 256x256 tiles are larger than its 160x112 primary"))


def test_a_grid_gain_map_whose_tiles_stop_short_of_its_picture_gives_a_note(tmp_path):
    """Its ispe and ImageGrid say 200 wide; 3 tiles of 64 make 192."""
    path = iso_hdr_heic(tmp_path / "android.heic", np.full((112, 224, 3), 120, np.uint8), _marked_levels((100, 150)),
                        gain_map_tile=64)
    path = _with_bytes_replaced(path, GRID_OF_6, struct.pack(">BBBBHH", 0, 0, 1, 2, 200, 100))
    data = path.read_bytes()
    path.write_bytes(data.replace(struct.pack(">4sIII", b"ispe", 0, 150, 100),
                                  struct.pack(">4sIII", b"ispe", 0, 200, 100)))
    assert iso_gain_map(path, (224, 112)) == (None, DAMAGED_NOTE.format(
        "its grid's 64x64 tiles do not cover its 200x100 picture in 2x3"))


def test_a_grid_gain_map_of_more_tiles_than_the_bound_is_refused_before_any_is_read(tmp_path):
    """1,056 tiles (a 2112x2048 map of 64x64 ones, each alike): over 1,024, refused with nothing
    decoded. libheif refuses a file of over 1,000 items whole, so it is read alone."""
    path = iso_hdr_heic(tmp_path / "android.heic", np.full((2048, 2112, 3), 120, np.uint8),
                        np.full((2048, 2112), 40, np.uint8), gain_map_tile=64)
    assert iso_gain_map(path, (2112, 2048)) == (None, DAMAGED_NOTE.format("its grid item links 1,056 tiles, not 1 to "
                                                                          "1,024"))


def test_a_grid_gain_maps_tile_coded_otherwise_than_in_hevc_is_named(tmp_path):
    path = iso_hdr_heic(tmp_path / "android.heic", np.full((112, 160, 3), 120, np.uint8), _marked_levels((100, 150)),
                        gain_map_tile=64)
    data = path.read_bytes()
    last_tile = data.index(struct.pack(">HH4s", 9, 0, b"hvc1"))
    path.write_bytes(data[:last_tile] + struct.pack(">HH4s", 9, 0, b"j2k1") + data[last_tile + 8:])
    assert iso_gain_map(path, (160, 112)) == (None, "the ISO 21496-1 HDR photo's gain map is coded as j2k1, and only "
                                                    "HEVC (what phones write) and AV1 (libavif's) ones are read")


def test_a_gain_map_of_limited_range_levels_is_read_at_full_range_levels(tmp_path):
    """As libheif reads a picture whose nclx states limited range: 16 to 235 made 0 to 255."""
    path = _android_heic(tmp_path / "android.heic")
    data = bytearray(path.read_bytes())
    gain_map_colour = data.index(b"colrnclx", data.index(b"colrnclx") + 1)  # the primary's first
    assert data[gain_map_colour + 14] & 0x80
    data[gain_map_colour + 14] &= 0x7F
    path.write_bytes(bytes(data))
    stored = cv2.imdecode(np.frombuffer(probe_image(path, 10**8).gain_map.jpeg, np.uint8), cv2.IMREAD_UNCHANGED)
    assert abs(int(stored[:12, :16].mean()) - 249) <= 2 and abs(int(stored[12:, 16:].mean()) - 28) <= 2


def test_a_gain_map_coded_at_limited_range_levels_is_expanded_once(tmp_path):
    """A gray map coded in 4:2:0 at limited range (nclx and HEVC VUI both say so): FFmpeg's
    conversion to gray expanded it, and the nclx's range expanded it again (230 read 248, 40 read 28)."""
    levels = np.full((24, 32, 3), 40, np.uint8)
    levels[:12, :16] = 230
    path = iso_hdr_heic(tmp_path / "android.heic", np.full((48, 64, 3), 120, np.uint8), levels,
                        gain_map_range="limited")
    stored = cv2.imdecode(np.frombuffer(probe_image(path, 10**8).gain_map.jpeg, np.uint8), cv2.IMREAD_UNCHANGED)
    assert abs(int(stored[:12, :16].mean()) - 230) <= 2 and abs(int(stored[12:, 16:].mean()) - 40) <= 2


def test_a_ten_bit_gain_map_is_read_at_its_eight_bit_levels(tmp_path):
    levels = np.full((24, 32), 160, np.uint16)
    levels[:12, :16] = 920
    path = iso_hdr_heic(tmp_path / "android.heic", np.full((48, 64, 3), 120, np.uint8), levels)
    stored = cv2.imdecode(np.frombuffer(probe_image(path, 10**8).gain_map.jpeg, np.uint8), cv2.IMREAD_UNCHANGED)
    assert abs(int(stored[:12, :16].mean()) - 230) <= 2 and abs(int(stored[12:, 16:].mean()) - 40) <= 2


def test_a_gain_map_of_three_channels_comes_back_in_colour(tmp_path):
    """Where the metadata states three channels the map is one of red, green and blue gains."""
    levels = np.full((24, 32, 3), (40, 120, 200), np.uint8)  # BGR
    metadata = iso_gain_map_metadata(0, 2, [DEFAULT_CHANNEL] * 2 + [(0, 1, 1, 0, 0)])
    path = iso_hdr_heic(tmp_path / "android.heic", np.full((48, 64, 3), 120, np.uint8), levels, metadata=metadata)
    stored = cv2.imdecode(np.frombuffer(probe_image(path, 10**8).gain_map.jpeg, np.uint8), cv2.IMREAD_UNCHANGED)
    assert stored.shape == (24, 32, 3) and np.abs(stored.mean(axis=(0, 1)) - (40, 120, 200)).max() < 6


def test_three_channels_of_numbers_are_mirrored_in_hdrgm_as_lists_and_written_through(tmp_path):
    metadata = iso_gain_map_metadata(Fraction(1, 2), 3, [DEFAULT_CHANNEL, (0, 3, 1, 0, 0), (-1, 2, 2, 0, 0)])
    info = probe_image(_android_heic(tmp_path / "android.heic", metadata=metadata), 10**8)
    xmp = info.gain_map.metadata
    assert (_hdrgm(xmp, "HDRCapacityMin"), _hdrgm(xmp, "HDRCapacityMax")) == ("0.500000", "3.000000")
    assert _hdrgm(xmp, "GainMapMax") == "<rdf:li>2.000000</rdf:li><rdf:li>3.000000</rdf:li><rdf:li>2.000000</rdf:li>"
    assert _hdrgm(xmp, "GainMapMin") == "<rdf:li>0.000000</rdf:li><rdf:li>0.000000</rdf:li><rdf:li>-1.000000</rdf:li>"
    assert b"urn:iso:std:iso:ts:21496:-1\0" + metadata in info.gain_map.jpeg


@pytest.mark.parametrize("flags, colour, profile", [
    (0x00, b"nclx" + struct.pack(">HHHB", 9, 16, 9, 0x80), icc_from_nclx(9, 8)),  # BT.2020 PQ: linear BT.2020
    (0x00, b"prof" + b"an ICC profile", b"an ICC profile"),
    (0x40, b"nclx" + struct.pack(">HHHB", 9, 16, 9, 0x80), None),  # applied in the base's colour space
    (0x00, b"", None),  # the alternate's colour unstated: the base's
])
def test_a_gain_map_applied_in_the_alternate_colour_space_carries_its_icc_profile(tmp_path, flags, colour, profile):
    """Without ISO 21496-1's use_base_colour_space flag the gain map is applied in the alternate
    picture's colour space, the tmap item's colr: an Ultra HDR JPEG's gain map states it in its ICC
    profile (libultrahdr reads no such gain map without one)."""
    metadata = iso_gain_map_metadata(0, 2, [DEFAULT_CHANNEL], flags=flags)
    path = _android_heic(tmp_path / "android.heic", metadata=metadata, tone_map_colour=colour)
    gain_map = probe_image(path, 10**8).gain_map
    with Image.open(io.BytesIO(gain_map.jpeg)) as img:
        assert img.info.get("icc_profile") == profile


def _common_denominator(numbers) -> bytes:
    return struct.pack(">HHBI", 0, 0, 0x48, 64) + struct.pack(">II", *numbers[:2]) + struct.pack(">iiIii", *numbers[2:])


def test_numbers_over_one_common_denominator_are_read(tmp_path):
    metadata = _common_denominator([0, 160, 0, 160, 64, 1, 1])  # headroom and gain 2.5 stops
    info = probe_image(_android_heic(tmp_path / "android.heic", metadata=metadata), 10**8)
    assert (_hdrgm(info.gain_map.metadata, "GainMapMax"), _hdrgm(info.gain_map.metadata, "OffsetSDR")) == (
        "2.500000", "0.015625")


def test_numbers_over_one_common_denominator_are_written_each_its_own_fraction(tmp_path):
    """libultrahdr's common denominator (flag 0x08) is reserved in ISO 21496-1 as published: Skia
    and libavif read each number as its own fraction, and read the segment written through wrong."""
    metadata = _common_denominator([0, 160, 0, 160, 64, 1, 1])
    gain_map = probe_image(_android_heic(tmp_path / "android.heic", metadata=metadata), 10**8).gain_map
    stops, offset = Fraction(5, 2), Fraction(1, 64)
    assert b"urn:iso:std:iso:ts:21496:-1\0" + iso_gain_map_metadata(0, stops, [(0, stops, 1, offset, offset)]) \
        + b"\xff" in gain_map.jpeg


def _cut_mdat(path):
    data = path.read_bytes()
    path.write_bytes(data[:-10])
    return path


NOT_DECODING = "the ISO 21496-1 HDR photo's gain map could not be read whole (its coded data does not decode to " \
               "the picture its properties state)"


@pytest.mark.parametrize("options, damage, note", [
    ({"metadata": iso_gain_map_metadata(0, 2, [DEFAULT_CHANNEL])[:20]}, None,
     "the ISO 21496-1 HDR photo's tmap metadata could not be read (cut short or a zero denominator)"),
    ({"metadata": iso_gain_map_metadata(0, 2, [DEFAULT_CHANNEL])[:-4] + bytes(4)}, None,
     "the ISO 21496-1 HDR photo's tmap metadata could not be read (cut short or a zero denominator)"),
    ({"metadata": iso_gain_map_metadata(2, 0, [DEFAULT_CHANNEL])}, None,  # an HDR base
     "the ISO 21496-1 HDR photo's tmap metadata could not be read (an HDR base picture, a gamma of 0 or less, or "
     "a maximum gain under the minimum)"),
    ({"metadata": iso_gain_map_metadata(0, 2, [DEFAULT_CHANNEL], flags=0x44)}, None,
     "the ISO 21496-1 HDR photo's tmap metadata could not be read (a version past 0 or a gain map from an HDR "
     "base picture)"),
    ({"metadata": iso_gain_map_metadata(0, 2, [(0, 2**31 - 1, 1, 0, 0)])}, None,  # 2 to it is infinite in a float
     "the ISO 21496-1 HDR photo's tmap metadata could not be read (a headroom or gain of 128 stops or more)"),
    ({"metadata": iso_gain_map_metadata(0, 2, [(-200, 2, 1, 0, 0)])}, None,  # 2 to it is 0 in a float
     "the ISO 21496-1 HDR photo's tmap metadata could not be read (a headroom or gain of 128 stops or more)"),
    ({"without": b"hvcC"}, None, NOT_DECODING),
    ({"without": b"ispe"}, None, "the ISO 21496-1 HDR photo's gain map could not be read whole (it states no size "
                                 "(ispe))"),
    ({}, _cut_mdat, "the ISO 21496-1 HDR photo's gain map could not be read whole (its item 2's data is cut short)"),
    ({"coded_as": b"av01"}, None, NOT_DECODING),  # HEVC data, no av1C: not taken for AV1
    ({"coded_as": b"\xffvc1"}, None, "the ISO 21496-1 HDR photo's gain map is coded as \\xffvc1, and only HEVC (what "
                                     "phones write) and AV1 (libavif's) ones are read"),
    ({"gain_map": (49, 64)}, None, "the ISO 21496-1 HDR photo's gain map is wider or higher than its picture"),
])
def test_a_gain_map_that_cannot_be_kept_leaves_the_photo_sdr_saying_why(tmp_path, options, damage, note):
    path = _android_heic(tmp_path / "android.heic", **options)
    info = probe_image(damage(path) if damage else path, 10**8)
    assert (info.gain_map, info.gain_map_left_out) == (None, note)


def test_a_coded_picture_larger_than_its_ispe_is_not_decoded(tmp_path):
    """pillow-heif codes the 32x24 map as 64x64 and states so; an ispe of 64x32 is a lie FFmpeg
    is held to (max_pixels): a hostile SPS's picture is not allocated."""
    path = _android_heic(tmp_path / "android.heic")
    data = path.read_bytes()
    gain_map_extent = data.index(b"ispe", data.index(b"ispe") + 1)  # the primary's first
    path.write_bytes(data[:gain_map_extent + 8] + struct.pack(">II", 64, 32) + data[gain_map_extent + 16:])
    assert probe_image(path, 10**8).gain_map_left_out == NOT_DECODING


DAMAGED_NOTE = "the ISO 21496-1 HDR photo's gain map could not be read whole ({})"


def _with_bytes_replaced(path, old: bytes, new: bytes):
    data = path.read_bytes()
    assert data.count(old) == 1
    path.write_bytes(data.replace(old, new))
    return path


@pytest.mark.parametrize("old, new, why", [
    (struct.pack(">HHHH", 3, 2, 1, 2), struct.pack(">HHHH", 3, 9, 1, 2), "its item references are cut short"),
    (struct.pack(">HHHH", 3, 2, 1, 2), struct.pack(">HHHH", 3, 1, 1, 2), "its tmap item is derived from 1 "
                                                                         "pictures, not 2"),
    (struct.pack(">HHHH", 3, 2, 1, 2), struct.pack(">HHHH", 3, 2, 2, 1), "its tmap item's base picture is not "
                                                                         "its primary picture"),
    (b"\x44\x00\x00\x03", b"\x44\x00\x00\x02", "its item 3 has no location"),  # iloc's item count
    (struct.pack(">HHHH", 3, 2, 1, 2), struct.pack(">HHHH", 3, 2, 1, 1), "its tmap item's gain map is its "
                                                                         "primary picture"),
    (struct.pack(">HHHH", 3, 2, 1, 2), struct.pack(">HHHH", 3, 2, 1, 3), "its tmap item's gain map is its "
                                                                         "tmap item"),
    (struct.pack(">HH4s", 2, 0, b"hvc1"), struct.pack(">HH4s", 7, 0, b"hvc1"), "its item 2 is not listed (iinf)"),
    (b"pitm", b"pitx", "its boxes are cut short or damaged"),
])
def test_damaged_boxes_of_a_tmap_item_give_a_note_not_an_exception(tmp_path, old, new, why):
    """Read alone: libheif refuses most such files whole, before the probe looks for a gain map."""
    path = _with_bytes_replaced(_android_heic(tmp_path / "android.heic"), old, new)
    assert iso_gain_map(path, (64, 48)) == (None, f"the ISO 21496-1 HDR photo's gain map could not be read whole "
                                                  f"({why})")


def test_an_extent_stated_over_the_bound_is_not_read(tmp_path):
    path = _android_heic(tmp_path / "android.heic")
    data = path.read_bytes()
    iloc = data.index(b"iloc")
    entry = data.index(struct.pack(">HHHH", 2, 0, 0, 1), iloc)  # item 2, in the file, one extent
    path.write_bytes(data[:entry + 12] + struct.pack(">I", 0xFFFFFFF0) + data[entry + 16:])
    info = probe_image(path, 10**8)
    assert info.gain_map is None and "states no length or one over 67,108,864 bytes" in info.gain_map_left_out


def test_random_damage_to_the_meta_box_gives_a_gain_map_or_a_note_never_an_exception(tmp_path):
    """200 copies of an Android HEIC, each with 1 to 8 of its meta box's bytes overwritten (a
    fixed seed): counts, sizes, offsets, item ids and types, properties and the tmap's numbers."""
    notes = set()
    for damaged in meta_box_damaged(_android_heic(tmp_path / "android.heic"), tmp_path / "damaged.heic", 200, 21496):
        gain_map, note = iso_gain_map(damaged, (64, 48))
        assert (gain_map is None) == (note is not None) or (gain_map, note) == (None, None)
        assert note is None or note.isprintable()
        notes.add(note)
    assert len(notes) > 10  # the damage reaches the tmap item's boxes, not only what is never read


def test_random_damage_to_a_grid_gain_maps_boxes_gives_a_gain_map_or_a_note_never_an_exception(tmp_path):
    """200 copies of an Android HEIC whose gain map is a grid of 6 tiles, each with 1 to 8 of its
    meta box's bytes overwritten (a fixed seed): the ImageGrid, the tiles' references, locations,
    types and properties among them."""
    path = iso_hdr_heic(tmp_path / "android.heic", np.full((112, 160, 3), 120, np.uint8), _marked_levels((100, 150)),
                        gain_map_tile=64)
    notes = set()
    for damaged in meta_box_damaged(path, tmp_path / "damaged.heic", 200, 23008):
        gain_map, note = iso_gain_map(damaged, (160, 112))
        assert note is None or note.isprintable()
        notes.add(note)
    assert len([note for note in notes if note and "grid" in note]) >= 3  # the damage reaches the grid's own boxes


def _chrome_avif(path, gain_map, **options):
    return iso_hdr_avif(path, np.full((48, 64, 3), 120, np.uint8), gain_map, **options)


@pytest.mark.parametrize("bits", [8, 10, 12])
def test_an_avifs_av1_gain_map_is_kept_at_its_eight_bit_levels(tmp_path, bits):
    """libavif's gain map, a hidden AV1 item (monochrome here, as avifenc writes a gray one), of 8,
    10 or 12 bits: its bright quarter where it was stored. An AVIF's gain map was not read."""
    levels = _marked_levels((24, 32)).astype(np.uint16) << (bits - 8)
    info = probe_image(_chrome_avif(tmp_path / "chrome.avif", levels, bits=bits), 10**8)
    assert (info.format, info.gain_map_left_out) == ("avif", None)
    stored = cv2.imdecode(np.frombuffer(info.gain_map.jpeg, np.uint8), cv2.IMREAD_UNCHANGED)
    assert stored.shape == (24, 32) and abs(stored[:12, :16].mean() - 230) <= 2
    assert abs(stored[12:16, 16:24].mean() - 40) <= 2 and abs(stored[-6:, -6:].mean() - 120) <= 3


THREE_CHANNELS = iso_gain_map_metadata(0, 2, [DEFAULT_CHANNEL] * 3)


def test_an_avifs_three_channel_gain_map_of_g_b_and_r_samples_comes_back_in_colour(tmp_path):
    """OpenCV's (libavif's) 4:4:4 of matrix 0: its samples are G, B and R, decoded as they are."""
    levels = np.full((24, 32, 3), (40, 120, 200), np.uint8)  # BGR
    gain_map, note = iso_gain_map(_chrome_avif(tmp_path / "chrome.avif", levels, metadata=THREE_CHANNELS), (64, 48))
    stored = cv2.imdecode(np.frombuffer(gain_map.jpeg, np.uint8), cv2.IMREAD_UNCHANGED)
    assert note is None and np.abs(stored.mean(axis=(0, 1)) - (40, 120, 200)).max() < 4


@pytest.mark.parametrize("matrix", [0, 1, 6, 8, 9])
def test_a_three_channel_gain_map_is_read_by_the_matrix_its_item_states(tmp_path, matrix):
    """A map coded in 4:2:0 by BT.709 (1), BT.601 (6), YCgCo (8) or BT.2020 (9), or its G, B and R
    as they are (0), which its nclx states and its bitstream does not: FFmpeg's default, BT.601,
    read BT.709's blue, green and red 200, 120, 40 as 195, 123, 46 and BT.2020's as 193, 116, 43
    (red's 6 levels, 0.05 stops of gain: 3% more HDR), and matrix 0's as 246, 157, 0. YCgCo's,
    which swscale has no matrix for, read as 120, 157, 1 (as BT.709 YCbCr)."""
    levels = np.full((24, 32, 3), (200, 120, 40), np.uint8)  # BGR
    path = _chrome_avif(tmp_path / "chrome.avif", levels, metadata=THREE_CHANNELS, matrix=matrix)
    gain_map, note = iso_gain_map(path, (64, 48))
    stored = cv2.imdecode(np.frombuffer(gain_map.jpeg, np.uint8), cv2.IMREAD_UNCHANGED)
    assert note is None and np.abs(stored.mean(axis=(0, 1)) - (200, 120, 40)).max() < 3


@pytest.mark.parametrize("matrix, name", [(14, "ICtCp"), (11, "SMPTE ST 2085")])
def test_a_three_channel_gain_map_of_a_matrix_nothing_here_reads_is_left_out_with_a_note(tmp_path, matrix, name):
    """ICtCp and the other matrices swscale lacks and no transform here reads (libavif refuses
    them too) were read as the nearest YCbCr, wrong colours in the HDR rendition."""
    levels = np.full((24, 32, 3), (200, 120, 40), np.uint8)  # BGR
    gain_map, note = iso_gain_map(_chrome_avif(tmp_path / "chrome.avif", levels, metadata=THREE_CHANNELS,
                                               matrix=matrix), (64, 48))
    assert gain_map is None and f"{name} (matrix {matrix})" in note


def test_an_avifs_gain_map_as_large_as_its_turned_primary_is_kept_as_stored(tmp_path):
    """libavif gives a turned photo's gain map its primary's irot, and turns both once: Pillow
    gives the primary as stored (64x48, its irot its EXIF orientation). A 64x48 map was turned by
    its irot to 48x64, refused as wider than its picture; a smaller one came back turned twice."""
    path = _chrome_avif(tmp_path / "chrome.avif", _marked_levels((48, 64)), primary_turns=(QUARTER_TURN,),
                        gain_map_turns=(QUARTER_TURN,))
    info = probe_image(path, 10**8)
    stored = cv2.imdecode(np.frombuffer(info.gain_map.jpeg, np.uint8), cv2.IMREAD_UNCHANGED)
    assert (info.orientation, info.gain_map_left_out, stored.shape) == (8, None, (48, 64))
    assert abs(stored[:24, :32].mean() - 230) <= 2 and abs(stored[30:40, 32:50].mean() - 40) <= 2


@pytest.mark.parametrize("primary_turns, gain_map_turns", [((), (QUARTER_TURN,)), ((QUARTER_TURN,), (LEFT_HALF,)),
                                                           ((QUARTER_TURN,), (THREE_QUARTER_TURNS,))])
def test_an_avifs_gain_map_cropped_or_turned_unlike_its_primary_is_left_out(tmp_path, primary_turns, gain_map_turns):
    """libavif refuses a tmap whose gain map's clap, irot or imir are not its primary's; it was
    kept, turned by its own and by its primary's orientation besides."""
    path = _chrome_avif(tmp_path / "chrome.avif", _marked_levels((24, 32)), primary_turns=primary_turns,
                        gain_map_turns=gain_map_turns)
    assert probe_image(path, 10**8).gain_map_left_out == (
        "the ISO 21496-1 HDR photo's gain map is cropped or turned otherwise than its picture (its clap, irot and "
        "imir), which libavif refuses")


def test_an_av1_gain_map_whose_sequence_header_states_more_than_its_ispe_is_not_decoded(tmp_path):
    """Its ispe says 16x12, its coded picture is 32x24: dav1d is held to the ispe (max_pixels, its
    frame_size_limit) and refuses the frame before allocating it."""
    path = _chrome_avif(tmp_path / "chrome.avif", _marked_levels((24, 32)))
    data = path.read_bytes()
    gain_map_extent = data.index(b"ispe", data.index(b"ispe") + 1)  # the primary's first
    path.write_bytes(data[:gain_map_extent + 8] + struct.pack(">II", 16, 12) + data[gain_map_extent + 16:])
    assert iso_gain_map(path, (64, 48)) == (None, NOT_DECODING)


def test_an_av1_gain_maps_first_frame_is_kept_whatever_follows_it(tmp_path):
    """libavif shows an AV1 item's first frame: one followed by a damaged frame (an OBU_FRAME of
    4 bytes of 0xff) is kept; the damaged one was decoded too and the map refused. An item of
    thousands of frames was decoded whole (2,000 of a 1024x1024 map: 4 s and 2 GB held)."""
    path = _chrome_avif(tmp_path / "chrome.avif", _marked_levels((24, 32)),
                        gain_map_trailing_obus=b"\x32\x04" + bytes([255] * 4))
    assert abs(_kept_levels(path, (64, 48))[:12, :16].mean() - 230) <= 2


def test_random_damage_to_an_avifs_meta_box_is_refused_as_input_or_gives_a_gain_map_or_a_note(tmp_path):
    """200 copies of an AVIF HDR photo, each with 1 to 8 of its meta box's bytes overwritten (a
    fixed seed): libavif refuses some whole (an InputError), the others' gain map is kept or its
    note says why, never an exception of another kind."""
    notes = set()
    path = _chrome_avif(tmp_path / "chrome.avif", _marked_levels((24, 32)))
    for damaged in meta_box_damaged(path, tmp_path / "damaged.avif", 200, 21497):
        gain_map, note = iso_gain_map(damaged, (64, 48))
        assert note is None or note.isprintable()
        notes.add(note)
        try:
            probe_image(damaged, 10**8)
        except InputError:
            pass
    assert len(notes) > 10  # the damage reaches the tmap item's boxes, not only what is never read


def test_an_av1_gain_map_whose_data_holds_no_sequence_header_is_decoded_by_its_av1cs(tmp_path):
    """The sequence header may be in the av1C's configOBUs alone: its data, the frame, was not
    decoded without it."""
    path = _chrome_avif(tmp_path / "chrome.avif", np.full((24, 32, 3), (200, 120, 40), np.uint8),
                        metadata=THREE_CHANNELS, matrix=6)
    data = path.read_bytes()
    av1c = data.index(b"av1C", data.index(b"av1C") + 1)  # the primary's first
    sequence_header = data[av1c + 8:av1c - 4 + struct.unpack(">I", data[av1c - 4:av1c])[0]]
    entry = data.index(struct.pack(">HHHH", 2, 0, 0, 1), data.index(b"iloc"))  # item 2, in the file, one extent
    offset, length = struct.unpack(">II", data[entry + 8:entry + 16])
    assert data[offset:offset + len(sequence_header)] == sequence_header  # its data's first OBU
    mdat = data.index(b"mdat") - 4
    data = (data[:entry + 12] + struct.pack(">I", length - len(sequence_header)) + data[entry + 16:mdat]
            + struct.pack(">I", struct.unpack(">I", data[mdat:mdat + 4])[0] - len(sequence_header))
            + data[mdat + 4:offset] + data[offset + len(sequence_header):])
    path.write_bytes(data)
    gain_map, note = iso_gain_map(path, (64, 48))
    stored = cv2.imdecode(np.frombuffer(gain_map.jpeg, np.uint8), cv2.IMREAD_UNCHANGED)
    assert note is None and np.abs(stored.mean(axis=(0, 1)) - (200, 120, 40)).max() < 3


@pytest.mark.parametrize("bits", [8, 10])
def test_an_av1_gain_map_whose_nclx_states_limited_range_is_read_at_full_range_levels(tmp_path, bits):
    """As libavif reads a picture whose nclx states limited range, whatever its sequence header
    says (full here): 16 to 235 made 0 to 255, 230 read 249 and 40 read 28."""
    levels = _marked_levels((24, 32)).astype(np.uint16) << (bits - 8)
    data = bytearray(_chrome_avif(tmp_path / "chrome.avif", levels, bits=bits).read_bytes())
    gain_map_colour = data.index(b"colrnclx", data.index(b"colrnclx") + 1)  # the primary's first
    assert data[gain_map_colour + 14] & 0x80
    data[gain_map_colour + 14] &= 0x7F
    (tmp_path / "chrome.avif").write_bytes(bytes(data))
    stored = _kept_levels(tmp_path / "chrome.avif", (64, 48))
    assert abs(stored[:12, :16].mean() - 249) <= 2 and abs(stored[12:16, 16:24].mean() - 28) <= 2


@pytest.mark.parametrize("name", ["hevc", "libdav1d"])
def test_a_gain_map_item_is_decoded_on_one_thread_as_libavif_and_libheif_decode_one(name):
    """FFmpeg's default is a thread a core: on 16 cores each of a grid's 1,024 small tiles started 16."""
    decoder = item_decoder(name, 64, 64)
    assert decoder.thread_count == 1
