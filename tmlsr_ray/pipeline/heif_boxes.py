"""A HEIF/AVIF file's structure, read from its ``meta`` box (ISO/IEC 23008-12; no decoding here):
what Pillow's AVIF plugin and OpenCV leave out of its primary picture, its colour code points
(``colr`` of type ``nclx``), its bits per channel (``pixi``) and an HDR picture's light levels
(``clli``, ``mdcv``), taken from a grid's first tile where the grid states none; an ISO 21496-1
gain map's ``tmap`` item and what it links (its gain map item, a grid's ImageGrid and tiles, each
item's data through ``iloc``/``idat``); and what is wrong with a grid or item tables libheif
refuses."""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Collection, Dict, Iterator, List, NamedTuple, Optional, Tuple, TypeVar

from tmlsr_ray.pipeline.isobmff import boxes, payloads, top_level_box

MAX_META_BYTES = 16 << 20  # a phone's meta box is kilobytes; one larger is not read
# a phone's gain map is a quarter of its photo or less, coded in a few hundred kilobytes; ISO
# 21496-1's metadata is under 200 bytes (three channels, each number with its own denominator)
MAX_GAIN_MAP_BYTES, MAX_TONE_MAP_BYTES = 64 << 20, 4096
IN_FILE, IN_IDAT = 0, 1  # iloc's construction methods: offsets in the file, in the meta box's idat
# a phone's gain map stored as a grid is a few dozen 512x512 tiles; libheif refuses a file of over
# 1,000 items whole (its security limit), which bounds the tiles Pillow lets through
MAX_GRID_TILES = 1024
IMAGE_GRID_BYTES = 12  # at most: version, flags, rows and columns less one, two 32-bit sizes
Extents = Tuple[int, List[Tuple[int, int]]]  # an item's construction method, (offset, length) of each extent
Entry = TypeVar("Entry")
# what a grid stating no colour of its own takes from its first tile, as libheif does (early
# iPhones stated a photo's colour on its tiles alone): its colour and, of an HDR photo, its light
TILE_COLOUR_KINDS = (b"colr", b"clli", b"mdcv")


def primary_item_properties(path: Path) -> List[Tuple[bytes, bytes]]:
    """(type, payload) of each property the primary item has, in the file's order; none where
    the file has no readable meta box. A grid stating no ``colr`` has its first tile's colour and
    light properties after its own (:data:`TILE_COLOUR_KINDS`)."""
    try:
        with open(path, "rb") as file:
            children = _meta_children(file)
        if children is None:
            return []
        properties = _properties_of(children, None)
        if not any(kind == b"colr" for kind, _ in properties):
            properties += _first_tile_colour(children)
        return properties
    except (struct.error, IndexError, KeyError, DamagedStructure):
        return []


def item_properties(path: Path, item: Optional[int]) -> List[Tuple[bytes, bytes]]:
    """(type, payload) of each property ``item`` (the primary where None) has, in the file's order."""
    try:
        with open(path, "rb") as file:
            children = _meta_children(file)
        return [] if children is None else _properties_of(children, item)
    except (struct.error, IndexError):
        return []


class Nclx(NamedTuple):
    """The code points a ``colr`` property of type ``nclx`` states (ISO/IEC 23091-2)."""

    primaries: int
    transfer: int
    matrix: int
    full_range: bool

    @classmethod
    def read(cls, kind: bytes, payload: bytes) -> Optional["Nclx"]:
        """The property's code points where it is an ``nclx`` one, whole (11 bytes); else None."""
        if kind != b"colr" or payload[:4] != b"nclx" or len(payload) < 11:
            return None
        return cls(*struct.unpack(">HHH", payload[4:10]), bool(payload[10] & 0x80))


def stated_nclx(properties: List[Tuple[bytes, bytes]]) -> Optional[Nclx]:
    """The first ``nclx`` colour property's code points."""
    return next((nclx for nclx in (Nclx.read(kind, payload) for kind, payload in properties) if nclx), None)


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


def _meta_children(file: BinaryIO) -> Optional[Dict[bytes, bytes]]:
    """The payloads of the file's top-level ``meta`` box's children by type; None where it has none
    of a size read. Raises struct.error or IndexError where its boxes are cut short."""
    found = top_level_box(file, b"meta", MAX_META_BYTES)
    return None if found is None else dict(payloads(found[1][4:]))  # a full box: version and flags first


