"""Ultra HDR JPEGs (no Ray, no HTTP): an SDR JPEG with a gain map JPEG appended, as Android 14 and
later phones save their HDR photos; viewers that know the format brighten the SDR picture by it.

The primary picture's XMP (the ``hdrgm`` namespace, with a GContainer directory giving the gain
map's length) or its ISO 21496-1 APP2 segment says the file is one, and its MPF APP2 segment
(CIPA DC-007's MP index) says where the gain map starts and how long it is; without one, the
GContainer directory does, its items following the primary's EOI in its order (as Skia reads
it), and without that or where it places none, the picture right after the primary's EOI is taken
(as libultrahdr does).
What a viewer applies the gain map by is in the gain map's own XMP and ISO 21496-1 segments and,
where it is applied in another colour space than its primary's, its ICC profile; they go along as
they are.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from fractions import Fraction
from itertools import chain
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

SOI = b"\xff\xd8"
APP1, APP2, SOS, EOI = 0xE1, 0xE2, 0xDA, 0xD9
XMP_SIGNATURE = b"http://ns.adobe.com/xap/1.0/\x00"
# XMP too large for one segment (XMP Specification Part 3, 1.1.3.1): the standard XMP names a GUID
# in xmpNote:HasExtendedXMP, and segments of this signature carry the rest, each after that GUID
# (32 hex digits), the whole extended packet's length and the piece's offset in it
XMP_EXTENSION_SIGNATURE = b"http://ns.adobe.com/xmp/extension/\x00"
HAS_EXTENDED_XMP = re.compile(rb"xmpNote:HasExtendedXMP\s*=\s*[\"']([0-9A-Fa-f]{32})[\"']"
                              rb"|<xmpNote:HasExtendedXMP>\s*([0-9A-Fa-f]{32})\s*<")
ISO_GAIN_MAP_SIGNATURE = b"urn:iso:std:iso:ts:21496:-1\x00"
MPF_SIGNATURE = b"MPF\x00"
ICC_SIGNATURE = b"ICC_PROFILE\x00"
ICC_CHUNK_BYTES = 65519  # an APP2 segment's payload, less its 14-byte ICC_PROFILE header
# what a gain map picture says of itself: how it is applied (XMP, ISO 21496-1) and, where that is
# not in its primary's colour space, the colour space it is applied in (its ICC profile, as Skia writes it)
GAIN_MAP_SEGMENTS = {APP1: (XMP_SIGNATURE, XMP_EXTENSION_SIGNATURE), APP2: (ISO_GAIN_MAP_SIGNATURE, ICC_SIGNATURE)}
# what a primary says of its gain map: whether it has one (XMP, ISO 21496-1) and where (MPF, XMP)
PRIMARY_SEGMENTS = {APP1: (XMP_SIGNATURE, XMP_EXTENSION_SIGNATURE), APP2: (ISO_GAIN_MAP_SIGNATURE, MPF_SIGNATURE)}
HDRGM_NAMESPACE = b"http://ns.adobe.com/hdr-gain-map/1.0/"
# what a gain map's XMP states and its primary's does not: the most it boosts (Adobe's gain map
# specification requires it; libultrahdr and Skia read no gain map without it), in any prefix
GAIN_MAP_MAX = re.compile(rb":GainMapMax\s*=|:GainMapMax>")
# a primary's ISO 21496-1 payload is its version alone (two 16-bit numbers); a gain map's goes on
# with its numbers
ISO_VERSION_BYTES = 4
# hdrgm:Version as an attribute (how libultrahdr writes it) or as an element
HDRGM_VERSION = re.compile(rb"hdrgm:Version\s*=\s*[\"']([0-9.]{1,8})[\"']|<hdrgm:Version>\s*([0-9.]{1,8})\s*<")
# a GContainer item's fields, as attributes (libultrahdr, Pixel) or as elements (Adobe's XMP toolkit)
ITEM_FIELD = re.compile(rb"Item:(Semantic|Length|Padding)\s*=\s*[\"']([^\"']{0,32})[\"']"
                        rb"|<Item:(Semantic|Length|Padding)>\s*([^<]{0,32}?)\s*<")
# where a scan's entropy-coded data ends: a 0xFF neither stuffed (0xFF00) nor a restart marker's
# (fill bytes, 0xFF before a marker, are stepped over as markers alone)
SCAN_END = re.compile(rb"\xff[^\x00\xd0-\xd7]")
MP_ENTRY_TAG = 0xB002
MP_ENTRY_BYTES = 16  # attribute, size, offset, two dependent-image entries
MP_PRIMARY_ATTRIBUTE = 0x030000  # a baseline MP primary image, JPEG
MP_UNDEFINED_ATTRIBUTE = 0  # how Ultra HDR marks its gain map
MARKERS_WITHOUT_LENGTH = {0x01, *range(0xD0, 0xD8)}  # TEM and the restart markers


# why a JPEG whose primary declares a gain map comes back SDR, none being found: its hdr_note
GAIN_MAP_MISSING = ("the Ultra HDR photo's gain map is missing: its primary picture declares one, but no picture "
                    "follows it (an editor or an upload may have cut it off)")
GAIN_MAP_NOT_DESCRIBED = ("the Ultra HDR photo's second picture is no gain map: no hdrgm XMP or ISO 21496-1 segment "
                          "of its own states a gain map's numbers")
GAIN_MAP_QUALITY = 95  # where no quality is asked: a smooth gain map's JPEG error stays within one of its levels
# the least a gain map is written at, whatever quality its primary is: libjpeg's error on a smooth
# map (blurred noise, and the same with hard-edged highlights) at 80 is 0.35 of a level on average
# and at most 2 at the 99th percentile (about 0.02 stops at 2.3 stops of range); at 70 up to 3,
# at 50 up to 5, which shows as steps in a highlight's glow
LEAST_GAIN_MAP_QUALITY = 80
# ISO 21496-1's flags (libultrahdr's reading): three channels, applied in the primary's colour space,
# from an HDR base towards SDR, one denominator for all the numbers
ISO_MULTICHANNEL, ISO_USE_BASE_COLOUR_SPACE, ISO_BACKWARD_DIRECTION, ISO_COMMON_DENOMINATOR = 0x80, 0x40, 0x04, 0x08
# its numbers, each a numerator and a denominator: the base and alternate headroom (unsigned), then
# each channel's gain map min and max (signed), gamma (unsigned), base and alternate offset (signed)
ISO_FRACTIONS, ISO_CHANNEL_FRACTIONS = ">IIII", "iIiIIIiIiI"
MOST_STOPS = 128  # 2 to this power is past a single-precision float's range


@dataclass(frozen=True)
class GainMap:
    jpeg: bytes  # the gain map picture, SOI to EOI, its metadata segments included
    metadata: bytes  # its XMP, ISO 21496-1 and ICC segments as stored (marker and length included)
    hdrgm_version: Optional[str]  # the primary's hdrgm:Version; None where only ISO 21496-1 says it is one
    iso_version: Optional[bytes]  # the payload of the primary's ISO 21496-1 segment (its version alone)
    kind: str = "Ultra HDR"  # whose HDR photo it came from, as the output's hdr_note names it


def gain_map_quality(quality: Optional[int]) -> int:
    """The JPEG quality a gain map is written at: its primary's ``quality`` (95 where none is
    asked), never under :data:`LEAST_GAIN_MAP_QUALITY`."""
    return max(quality or GAIN_MAP_QUALITY, LEAST_GAIN_MAP_QUALITY)


@dataclass(frozen=True)
class GainMapNumbers:
    """ISO 21496-1's numbers of a gain map, as fractions: the headrooms, gains and gammas in stops
    (log2), as hdrgm's XMP states them too; offsets linear."""

    base_headroom: Fraction
    alternate_headroom: Fraction
    # each channel's (gain map min, max, gamma, base offset, alternate offset): one, or red, green, blue
    channels: Tuple[Tuple[Fraction, ...], ...]
    use_base_colour_space: bool = True  # else applied in the alternate picture's colour space


