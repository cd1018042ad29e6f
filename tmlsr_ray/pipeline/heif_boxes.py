"""The properties of a HEIF/AVIF file's primary picture, read from its ``meta`` box (ISO/IEC
23008-12): what Pillow's AVIF plugin and OpenCV leave out, its colour code points (``colr`` of
type ``nclx``), its bits per channel (``pixi``) and an HDR picture's light levels (``clli``,
``mdcv``)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

from tmlsr_ray.pipeline.isobmff import payloads, top_level_box

MAX_META_BYTES = 16 << 20  # a phone's meta box is kilobytes; one larger is not read


def primary_item_properties(path: Path) -> List[Tuple[bytes, bytes]]:
    """(type, payload) of each property the primary item has, in the file's order; none where
    the file has no readable meta box."""
    return item_properties(path, None)


def item_properties(path: Path, item: Optional[int]) -> List[Tuple[bytes, bytes]]:
    """(type, payload) of each property ``item`` (the primary where None) has, in the file's order."""
    with open(path, "rb") as file:
        found = top_level_box(file, b"meta", MAX_META_BYTES)
    if found is None:
        return []
    try:
        return _properties_of(found[1][4:], item)  # meta is a full box: version and flags first
    except (struct.error, IndexError):
        return []


def nclx_code_points(properties: List[Tuple[bytes, bytes]]) -> Optional[Tuple[int, int]]:
    """(colour_primaries, transfer_characteristics) of the first ``nclx`` colour property."""
    for kind, payload in properties:
        if kind == b"colr" and payload[:4] == b"nclx" and len(payload) >= 8:
            return struct.unpack(">HH", payload[4:8])
    return None


def spatial_extent(properties: List[Tuple[bytes, bytes]]) -> Optional[Tuple[int, int]]:
    """(width, height) as the ``ispe`` property states them: the picture a reader makes."""
    for kind, payload in properties:
        if kind == b"ispe" and len(payload) >= 12:
            return struct.unpack(">II", payload[4:12])
    return None


def bits_per_channel(properties: List[Tuple[bytes, bytes]]) -> Optional[int]:
    """The deepest channel's bits as ``pixi`` states them, else as an AV1 picture's ``av1C`` does."""
    for kind, payload in properties:
        if kind == b"pixi" and len(payload) >= 6 and len(payload) >= 5 + payload[4]:
            return max(payload[5:5 + payload[4]])
    for kind, payload in properties:
        if kind == b"av1C" and len(payload) >= 3:  # high_bitdepth, then twelve_bit
            return 12 if payload[2] & 0x20 else 10 if payload[2] & 0x40 else 8
    return None


def content_light_level(properties: List[Tuple[bytes, bytes]]) -> Optional[Tuple[int, int]]:
    """(MaxCLL, MaxFALL) in cd/m² as a ``clli`` property states them."""
    for kind, payload in properties:
        if kind == b"clli" and len(payload) >= 4:
            return struct.unpack(">HH", payload[:4])
    return None


Chromaticity = Tuple[int, int]  # x, y in units of 0.00002


@dataclass(frozen=True)
class MasteringDisplay:
    """SMPTE ST 2086's mastering display, in the units of HEVC's SEI and of ``mdcv``."""

    red: Chromaticity
    green: Chromaticity
    blue: Chromaticity
    white: Chromaticity
    max_luminance: int  # units of 0.0001 cd/m²
    min_luminance: int


def mastering_display(properties: List[Tuple[bytes, bytes]]) -> Optional[MasteringDisplay]:
    """The ``mdcv`` property's display. Its three primaries come in no stated order (HEVC's SEI
    recommends green, blue, red; some writers give red first): red is the one furthest along x,
    green the highest in y of the two left."""
    for kind, payload in properties:
        if kind == b"mdcv" and len(payload) >= 24:
            values = struct.unpack(">8HII", payload[:24])
            primaries = sorted((values[i:i + 2] for i in range(0, 6, 2)), reverse=True)
            red, rest = primaries[0], sorted(primaries[1:], key=lambda xy: xy[1], reverse=True)
            return MasteringDisplay(red, rest[0], rest[1], values[6:8], values[8], values[9])
    return None