def primary_item_start(path: Path, count: int) -> Optional[bytes]:
    """The first ``count`` bytes of the primary item's data (its first extent's, in the file: an
    AV1 picture's starts with its sequence header); None where the meta box does not say where
    they lie in the file."""
    with open(path, "rb") as file:
        try:
            children = _meta_children(file)
            primary = children and _primary_item(children[b"pitm"])
            located = children and _item_extents(children[b"iloc"], [primary]).get(primary)
        except (KeyError, struct.error, IndexError):
            return None
        if not located or located[0] != IN_FILE or not located[1]:
            return None
        file.seek(located[1][0][0])
        return file.read(count)


@dataclass(frozen=True)
class CodedItem:
    """An item's coding (b"hvc1" for HEVC, b"av01" for AV1), its properties ((type, payload) of each, in the file's
    order) and its data, its extents joined."""

    type: bytes
    properties: List[Tuple[bytes, bytes]]
    data: bytes


@dataclass(frozen=True)
class ImageGrid:
    """A ``grid`` item's payload (ISO/IEC 23008-12 6.6.2.3): its tiles' rows and columns and the
    picture's size, its right and bottom tiles cropped to it."""

    rows: int
    columns: int
    width: int
    height: int

    def links_problem(self, tiles: int) -> Optional[str]:
        """What is wrong where it links ``tiles`` tiles: one is needed for each cell."""
        if tiles == self.rows * self.columns:
            return None
        return f"its grid of {self.rows}x{self.columns} tiles links {tiles:,}"


@dataclass(frozen=True)
class ToneMapLink:
    """What an ISO 21496-1 ``tmap`` item (ISO/IEC 23008-12's tone-mapped derived picture) links:
    the gain map item it is derived from with the primary, and its own payload."""

    gain_map_type: bytes  # the gain map item's coding, b"hvc1" for HEVC, b"av01" for AV1, b"grid" for tiles
    gain_map_properties: List[Tuple[bytes, bytes]]  # (type, payload) of each, in the file's order
    gain_map_data: bytes  # its coded data, its extents joined; a grid's ImageGrid
    metadata: bytes  # the tmap item's payload: a version byte, then ISO 21496-1's metadata
    tone_map_properties: List[Tuple[bytes, bytes]]  # the tmap item's: its colr, the alternate picture's colour
    gain_map_tiles: List[CodedItem]  # a grid gain map's tiles, in its order (row by row); none for another


def image_grid(payload: bytes) -> ImageGrid:
    """A ``grid`` item's ImageGrid; raises :class:`DamagedStructure` where it is cut short or of a
    version past 0."""
    if len(payload) < 8 or payload[0] != 0 or (payload[1] & 1 and len(payload) < 12):
        raise DamagedStructure("its grid item's ImageGrid is cut short or of a version past 0")
    width, height = struct.unpack_from(">II" if payload[1] & 1 else ">HH", payload, 4)
    return ImageGrid(payload[2] + 1, payload[3] + 1, width, height)


class DamagedStructure(ValueError):
    """A HEIF's boxes that say of a ``tmap`` item what cannot be: its text says what."""


def tone_map_link(path: Path) -> Optional[ToneMapLink]:
    """The primary's ``tmap`` item and what it links; None for a file with none. Raises
    :class:`DamagedStructure` where its boxes cannot be followed (cut short, out of bounds)."""
    with open(path, "rb") as file:
        try:
            children = _meta_children(file)
            return None if children is None else _tone_map_link(file, children)
        except (KeyError, struct.error, IndexError) as exc:
            raise DamagedStructure("its boxes are cut short or damaged") from exc


def _tone_map_link(file: BinaryIO, children: Dict[bytes, bytes]) -> Optional[ToneMapLink]:
    items = _item_types(children.get(b"iinf", b""))
    tone_map = next((item for item, kind in items.items() if kind == b"tmap"), None)
    if tone_map is None:
        return None
    gain_map = _gain_map_item(children, items, tone_map)
    located, idat = _item_extents(children[b"iloc"], (gain_map, tone_map)), children.get(b"idat", b"")
    is_grid = items[gain_map] == b"grid"
    return ToneMapLink(items[gain_map], _properties_of(children, gain_map),
                       _item_data(file, located, idat, gain_map, IMAGE_GRID_BYTES if is_grid else MAX_GAIN_MAP_BYTES),
                       _item_data(file, located, idat, tone_map, MAX_TONE_MAP_BYTES),
                       _properties_of(children, tone_map),
                       _grid_tiles(file, children, items, gain_map) if is_grid else [])