def log2_gain_map_metadata(max_stops: float) -> bytes:
    """A one-channel gain map's XMP (hdrgm) and ISO 21496-1 segments, its levels 0 to 1 standing
    for a boost of 0 to ``max_stops`` stops, linear in stops (Gamma 1), with no offsets, in full
    on a display of ``max_stops`` of headroom and not at all on an SDR one."""
    stops = Fraction(max_stops).limit_denominator(1_000_000)
    numbers = GainMapNumbers(Fraction(0), stops, ((Fraction(0), stops, Fraction(1), Fraction(0), Fraction(0)),))
    return gain_map_segments(numbers)


def gain_map_segments(numbers: GainMapNumbers) -> bytes:
    """A gain map's XMP (hdrgm) and ISO 21496-1 segments stating ``numbers``."""
    return (jpeg_segment(APP1, XMP_SIGNATURE + hdrgm_xmp(numbers))
            + jpeg_segment(APP2, ISO_GAIN_MAP_SIGNATURE + iso_gain_map_payload(numbers)))


def iso_gain_map_payload(numbers: GainMapNumbers) -> bytes:
    """ISO 21496-1's metadata of ``numbers`` as its APP2 segment holds it past the signature:
    versions 0, its flags, then each number its own fraction. libultrahdr's common denominator
    (flag 0x08) is reserved in ISO 21496-1 as published: Skia and libavif read no such form."""
    flags = ((ISO_MULTICHANNEL if len(numbers.channels) == 3 else 0)
             | (ISO_USE_BASE_COLOUR_SPACE if numbers.use_base_colour_space else 0))
    values = (numbers.base_headroom, numbers.alternate_headroom, *chain.from_iterable(numbers.channels))
    pairs = [part for value in values for part in (value.numerator, value.denominator)]
    return struct.pack(">HHB", 0, 0, flags) + struct.pack(ISO_FRACTIONS + ISO_CHANNEL_FRACTIONS * len(numbers.channels),
                                                           *pairs)