def primary_item_start(path: Path, count: int) -> Optional[bytes]:
    """The first ``count`` bytes of the primary item's data (its first extent's, in the file: an
    AV1 picture's starts with its sequence header); None where the meta box does not say where
    they lie in the file."""
    with open(path, "rb") as file:
        found = top_level_box(file, b"meta", MAX_META_BYTES)
        if found is None:
            return None
        try:
            children = dict(payloads(found[1][4:]))
            offset = _first_extent_offset(children[b"iloc"], _primary_item(children[b"pitm"]))
        except (KeyError, struct.error, IndexError):
            return None
        if offset is None:
            return None
        file.seek(offset)
        return file.read(count)


def _primary_item(pitm: bytes) -> int:
    return struct.unpack(">H", pitm[4:6])[0] if pitm[0] == 0 else struct.unpack(">I", pitm[4:8])[0]


def _first_extent_offset(iloc: bytes, item: int) -> Optional[int]:
    """Where ``item``'s first extent starts in the file, as ``iloc`` (ISO/IEC 14496-12 8.11.3)
    says; None for an item not in it, or one whose data is built otherwise (in the meta box, from
    other items)."""
    version = iloc[0]
    offset_size, length_size, base_size = iloc[4] >> 4, iloc[4] & 0xF, iloc[5] >> 4
    index_size = iloc[5] & 0xF if version in (1, 2) else 0
    count, at = (struct.unpack(">H", iloc[6:8])[0], 8) if version < 2 else (struct.unpack(">I", iloc[6:10])[0], 10)
    for _ in range(count):
        id_size = 2 if version < 2 else 4
        item_id, at = int.from_bytes(iloc[at:at + id_size], "big"), at + id_size
        method = 0
        if version in (1, 2):
            method, at = struct.unpack(">H", iloc[at:at + 2])[0] & 0xF, at + 2
        at += 2  # data_reference_index
        base, at = int.from_bytes(iloc[at:at + base_size], "big"), at + base_size
        extents, at = struct.unpack(">H", iloc[at:at + 2])[0], at + 2
        first = at + index_size
        at += extents * (index_size + offset_size + length_size)
        if item_id == item:
            if method != 0 or not extents or at > len(iloc):
                return None
            return base + int.from_bytes(iloc[first:first + offset_size], "big")
    return None


def _properties_of(meta: bytes, item: Optional[int]) -> List[Tuple[bytes, bytes]]:
    children = dict(payloads(meta))
    pitm = children.get(b"pitm")
    iprp = dict(payloads(children.get(b"iprp", b"")))
    if (item is None and pitm is None) or b"ipco" not in iprp or b"ipma" not in iprp:
        return []
    if item is None:
        item = _primary_item(pitm)
    properties = payloads(iprp[b"ipco"])
    return [properties[index - 1] for index in _associations(iprp[b"ipma"], item)
            if 0 < index <= len(properties)]


def _associations(ipma: bytes, item: int) -> List[int]:
    """1-based ``ipco`` indices of the properties associated with ``item``."""
    version, wide_index = ipma[0], ipma[3] & 1
    count, at = struct.unpack(">I", ipma[4:8])[0], 8
    for _ in range(count):
        if version < 1:
            item_id, at = struct.unpack(">H", ipma[at:at + 2])[0], at + 2
        else:
            item_id, at = struct.unpack(">I", ipma[at:at + 4])[0], at + 4
        n, at = ipma[at], at + 1
        if wide_index:
            indices = [v & 0x7FFF for v in struct.unpack(f">{n}H", ipma[at:at + 2 * n])]
            at += 2 * n
        else:
            indices = [v & 0x7F for v in ipma[at:at + n]]
            at += n
        if item_id == item:
            return indices
    return []