def declares_avif(path: Path) -> bool:
    """Whether the file's ``ftyp`` names AVIF (its major brand or a compatible one): an AV1 HEIF,
    which Pillow's AVIF plugin reads, not libheif."""
    with open(path, "rb") as file:
        found = top_level_box(file, b"ftyp", 4096)
    if found is None:
        return False
    payload = found[1]
    brands = [payload[:4]] + [payload[at:at + 4] for at in range(8, len(payload) - 3, 4)]
    return b"avif" in brands or b"avis" in brands


def item_tables_problem(path: Path) -> Optional[str]:
    """What makes the meta box's item tables unreadable, in words: an item list (``iinf``) stating
    more items than it holds, or item locations (``iloc``) or property associations (``ipma``) cut
    short; None where they read whole, or the file has no meta box. A count a bit error raised is
    what libheif refuses at its security limit, as it does a file of thousands of items."""
    with open(path, "rb") as file:
        try:
            children = _meta_children(file)
        except (struct.error, IndexError):
            return None
    if not children:
        return None
    stated, entries = _item_entries(children.get(b"iinf", b""))
    if stated > len(entries):
        return f"its item list (iinf) states {stated:,} items and holds {len(entries):,} (the file is damaged)"
    tables = (("locations (iloc)", _iloc_entries, children.get(b"iloc")),
              ("properties (ipma)", _ipma_entries, dict(payloads(children.get(b"iprp", b""))).get(b"ipma")))
    for what, entries, table in tables:
        try:
            deque(entries(table) if table is not None else (), maxlen=0)  # each entry read, none kept
        except (struct.error, IndexError):
            return f"its item {what} are cut short (the file is damaged)"
    return None


def primary_grid_problem(path: Path) -> Optional[str]:
    """What makes a primary ``grid`` item no picture, in words: an ImageGrid cut short, or not as
    many cells as the tiles it links; None where the primary is no grid, or none of that is so."""
    with open(path, "rb") as file:
        try:
            children = _meta_children(file)
            primary = children and _primary_item(children[b"pitm"])
            if not children or _item_types(children.get(b"iinf", b"")).get(primary) != b"grid":
                return None
            grid = image_grid(_item_data(file, _item_extents(children[b"iloc"], [primary]), children.get(b"idat", b""),
                                         primary, IMAGE_GRID_BYTES))
            tiles = len(_references(children.get(b"iref", b""), b"dimg", primary))
        except DamagedStructure as exc:
            return str(exc)
        except (KeyError, struct.error, IndexError):
            return None
    return grid.links_problem(tiles)


def _first_tile_colour(children: Dict[bytes, bytes]) -> List[Tuple[bytes, bytes]]:
    """The colour and light properties of the primary's first tile, where the primary is a grid."""
    primary = _primary_item(children[b"pitm"])
    if _item_types(children.get(b"iinf", b"")).get(primary) != b"grid":
        return []
    tiles = _references(children.get(b"iref", b""), b"dimg", primary)
    return [prop for prop in _properties_of(children, tiles[0]) if prop[0] in TILE_COLOUR_KINDS] if tiles else []


def _grid_tiles(file: BinaryIO, children: Dict[bytes, bytes], items: Dict[int, bytes], grid: int) -> List[CodedItem]:
    """The tiles ``grid`` is derived from (its ``dimg``), in its order; their number and their
    data's stated length bounded before any is read."""
    tiles = _references(children.get(b"iref", b""), b"dimg", grid)
    if not tiles or len(tiles) > MAX_GRID_TILES:
        raise DamagedStructure(f"its grid item links {len(tiles):,} tiles, not 1 to {MAX_GRID_TILES:,}")
    located = _item_extents(children[b"iloc"], tiles)
    for tile in tiles:
        if tile not in items or tile not in located:
            raise DamagedStructure(f"its tile item {tile} is not listed (iinf) or has no location")
    if sum(length for tile in tiles for _, length in located[tile][1]) > MAX_GAIN_MAP_BYTES:
        raise DamagedStructure(f"its grid's tiles state over {MAX_GAIN_MAP_BYTES:,} bytes")
    properties = _properties_by_item(children, tiles)
    idat = children.get(b"idat", b"")
    return [CodedItem(items[tile], properties.get(tile, []), _item_data(file, located, idat, tile, MAX_GAIN_MAP_BYTES))
            for tile in tiles]