def iso_gain_map_numbers(iso: bytes) -> GainMapNumbers:
    """The numbers of ISO 21496-1's metadata (minimum and writer version first, as its APP2 segment
    holds it past the signature), as libultrahdr reads them; ValueError where it is cut short,
    states a version past 0, a zero denominator, or numbers hdrgm has no gain map of (see below)."""
    try:
        minimum_version, _, flags = struct.unpack_from(">HHB", iso)
        # a gain map from an HDR base towards SDR: hdrgm and libultrahdr have none
        if minimum_version != 0 or flags & ISO_BACKWARD_DIRECTION:
            raise ValueError("a version past 0 or a gain map from an HDR base picture")
        channel_count = 3 if flags & ISO_MULTICHANNEL else 1
        if flags & ISO_COMMON_DENOMINATOR:
            denominator, base, alternate = struct.unpack_from(">III", iso, 5)
            values = struct.unpack_from(">" + "iiIii" * channel_count, iso, 17)
            fractions = [Fraction(value, denominator) for value in (base, alternate, *values)]
        else:
            pairs = struct.unpack_from(ISO_FRACTIONS + ISO_CHANNEL_FRACTIONS * channel_count, iso, 5)
            fractions = [Fraction(pairs[i], pairs[i + 1]) for i in range(0, len(pairs), 2)]
    except (struct.error, ZeroDivisionError) as exc:
        raise ValueError("cut short or a zero denominator") from exc
    numbers = GainMapNumbers(fractions[0], fractions[1],
                             tuple(tuple(fractions[2 + 5 * c:7 + 5 * c]) for c in range(channel_count)),
                             bool(flags & ISO_USE_BASE_COLOUR_SPACE))
    _check_hdrgm_numbers(numbers)
    return numbers


def _check_hdrgm_numbers(numbers: GainMapNumbers) -> None:
    """ValueError where ``numbers`` are not what hdrgm requires (libultrahdr refuses the rest): an
    SDR base picture (less headroom than the alternate), a gamma above 0, a maximum gain no less
    than the minimum; and headrooms and gains under :data:`MOST_STOPS` stops: libultrahdr holds 2 to
    their power in single precision, and refuses one infinite or 0."""
    channels = numbers.channels
    if numbers.alternate_headroom <= numbers.base_headroom or any(
            gamma <= 0 or high < low for low, high, gamma, _, _ in channels):
        raise ValueError("an HDR base picture, a gamma of 0 or less, or a maximum gain under the minimum")
    stops = (numbers.alternate_headroom, *(bound for channel in channels for bound in channel[:2]))
    if any(abs(value) >= MOST_STOPS for value in stops):
        raise ValueError(f"a headroom or gain of {MOST_STOPS} stops or more")


