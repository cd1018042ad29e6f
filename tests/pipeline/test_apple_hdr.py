"""An iPhone HDR HEIC's headroom, from its maker note's tags 33 and 48, made hdrgm's."""

import re
from fractions import Fraction

import cv2
import numpy as np
import pytest

from tests.helpers import apple_hdr_heic
from tmlsr_ray.pipeline.apple_hdr import LITTLE_HEADROOM
from tmlsr_ray.pipeline.image import probe_image


def _stated_stops(path) -> float:
    """The headroom (in stops) the probe's gain map states in its XMP."""
    info = probe_image(path, 10**8)
    assert info.gain_map is not None, info.gain_map_left_out
    return float(re.search(rb'hdrgm:HDRCapacityMax="([-0-9.]+)"', info.gain_map.metadata).group(1))


@pytest.mark.parametrize("maker33, maker48, stops", [
    (Fraction(102, 100), Fraction(-60), 3.0),  # 1201.8 stops by the formula: 2 ** 1201.8 overflowed
    (Fraction(1, 2), Fraction(-10**9), 1.8),
    (Fraction(102, 100), Fraction(-1, 10), 3.0),  # 10 stops, a 1024-fold boost, was stated
])
def test_a_negative_tag_48_gives_no_more_headroom_than_apples_formula_at_0(tmp_path, maker33, maker48, stops):
    """Apple's formula lowers the headroom as tag 48 rises from 0 (3 stops at most, 1.8 where tag
    33 is under 1); a negative one, which no iPhone writes, raised it without bound: the probe
    raised OverflowError (an internal error, not a refusal) or stated a boost of 1024."""
    path = apple_hdr_heic(tmp_path / "iphone.heic", np.full((48, 64, 3), 120, np.uint8),
                          np.full((24, 32), 200, np.uint8), maker_tags={33: maker33, 48: maker48})
    assert _stated_stops(path) == pytest.approx(stops)


def test_a_headroom_too_small_to_state_leaves_the_gain_map_out_saying_so(tmp_path):
    """Tag 48 at 7.60066 gives 2e-7 stops: its gain map was kept stating HDRCapacityMax and
    GainMapMax 0 (ISO 21496-1's alternate headroom 0/1), equal to their minimums, which hdrgm
    forbids and a viewer divides by; it boosts nothing visible (under 1%), so it is left out."""
    path = apple_hdr_heic(tmp_path / "iphone.heic", np.full((48, 64, 3), 120, np.uint8),
                          np.full((24, 32), 200, np.uint8),
                          maker_tags={33: Fraction(102, 100), 48: Fraction(76006600, 10**7)})
    info = probe_image(path, 10**8)
    assert (info.gain_map, info.gain_map_left_out) == (None, LITTLE_HEADROOM)


def test_a_damaged_maker_note_entry_leaves_the_headroom_tags_after_it_read(tmp_path):
    """An entry whose value lies past the note's end (tag 10 here, before 33 and 48) ended the
    read of the whole note: the photo came back SDR, saying it stated no headroom; Skia reads on
    past such an entry, as the probe now does (2.55 stops, the default tags')."""
    path = apple_hdr_heic(tmp_path / "iphone.heic", np.full((48, 64, 3), 120, np.uint8),
                          np.full((24, 32), 200, np.uint8),
                          maker_tags={10: None, 33: Fraction(102, 100), 48: Fraction(64, 10000)})
    assert _stated_stops(path) == pytest.approx(-70 * 0.0064 + 3.0)


def test_a_ten_bit_gain_map_is_left_out_saying_it_is_ten_bit_not_damaged(tmp_path):
    """pillow-heif reads 8-bit auxiliary images alone: a 10-bit gain map's photo came back SDR
    saying its gain map was "cut short or damaged", though it was whole."""
    path = apple_hdr_heic(tmp_path / "iphone.heic", np.full((48, 64, 3), 120, np.uint8),
                          np.full((24, 32), 800, np.uint16))
    info = probe_image(path, 10**8)
    assert (info.gain_map, info.gain_map_left_out) == (
        None, "the Apple HDR photo's gain map is 10-bit, and only 8-bit ones (what iPhones write) are read")


def test_an_iphone_hdr_heic_of_grids_keeps_its_gain_map_laid_out_and_turned_with_its_photo(tmp_path):
    """iPhones store the photo and its gain map as grids of tiles: pillow-heif lays out both (a guard:
    no code of the service's reads the tiles), and the gain map is turned with the photo's irot."""
    levels = np.full((64, 96), 90, np.uint8)
    levels[:32, :48] = 250
    path = apple_hdr_heic(tmp_path / "iphone.heic", np.full((128, 192, 3), 120, np.uint8), levels, rotation=90,
                          tile=64)
    info = probe_image(path, 10**8)
    assert (info.width, info.height, info.gain_map_left_out) == (128, 192, None)
    stored = cv2.imdecode(np.frombuffer(info.gain_map.jpeg, np.uint8), cv2.IMREAD_UNCHANGED)
    assert stored.shape == (96, 64)
    assert stored[-40:, :24].mean() > stored[:40, 40:].mean() + 50  # the bright quarter turned to the bottom left