def _gain_map_item(children: Dict[bytes, bytes], items: Dict[int, bytes], tone_map: int) -> int:
    """The gain map item ``tone_map`` is derived from with the primary (its ``dimg``: base, then gain map)."""
    derived_from = _references(children.get(b"iref", b""), b"dimg", tone_map)
    if len(derived_from) != 2:
        raise DamagedStructure(f"its tmap item is derived from {len(derived_from)} pictures, not 2")
    base, gain_map = derived_from
    if base != _primary_item(children[b"pitm"]):
        raise DamagedStructure("its tmap item's base picture is not its primary picture")
    # a map that is the photo itself would be read as gains: the primary's levels as boosts
    for picture, name in ((base, "primary picture"), (tone_map, "tmap item")):
        if gain_map == picture:
            raise DamagedStructure(f"its tmap item's gain map is its {name}")
    if gain_map not in items:
        raise DamagedStructure(f"its item {gain_map} is not listed (iinf)")
    return gain_map


def _item_types(iinf: bytes) -> Dict[int, bytes]:
    """Each item's type (``infe`` version 2 or 3: the item types ISO/IEC 23008-12 uses), by its id."""
    types = {}
    for entry in _item_entries(iinf)[1]:
        if entry[0] not in (2, 3):
            continue
        id_bytes = 2 if entry[0] == 2 else 4
        item = int.from_bytes(entry[4:4 + id_bytes], "big")
        types[item] = entry[4 + id_bytes + 2:4 + id_bytes + 6]  # past item_protection_index
    return types


def _item_entries(iinf: bytes) -> Tuple[int, List[bytes]]:
    """The item count ``iinf`` states and the payloads of the ``infe`` boxes it holds."""
    wide = iinf[:1] not in (b"", b"\0")  # version and flags, then a 16- or 32-bit entry count
    stated = int.from_bytes(iinf[4:8] if wide else iinf[4:6], "big")
    return stated, [iinf[start:end] for kind, start, end in boxes(iinf, 8 if wide else 6) if kind == b"infe"]


def _references(iref: bytes, wanted: bytes, from_item: int) -> List[int]:
    """The items ``from_item``'s first reference of type ``wanted`` points to, in its order."""
    id_format = ">H" if iref[0] == 0 else ">I"
    id_bytes = struct.calcsize(id_format)
    for kind, start, end in boxes(iref, 4):
        reference = iref[start:end]
        if kind != wanted or struct.unpack(id_format, reference[:id_bytes])[0] != from_item:
            continue
        count = struct.unpack(">H", reference[id_bytes:id_bytes + 2])[0]
        targets = reference[id_bytes + 2:id_bytes + 2 + count * id_bytes]
        if len(targets) < count * id_bytes:
            raise DamagedStructure("its item references are cut short")
        return [struct.unpack_from(id_format, targets, i * id_bytes)[0] for i in range(count)]
    return []


def _item_data(file: BinaryIO, located: Dict[int, Extents], idat: bytes, item: int, limit: int) -> bytes:
    """``item``'s data, its extents joined: in the file (construction method 0) or in the meta
    box's ``idat`` (1); at most ``limit`` bytes, and all of it there."""
    if item not in located:
        raise DamagedStructure(f"its item {item} has no location")
    method, extents = located[item]
    if method not in (IN_FILE, IN_IDAT):
        raise DamagedStructure(f"its item {item} is built from other items (construction method {method})")
    if not extents or any(length == 0 for _, length in extents) or sum(n for _, n in extents) > limit:
        raise DamagedStructure(f"its item {item} states no length or one over {limit:,} bytes")
    pieces = []
    for offset, length in extents:
        if method == IN_IDAT:
            pieces.append(idat[offset:offset + length])
        else:
            file.seek(offset)
            pieces.append(file.read(length))
        if len(pieces[-1]) != length:
            raise DamagedStructure(f"its item {item}'s data is cut short")
    return b"".join(pieces)