def hdrgm_xmp(numbers: GainMapNumbers) -> bytes:
    """A gain map's XMP (hdrgm 1.0) stating ``numbers``: one channel's as attributes, three
    channels' as ordered lists (red, green, blue) where they differ."""
    names = ("GainMapMin", "GainMapMax", "Gamma", "OffsetSDR", "OffsetHDR")
    attributes = [f'hdrgm:HDRCapacityMin="{float(numbers.base_headroom):.6f}"',
                  f'hdrgm:HDRCapacityMax="{float(numbers.alternate_headroom):.6f}"']
    elements = []
    for index, name in enumerate(names):
        values = [float(channel[index]) for channel in numbers.channels]
        if len(set(values)) == 1:
            attributes.append(f'hdrgm:{name}="{values[0]:.6f}"')
        else:
            items = "".join(f"<rdf:li>{value:.6f}</rdf:li>" for value in values)
            elements.append(f"<hdrgm:{name}><rdf:Seq>{items}</rdf:Seq></hdrgm:{name}>")
    return ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
            f'<rdf:Description rdf:about="" xmlns:hdrgm="{HDRGM_NAMESPACE.decode()}" hdrgm:Version="1.0" '
            f'{" ".join(attributes)} hdrgm:BaseRenditionIsHDR="False">{"".join(elements)}</rdf:Description>'
            '</rdf:RDF></x:xmpmeta>').encode("utf-8")


def iso_version_only() -> bytes:
    """The primary's ISO 21496-1 payload: minimum and writer version 0, the metadata being the gain map's."""
    return ISO_GAIN_MAP_SIGNATURE + bytes(4)


def gain_map_of(data: bytes) -> Tuple[Optional[GainMap], Optional[str]]:
    """The gain map of an Ultra HDR JPEG; (None, None) for a JPEG whose primary declares none (an
    MPO stereo pair, a camera's large thumbnail: their second picture is no gain map), and (None,
    why) for one that declares a gain map it lacks."""
    if not data.startswith(SOI):
        return None, None
    # the others are not held: a hostile header of millions of empty segments would take gigabytes
    segments = list(_header_segments(data, PRIMARY_SEGMENTS))
    payloads = [(kind, payload) for kind, _, payload in segments]
    if not declares_gain_map(payloads):
        return None, None
    xmp = _xmp(payloads)
    pictures = 0
    # the MP index is read first; the primary's end is found only where it lists no gain map
    for picture in chain(_secondary_pictures(data, segments), _pictures_after_primary(data, xmp)):
        pictures += 1
        metadata = _gain_map_metadata(picture)
        if metadata:
            iso_version = _payload(payloads, APP2, ISO_GAIN_MAP_SIGNATURE)
            return GainMap(picture, metadata, _hdrgm_version(xmp), iso_version), None
    return None, GAIN_MAP_NOT_DESCRIBED if pictures else GAIN_MAP_MISSING


def declares_gain_map(segments: Iterable[Tuple[int, bytes]]) -> bool:
    """Whether a primary picture's segments (marker and payload) say a gain map follows it: an XMP
    (its extended XMP included) in the hdrgm namespace or an ISO 21496-1 segment."""
    segments = list(segments)
    xmp = _xmp(segments)
    return bool(xmp and HDRGM_NAMESPACE in xmp) or _payload(segments, APP2, ISO_GAIN_MAP_SIGNATURE) is not None


