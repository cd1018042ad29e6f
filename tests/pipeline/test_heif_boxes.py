"""A HEIF's item tables read no further than the entries asked for."""

import struct

import numpy as np

from tests.helpers import grid_heic, iso_hdr_heic
from tmlsr_ray.pipeline.heif_boxes import primary_item_properties, stated_nclx, spatial_extent, tone_map_link


def _with_counts_raised(data: bytes) -> bytes:
    """``data`` whose ``iloc`` (version 1: a 16-bit count after its field sizes) and ``ipma`` (a
    32-bit count) state the most entries their counts hold, their entries as they were."""
    iloc = data.index(b"iloc") + 4 + 4 + 2
    data = data[:iloc] + b"\xff\xff" + data[iloc + 2:]
    ipma = data.index(b"ipma") + 4 + 4
    return data[:ipma] + b"\xff\xff\xff\xff" + data[ipma + 4:]


def test_a_grid_photos_properties_are_read_from_its_own_entries_whatever_ipma_states_past_them(tmp_path):
    """The primary's entry and its first tile's come first: ipma is read no further (a hostile
    table of 12 MB took 3.4 s a reading, and the probe reads it several times). Read whole, the
    stated count past the entries made them no properties at all."""
    path = grid_heic(tmp_path / "grid.heic", np.full((100, 150, 3), 120, np.uint8), 64,
                     tile_colour=b"nclx" + struct.pack(">HHHB", 12, 13, 6, 0x80))
    path.write_bytes(_with_counts_raised(path.read_bytes()))
    properties = primary_item_properties(path)
    assert (spatial_extent(properties), stated_nclx(properties)[:2]) == ((150, 100), (12, 13))


def test_a_gain_maps_location_and_properties_are_read_from_their_own_entries_whatever_follows(tmp_path):
    """An Android HDR HEIC's gain map (item 2) and tmap item (3): iloc and ipma read up to theirs."""
    path = iso_hdr_heic(tmp_path / "android.heic", np.full((128, 192, 3), 120, np.uint8),
                        np.full((64, 96), 200, np.uint8))
    whole = tone_map_link(path)
    path.write_bytes(_with_counts_raised(path.read_bytes()))
    assert tone_map_link(path) == whole and spatial_extent(whole.gain_map_properties) == (96, 64)
