"""An iPhone's HDR photo (no Ray, no HTTP): a HEIC (iOS 14.1 on) whose primary picture has an
auxiliary image of Apple's type ``urn:com:apple:photo:2020:aux:hdrgainmap``, its headroom in the
EXIF maker note (Apple's tags 33 and 48), made the gain map of an Ultra HDR JPEG: its levels
re-encoded in hdrgm's log2 encoding, so that viewers of Ultra HDR show the HDR an iPhone would.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path
from typing import Dict, Optional, Tuple

import cv2
import numpy as np
import pillow_heif
from PIL import Image

from tmlsr_ray.pipeline.gainmap import (GAIN_MAP_QUALITY, GainMap, iso_version_only, log2_gain_map_metadata,
                                        with_metadata)
from tmlsr_ray.pipeline.heif_boxes import bits_per_channel, item_properties
from tmlsr_ray.pipeline.heif_turns import heif_turned, quarter_turns, turn_properties

APPLE_GAIN_MAP_URN = "urn:com:apple:photo:2020:aux:hdrgainmap"
APPLE_HDR = "Apple HDR"  # GainMap.kind
EXIF_IFD_TAG, MAKER_NOTE_TAG = 0x8769, 0x927C
# "Apple iOS\0", a version (2 bytes) and "MM": its IFD follows, its offsets from the note's first byte
APPLE_MAKER_NOTE = b"Apple iOS\x00"
APPLE_MAKER_IFD_AT = 14
HEADROOM_TAG, GAIN_TAG = 33, 48
SIGNED_RATIONAL, FLOAT = 10, 11
# a boost of under 0.7%, none to see; hdrgm forbids a headroom equal to its minimum, 0, which one
# of 2e-7 stops was written as
LEAST_STOPS = 0.01
NO_HEADROOM = "the Apple HDR photo's maker note states no headroom (its tag 33)"
LITTLE_HEADROOM = "the Apple HDR photo's maker note states a headroom under 0.01 stops (its tags 33 and 48)"
TOO_LARGE = "the Apple HDR photo's gain map is wider or higher than its picture"
DAMAGED = "the Apple HDR photo's gain map could not be read whole (cut short or damaged)"
# pillow-heif (1.8.1) decodes 8-bit auxiliary images alone; an iPhone's gain map is 8-bit (Apple's
# pixel format L008)
TOO_DEEP = "the Apple HDR photo's gain map is {bits}-bit, and only 8-bit ones (what iPhones write) are read"
HEIF_ERRORS = (OSError, RuntimeError, ValueError, EOFError)  # what libheif's refusals come as


def declares_apple_gain_map(heif_info: dict) -> bool:
    """From what Pillow read of a HEIC (its ``info``): only one listing Apple's gain map is opened
    again for it, since pillow-heif reads the whole file, and libheif parses it, a second time."""
    return bool(heif_info.get("aux", {}).get(APPLE_GAIN_MAP_URN))


def apple_gain_map(path: Path, exif: Image.Exif, primary_size: Tuple[int, int]
                   ) -> Tuple[Optional[GainMap], Optional[str]]:
    """The gain map an iPhone's HEIC of ``primary_size`` (upright) carries, upright and in hdrgm's
    encoding; (None, None) for any other HEIC, (None, why) where it cannot be kept: no headroom
    stated, deeper than 8 bits, larger than its primary (by its header, before decoding:
    max_input_pixels bounds the primary alone), or damaged."""
    try:
        heif = pillow_heif.open_heif(path)
        ids = heif.info.get("aux", {}).get(APPLE_GAIN_MAP_URN)
        if not ids:
            return None, None
        stops = headroom_stops(exif)
        if not stops:
            return None, NO_HEADROOM if stops is None else LITTLE_HEADROOM
        bits = bits_per_channel(item_properties(path, ids[0]))
        if bits and bits > 8:
            return None, TOO_DEEP.format(bits=bits)
        aux = heif.get_aux_image(ids[0])
        turns = _transforms_to_apply(path, ids[0])
        width, height = aux.size[::-1] if quarter_turns(turns) % 2 else aux.size
        if width > primary_size[0] or height > primary_size[1]:
            return None, TOO_LARGE
        stored = np.asarray(aux)
    except HEIF_ERRORS:
        return None, DAMAGED
    levels = hdrgm_levels(heif_turned(stored if stored.ndim == 2 else stored[:, :, 0], turns), stops)
    ok, jpeg = cv2.imencode(".jpg", levels, [cv2.IMWRITE_JPEG_QUALITY, GAIN_MAP_QUALITY])
    if not ok:
        return None, DAMAGED
    metadata = log2_gain_map_metadata(stops)
    return GainMap(with_metadata(jpeg.tobytes(), metadata), metadata, "1.0", iso_version_only(), APPLE_HDR), None


def headroom_stops(exif: Image.Exif) -> Optional[float]:
    """log2 of the photo's headroom from its Apple maker note, by Apple's published formula
    ("Applying Apple HDR effect to your photos", developer.apple.com/documentation/appkit/
    applying-apple-hdr-effect-to-your-photos); tag 48 missing counts as 0, as Skia reads it (many
    iPhones leave it out). None without tag 33; 0 where the photo has too little headroom to state.
    A negative tag 48, which no iPhone writes, counts as 0: the formula would give it headroom
    without bound (-60 made 1201.8 stops, past what a float holds)."""
    tags = _apple_maker_tags(exif)
    if HEADROOM_TAG not in tags:
        return None
    maker33, maker48 = tags[HEADROOM_TAG], max(tags.get(GAIN_TAG, 0.0), 0.0)
    if maker33 < 1.0:
        stops = -20.0 * maker48 + 1.8 if maker48 <= 0.01 else -0.101 * maker48 + 1.601
    else:
        stops = -70.0 * maker48 + 3.0 if maker48 <= 0.01 else -0.303 * maker48 + 2.303
    return stops if stops >= LEAST_STOPS else 0.0


def hdrgm_levels(apple_levels: np.ndarray, stops: float) -> np.ndarray:
    """Apple's 8-bit gain map levels as hdrgm's, exactly, through a table of its 256 levels.

    Apple (the article above): g = the level through Rec. 709's inverse transfer, and
    HDR = SDR * (1 + (H - 1) * g) in linear light, H = 2 ** stops.
    hdrgm (Adobe's Gain Map 1.0, Ultra HDR): HDR = (SDR + OffsetSDR) * 2 ** (lerp(GainMapMin,
    GainMapMax, r ** (1 / Gamma)) * W) - OffsetHDR, W = 1 on a display of HDRCapacityMax headroom.
    With GainMapMin 0, GainMapMax = HDRCapacityMax = stops, Gamma 1 and no offsets (what
    :func:`log2_gain_map_metadata` writes), the two agree where r = log2(1 + (H - 1) * g) / stops."""
    signal = np.arange(256) / 255
    gain = np.where(signal < 0.081, signal / 4.5, ((signal + 0.099) / 1.099) ** (1 / 0.45))
    table = np.log2(1 + (2 ** stops - 1) * gain) / stops
    return np.round(table * 255).astype(np.uint8)[apple_levels]


def _apple_maker_tags(exif: Image.Exif) -> Dict[int, float]:
    """The rational and float tags of an Apple maker note, by number; none for any other note."""
    try:
        note = exif.get_ifd(EXIF_IFD_TAG).get(MAKER_NOTE_TAG)
    except (KeyError, TypeError, ValueError, struct.error):
        return {}
    if not isinstance(note, bytes) or not note.startswith(APPLE_MAKER_NOTE):
        return {}
    order = {b"MM": ">", b"II": "<"}.get(note[APPLE_MAKER_IFD_AT - 2:APPLE_MAKER_IFD_AT], ">")
    tags: Dict[int, float] = {}
    try:
        count = struct.unpack_from(order + "H", note, APPLE_MAKER_IFD_AT)[0]
    except struct.error:
        return {}
    # an IFD cut short ends where its entries do; one entry's value out of the note is skipped
    for at in range(APPLE_MAKER_IFD_AT + 2, min(APPLE_MAKER_IFD_AT + 2 + 12 * count, len(note) - 11), 12):
        tag = struct.unpack_from(order + "H", note, at)[0]
        value = _entry_value(note, order, at)
        if value is not None and math.isfinite(value):
            tags[tag] = value
    return tags


def _entry_value(note: bytes, order: str, at: int) -> Optional[float]:
    """The value of the maker note's IFD entry at ``at`` where it is one signed rational or float."""
    kind, number, offset = struct.unpack_from(order + "HII", note, at + 2)
    try:
        if kind == SIGNED_RATIONAL and number == 1:
            numerator, denominator = struct.unpack_from(order + "ii", note, offset)
            return numerator / denominator if denominator else None
        if kind == FLOAT and number == 1:  # the value itself, in the entry's last four bytes
            return struct.unpack_from(order + "f", note, at + 8)[0]
    except struct.error:
        pass
    return None


def _transforms_to_apply(path: Path, gain_map_item: int) -> list:
    """The primary's ``irot`` and ``imir`` (in their order) where the gain map has none of its own:
    libheif turns the primary upright, and an auxiliary image by its own properties alone (an
    iPhone states the turn on its primary only), so the gain map was left as stored."""
    if turn_properties(item_properties(path, gain_map_item)):
        return []
    return turn_properties(item_properties(path, None))