def with_gain_map(head: bytes, rest: bytes, gain_map: GainMap) -> bytes:
    """An Ultra HDR JPEG of a primary JPEG cut in two, ``head`` (SOI and the segments written
    first) and ``rest``, and ``gain_map``: between them go the hdrgm XMP (its directory giving the
    gain map's length), the ISO 21496-1 version segment and the MP index of both pictures; the gain
    map follows the primary's EOI."""
    xmp = jpeg_segment(APP1, XMP_SIGNATURE + _container_xmp(gain_map.hdrgm_version, len(gain_map.jpeg))) \
        if gain_map.hdrgm_version else b""
    iso = jpeg_segment(APP2, gain_map.iso_version) if gain_map.iso_version else b""
    head += xmp + iso
    mpf_bytes = len(jpeg_segment(APP2, _mp_index(0, 0, 0)))
    primary_bytes = len(head) + mpf_bytes + len(rest)
    index_at = len(head) + 4 + len(MPF_SIGNATURE)  # past the segment's marker, length and signature
    mpf = jpeg_segment(APP2, _mp_index(primary_bytes, len(gain_map.jpeg), primary_bytes - index_at))
    return head + mpf + rest + gain_map.jpeg


def with_metadata(jpeg: bytes, metadata: bytes) -> bytes:
    """``jpeg`` with the segments ``metadata`` right after its SOI."""
    return jpeg[:2] + metadata + jpeg[2:]


def _header_segments(data: bytes, kinds: Dict[int, Tuple[bytes, ...]]) -> Iterator[Tuple[int, int, bytes]]:
    """Each segment of ``kinds`` (a marker's signatures) of a JPEG before its picture data: its
    marker, where it starts and its payload (cut short where the file is)."""
    for marker, at, end in first_picture_markers(data):
        if marker in (SOS, EOI):
            return
        if data.startswith(kinds.get(marker, ()), at + 4):
            yield marker, at, data[at + 4:end]


def first_picture_markers(data: bytes) -> Iterator[Tuple[int, int, int]]:
    """(marker, where it starts, where what it holds ends) of each marker of a JPEG's first picture
    after its SOI, to its EOI: a segment ends past its length (cut short where the file is), an
    SOS past the entropy-coded data after it (:data:`SCAN_END`; the file's end where no marker
    follows), the EOI past itself. Fill bytes, TEM and restart markers hold nothing and are not
    given. Ends early where a segment's length is cut off."""
    at = 2  # past SOI
    while at + 2 <= len(data) and data[at] == 0xFF:
        marker = data[at + 1]
        if marker == 0xFF or marker in MARKERS_WITHOUT_LENGTH:  # a fill byte, a marker alone
            at += 1 if marker == 0xFF else 2
            continue
        if marker == EOI:
            yield marker, at, at + 2
            return
        if at + 4 > len(data):
            return
        end = at + 2 + struct.unpack(">H", data[at + 2:at + 4])[0]
        if marker == SOS:
            scan_end = SCAN_END.search(data, min(end, len(data)))
            end = scan_end.start() if scan_end else len(data)
        yield marker, at, end
        at = end


def _payload(segments: List[Tuple[int, bytes]], marker: int, signature: bytes) -> Optional[bytes]:
    return next((payload for kind, payload in segments if kind == marker and payload.startswith(signature)), None)


def _xmp(segments: List[Tuple[int, bytes]]) -> Optional[bytes]:
    """A picture's XMP packet, then its extended XMP where it names one (Skia searches both, the
    standard first, as a search of this joined text does)."""
    standard = _payload(segments, APP1, XMP_SIGNATURE)
    guid = HAS_EXTENDED_XMP.search(standard) if standard else None
    if guid is None:
        return standard
    return standard + _extended_xmp(segments, guid.group(1) or guid.group(2))


def _extended_xmp(segments: List[Tuple[int, bytes]], guid: bytes) -> bytes:
    """The extended XMP of ``guid``, its pieces put in order by their offsets; it ends where a
    piece is missing."""
    pieces = {}
    for kind, payload in segments:
        if kind == APP1 and payload.startswith(XMP_EXTENSION_SIGNATURE + guid):
            header = payload[len(XMP_EXTENSION_SIGNATURE) + len(guid):]
            if len(header) > 8:
                pieces[struct.unpack(">I", header[4:8])[0]] = header[8:]
    ordered, length = [], 0
    while length in pieces:  # a piece of no bytes is popped all the same: no offset is visited twice
        ordered.append(pieces.pop(length))
        length += len(ordered[-1])
    return b"".join(ordered)


