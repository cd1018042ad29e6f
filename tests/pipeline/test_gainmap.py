"""Reading an Ultra HDR JPEG's header for its gain map: what it holds while it reads."""

import tracemalloc

import cv2
import numpy as np

from tests.helpers import jpeg_marker_segment
from tmlsr_ray.pipeline.gainmap import GAIN_MAP_MISSING, XMP_SIGNATURE, gain_map_of


def test_a_primary_header_flooded_with_segments_of_no_use_is_read_without_holding_them():
    """Every segment of a primary declaring a gain map was held while it was read: 64 KB of empty
    comment segments took 2.8 MB (8 MB of them 374 MB; 40 MB, a hostile upload's, about 1.9 GB);
    only its XMP, ISO 21496-1 and MPF segments are needed."""
    declaring = jpeg_marker_segment(0xE1, XMP_SIGNATURE + b'<x:xmpmeta><rdf:Description xmlns:hdrgm='
                                    b'"http://ns.adobe.com/hdr-gain-map/1.0/" hdrgm:Version="1.0"/></x:xmpmeta>')
    picture = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes()
    data = picture[:2] + declaring + jpeg_marker_segment(0xFE, b"") * 16384 + picture[2:]
    tracemalloc.start()
    try:
        assert gain_map_of(data) == (None, GAIN_MAP_MISSING)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < len(data)