def _primary_item(pitm: bytes) -> int:
    return struct.unpack(">H", pitm[4:6])[0] if pitm[0] == 0 else struct.unpack(">I", pitm[4:8])[0]


def _item_extents(iloc: bytes, items: Collection[int]) -> Dict[int, Extents]:
    """Each of ``items``' construction method and (offset, length) of each of its extents, by item
    (its first entry): ``iloc`` read once for a grid's tiles (items by the hundred), and no further
    than the last of them (a photo's own entry comes first, and a hostile table runs to megabytes)."""
    return _first_entries(_iloc_entries(iloc), items)


def _iloc_entries(iloc: bytes) -> Iterator[Tuple[int, Extents]]:
    """(item, its construction method and (offset, length) of each extent, its base offset added)
    of each of ``iloc``'s entries (ISO/IEC 14496-12 8.11.3), in its order. Raises IndexError or
    struct.error where it is cut short."""
    version = iloc[0]
    offset_size, length_size, base_size = iloc[4] >> 4, iloc[4] & 0xF, iloc[5] >> 4
    index_size = iloc[5] & 0xF if version in (1, 2) else 0
    count, at = (struct.unpack(">H", iloc[6:8])[0], 8) if version < 2 else (struct.unpack(">I", iloc[6:10])[0], 10)
    id_size = 2 if version < 2 else 4
    for _ in range(count):
        item_id, at = int.from_bytes(iloc[at:at + id_size], "big"), at + id_size
        method = 0
        if version in (1, 2):
            method, at = struct.unpack(">H", iloc[at:at + 2])[0] & 0xF, at + 2
        at += 2  # data_reference_index
        base, at = int.from_bytes(iloc[at:at + base_size], "big"), at + base_size
        extents, at = struct.unpack(">H", iloc[at:at + 2])[0], at + 2
        first, at = at, at + extents * (index_size + offset_size + length_size)
        if at > len(iloc):
            raise IndexError("iloc is cut short")
        yield item_id, (method, [_extent(iloc, first + n * (index_size + offset_size + length_size) + index_size,
                                         offset_size, length_size, base) for n in range(extents)])


def _first_entries(entries: Iterator[Tuple[int, Entry]], items: Collection[int]) -> Dict[int, Entry]:
    """The first of ``entries`` for each of ``items``, those read only until all are found."""
    wanted, found = set(items), {}
    for item, entry in entries if wanted else ():
        if item in wanted and item not in found:
            found[item] = entry
            if len(found) == len(wanted):
                break
    return found


def _extent(iloc: bytes, at: int, offset_size: int, length_size: int, base: int) -> Tuple[int, int]:
    offset = int.from_bytes(iloc[at:at + offset_size], "big")
    return base + offset, int.from_bytes(iloc[at + offset_size:at + offset_size + length_size], "big")


def _properties_of(children: Dict[bytes, bytes], item: Optional[int]) -> List[Tuple[bytes, bytes]]:
    """(type, payload) of each property ``item`` (the primary where None) has, of a meta box's children."""
    pitm = children.get(b"pitm")
    if item is None and pitm is None:
        return []
    item = _primary_item(pitm) if item is None else item
    return _properties_by_item(children, [item]).get(item, [])


def _properties_by_item(children: Dict[bytes, bytes], items: Collection[int]) -> Dict[int, List[Tuple[bytes, bytes]]]:
    """(type, payload) of each property of each of ``items`` that ``ipma`` lists, of a meta box's
    children; ipma read no further than the last of them."""
    iprp = dict(payloads(children.get(b"iprp", b"")))
    if b"ipco" not in iprp or b"ipma" not in iprp:
        return {}
    properties = payloads(iprp[b"ipco"])
    return {item: [properties[index - 1] for index in indices if 0 < index <= len(properties)]
            for item, indices in _first_entries(_ipma_entries(iprp[b"ipma"]), items).items()}


def _ipma_entries(ipma: bytes) -> Iterator[Tuple[int, List[int]]]:
    """(item, 1-based ``ipco`` indices of the properties associated with it) of each of ``ipma``'s
    entries, in its order. Raises IndexError or struct.error where it is cut short."""
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
        yield item_id, indices