def _secondary_pictures(data: bytes, segments: List[Tuple[int, int, bytes]]) -> Iterator[bytes]:
    """The pictures after the first that the MP index lists, each from its SOI on."""
    for kind, at, payload in segments:
        if kind != APP2 or not payload.startswith(MPF_SIGNATURE):
            continue
        index_at = at + 4 + len(MPF_SIGNATURE)
        for size, offset in _mp_entries(payload[len(MPF_SIGNATURE):])[1:]:
            picture = data[index_at + offset:index_at + offset + size]
            if picture.startswith(SOI):
                yield picture
        return


def _pictures_after_primary(data: bytes, xmp: Optional[bytes]) -> Iterator[bytes]:
    """The gain map where the GContainer directory of the primary's XMP places it, then the picture
    right after the primary's EOI, to its own EOI: libultrahdr takes that one, reading no directory,
    and a directory a tool left stale (stating a video or padding it cut out) places it wrong."""
    end = _end_of_first_picture(data)
    if end is None:
        return
    by_directory = _placed_by_directory(data, _container_items(xmp), end)
    if by_directory:
        yield by_directory
    if data.startswith(SOI, end):
        rest = data[end:]
        after_primary = rest[:_end_of_first_picture(rest) or len(rest)]
        if after_primary != by_directory:
            yield after_primary


def _placed_by_directory(data: bytes, items: List[Tuple[str, int, int]], end: int) -> bytes:
    """The picture a GContainer directory's items place as the gain map after the primary's EOI at
    ``end``: past the primary's ``Padding`` and each item before it in the directory's order, as
    Skia reads it (no other item's padding counts); none where no picture starts there."""
    if not items or items[0][0] != "Primary":
        return b""
    at = end + items[0][2]
    for semantic, length, _ in items[1:]:
        if semantic == "GainMap":
            return data[at:at + length] if data.startswith(SOI, at) else b""
        at += length
    return b""


def _container_items(xmp: Optional[bytes]) -> List[Tuple[str, int, int]]:
    """(Semantic, Length, Padding) of each item of a GContainer directory, in its order; a length
    or padding not stated or not a number counts as 0."""
    directory = (xmp or b"").partition(b"<Container:Directory")[2].partition(b"</Container:Directory>")[0]
    items = []
    # each item's text runs to the next's start: a split, not a pattern that could search on past
    # every unclosed item to the end of a hostile packet of megabytes
    for item in directory.split(b"<Container:Item")[1:]:
        fields = {}
        for name, value, element_name, element_value in ITEM_FIELD.findall(item):
            fields.setdefault((name or element_name).decode(), (value or element_value).decode("ascii", "replace"))
        items.append((fields.get("Semantic", ""), _whole_number(fields.get("Length")),
                      _whole_number(fields.get("Padding"))))
    return items


def _whole_number(text: Optional[str]) -> int:
    return int(text) if text and text.isdigit() else 0


def _end_of_first_picture(data: bytes) -> Optional[int]:
    """Where a JPEG's first picture ends, just past its EOI; None where the picture is cut short."""
    return next((end for marker, _, end in first_picture_markers(data) if marker == EOI), None)


def _mp_entries(index: bytes) -> List[Tuple[int, int]]:
    """(size, offset from the index's TIFF header) of each picture an MP index lists; none where it
    cannot be read."""
    order = {b"MM\x00*": ">", b"II*\x00": "<"}.get(index[:4])
    try:
        if order is None:
            return []
        directory = struct.unpack(order + "I", index[4:8])[0]
        for entry in range(struct.unpack(order + "H", index[directory:directory + 2])[0]):
            at = directory + 2 + 12 * entry
            tag, _, length, offset = struct.unpack(order + "HHII", index[at:at + 12])
            if tag == MP_ENTRY_TAG:
                return [struct.unpack(order + "4xII", index[offset + i:offset + i + 12])
                        for i in range(0, length - length % MP_ENTRY_BYTES, MP_ENTRY_BYTES)]
    except struct.error:
        pass
    return []


def _gain_map_metadata(picture: bytes) -> bytes:
    """A picture's XMP (extended XMP included), ISO 21496-1 and ICC profile segments, where its
    XMP or ISO 21496-1 segment states a gain map's numbers (another Ultra HDR photo's primary
    declares one with hdrgm:Version or the ISO version alone); else none."""
    kept = [(kind, picture[at:at + 4 + len(payload)], payload)
            for kind, at, payload in _header_segments(picture, GAIN_MAP_SEGMENTS)]
    payloads = [(kind, payload) for kind, _, payload in kept]
    xmp = _xmp(payloads) or b""
    iso = _payload(payloads, APP2, ISO_GAIN_MAP_SIGNATURE) or b""
    if not (HDRGM_NAMESPACE in xmp and GAIN_MAP_MAX.search(xmp)) and \
            len(iso) <= len(ISO_GAIN_MAP_SIGNATURE) + ISO_VERSION_BYTES:
        return b""
    return b"".join(segment for _, segment, _ in kept)


def _hdrgm_version(xmp: Optional[bytes]) -> Optional[str]:
    """hdrgm:Version of a primary's XMP in the hdrgm namespace (1.0 where it cannot be read)."""
    if not xmp or HDRGM_NAMESPACE not in xmp:
        return None
    found = HDRGM_VERSION.search(xmp)
    return (found.group(1) or found.group(2)).decode("ascii") if found else "1.0"


def _container_xmp(version: str, gain_map_bytes: int) -> bytes:
    """The primary's XMP: the hdrgm version and a GContainer directory of the two pictures."""
    items = ('<rdf:li rdf:parseType="Resource"><Container:Item Item:Semantic="Primary" Item:Mime="image/jpeg"/>'
             '</rdf:li><rdf:li rdf:parseType="Resource"><Container:Item Item:Semantic="GainMap" '
             f'Item:Mime="image/jpeg" Item:Length="{gain_map_bytes}"/></rdf:li>')
    return ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
            '<rdf:Description rdf:about="" xmlns:Container="http://ns.google.com/photos/1.0/container/" '
            'xmlns:Item="http://ns.google.com/photos/1.0/container/item/" '
            f'xmlns:hdrgm="{HDRGM_NAMESPACE.decode()}" hdrgm:Version="{version}">'
            f'<Container:Directory><rdf:Seq>{items}</rdf:Seq></Container:Directory>'
            '</rdf:Description></rdf:RDF></x:xmpmeta>').encode("utf-8")


def _mp_index(primary_bytes: int, gain_map_bytes: int, gain_map_offset: int) -> bytes:
    """An MPF payload, big-endian: MPFVersion, NumberOfImages 2 and the MP entries, the primary's at
    offset 0 (as CIPA DC-007 has it), the gain map's from the index's TIFF header."""
    tags = [(0xB000, 7, 4, b"0100"), (0xB001, 4, 1, struct.pack(">I", 2))]
    entries_at = 8 + 2 + 12 * (len(tags) + 1) + 4  # TIFF header, count, the tags, the next directory's offset
    tags.append((MP_ENTRY_TAG, 7, 2 * MP_ENTRY_BYTES, struct.pack(">I", entries_at)))
    directory = struct.pack(">H", len(tags)) + b"".join(struct.pack(">HHI4s", *tag) for tag in tags) + b"\0" * 4
    entries = (struct.pack(">IIIHH", MP_PRIMARY_ATTRIBUTE, primary_bytes, 0, 0, 0)
               + struct.pack(">IIIHH", MP_UNDEFINED_ATTRIBUTE, gain_map_bytes, gain_map_offset, 0, 0))
    return MPF_SIGNATURE + b"MM\x00*" + struct.pack(">I", 8) + directory + entries


def icc_segments(profile: bytes) -> bytes:
    """An ICC profile as a JPEG carries it: APP2 segments, each numbered, of one count."""
    parts = [profile[i:i + ICC_CHUNK_BYTES] for i in range(0, len(profile), ICC_CHUNK_BYTES)]
    return b"".join(jpeg_segment(APP2, ICC_SIGNATURE + bytes([number, len(parts)]) + part)
                    for number, part in enumerate(parts, 1))


def jpeg_segment(marker: int, payload: bytes) -> bytes:
    if len(payload) + 2 > 0xFFFF:
        return b""  # an EXIF block too large for one segment is left out rather than corrupting the file
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload
