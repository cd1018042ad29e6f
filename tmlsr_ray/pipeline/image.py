"""Image decode, probe and encode (no Ray, no HTTP).

Pixels are kept as OpenCV reads them with ``IMREAD_UNCHANGED``: grayscale (H, W), BGR (H, W, 3) or
BGRA (H, W, 4), uint8 or uint16, the layout Real-ESRGAN's reference code works on. HEIC/HEIF
(pillow-heif) and AVIF (Pillow's own) photos are read through Pillow. The input's ICC profile and
EXIF (Orientation reset to 1, since the pixels are turned upright) go into the output: OpenCV's
encoders drop both, so they are added to its PNG and JPEG bytes, and WebP is written by Pillow.
An HDR (PQ or HLG) photo's colour goes into a PNG's cICP chunk, as a PNG input's SDR cICP goes back
into a PNG (and, as a profile made from it, into a JPEG or WebP), and an Ultra HDR JPEG's gain map
after its primary picture again (:mod:`~tmlsr_ray.pipeline.photo_hdr` chooses and scales them).
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Dict, Iterator, Optional, Tuple

import av
import cv2
import numpy as np
import pillow_heif
from PIL import Image, TiffImagePlugin, UnidentifiedImageError
from PIL.PngImagePlugin import MAX_TEXT_CHUNK

from tmlsr_ray.errors import InputError
from tmlsr_ray.pipeline.apple_hdr import apple_gain_map, declares_apple_gain_map
from tmlsr_ray.pipeline.av1_header import SEQUENCE_HEADER_BYTES, largest_frame_size
from tmlsr_ray.pipeline.colour import BT2020, HDR_TRANSFERS, PRIMARIES, ToneMap
from tmlsr_ray.pipeline.gainmap import (SOS, GainMap, declares_gain_map, first_picture_markers, gain_map_of,
                                       icc_segments, jpeg_segment, with_gain_map, with_metadata)
from tmlsr_ray.pipeline.heif_boxes import (MasteringDisplay, bits_per_channel, content_light_level, declares_avif,
                                           item_tables_problem, mastering_display, primary_grid_problem,
                                           primary_item_properties, primary_item_start, spatial_extent, stated_nclx)
from tmlsr_ray.pipeline.iso_hdr import iso_gain_map
from tmlsr_ray.pipeline.nclx import displayable, icc_cicp, icc_from_nclx
from tmlsr_ray.pipeline import png_chunks, tiff_pieces

pillow_heif.register_heif_opener()  # HEIC/HEIF through Image.open, like every other format
# the probe refuses an image over max_input_pixels from its header; Pillow's own bound (179 Mpx)
# refused, as a decompression bomb, an image a larger max_input_pixels admits
Image.MAX_IMAGE_PIXELS = None

# MPO: a JPEG with the Multi-Picture extension (cameras and phones write it), its first picture
FORMATS = {"PNG": "png", "JPEG": "jpeg", "MPO": "jpeg", "WEBP": "webp", "BMP": "bmp", "TIFF": "tiff",
           "GIF": "gif", "HEIF": "heic", "AVIF": "avif"}
READ_BY_PILLOW = {"gif", "heic", "avif"}  # formats OpenCV's decoder lacks (or may lack)
EXIF_ORIENTATION_TAG = 0x0112
EXIF_IFD_TAG, EXIF_PIXEL_DIMENSION_TAGS = 0x8769, (0xA002, 0xA003)
# TIFF tags of how a file stores its own pixels (a TIFF's first directory is where its EXIF is
# read from): in the output they would describe the input's strips, compression and size. The
# ICC profile (34675) travels on its own; 37724 is Photoshop's layer data.
PIXEL_LAYOUT_TAGS = {254, 255, 256, 257, 258, 259, 262, 263, 266, 273, 277, 278, 279, 280, 281, 284, 317, 320,
                     322, 323, 324, 325, 338, 339, 347, 530, 34675, 37724}
TIFF_PHOTOMETRIC_NAMES = {0: "gray", 1: "gray", 2: "RGB", 3: "palette", 4: "mask", 5: "CMYK", 6: "YCbCr", 8: "Lab"}
BMP_CORE_HEADER_BYTES = 12  # OS/2 1.x's BITMAPCOREHEADER, in place of Windows' 40-byte or longer one
BMP_BITS_AT = 28  # where a Windows BMP header's bits per pixel are
# the longest side each output format holds (PNG: libpng's default limit)
MAX_SIDE = {"webp": 16383, "jpeg": 65535, "png": 1_000_000}
DEFAULT_QUALITY = 95
JPEG_APP0 = 0xE0  # APPn's marker is JPEG_APP0 + n
# 64 one bits (stuffed): no Huffman table holds a code of all ones, so a decoder that reads past a
# scan's own data into them meets a code that is none; a whole scan's last block ends before them
JPEG_SCAN_OVERRUN = b"\xff\x00" * 8
# why an Ultra HDR JPEG's gain map was left out at the probe: its hdr_note, the photo coming back SDR
GAIN_MAP_DAMAGED = "the Ultra HDR photo's gain map could not be read whole (cut short or damaged)"
GAIN_MAP_TOO_LARGE = "the Ultra HDR photo's gain map is wider or higher than its picture"
UNPREMULTIPLY_ROWS = 256
# what Pillow and its plugins raise for a file they cannot read: OSError mostly, SyntaxError for a
# broken PNG chunk, RuntimeError and EOFError for libavif's and libheif's errors (a truncated AVIF,
# a HEIC whose stated size is over libheif's own limit, one whose picture data is cut short)
DECODER_ERRORS = (OSError, SyntaxError, RuntimeError, EOFError)
# what the words of Pillow and its plugins for a file they cannot read mean of the file, and whether
# their words add to that (libheif's name the box at fault; 'could not create decoder object' does not)
DECODER_COMPLAINTS = (
    ("could not create decoder object", "its WebP chunks are cut off or damaged", False),
    ("tile cannot extend outside image", "a part of its picture (a frame, strip or tile) has no pixels or lies "
     "outside the image (the file is damaged)", False),
    ("broken data stream", "its compressed picture data is damaged", False),
    ("unexpected end of file", "the file is cut off before its picture ends", True),
    ("items, which exceeds the security limit", "it holds more items (a grid's tiles among them) than its decoder "
     "reads", True),
    ("security limit exceeded", "it states a size over what its decoder reads", True),
    ("truncated", "the file is cut off before its picture ends", False),
)


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    format: str  # "png" | "jpeg" | "webp" | ...
    mode: str  # PIL mode of the file, e.g. "RGB", "RGBA", "L", "I;16", "CMYK"
    orientation: int  # EXIF orientation, 1 = as stored
    icc_profile: Optional[bytes] = None
    exif: Optional[bytes] = None  # the input's EXIF (TIFF bytes), Orientation set to 1
    png_colour: Optional[bytes] = None  # a PNG's gAMA, cHRM and sRGB chunks, or its SDR cICP, as they go into a PNG
    hdr_colour: Optional["HdrColour"] = None  # a PQ or HLG photo's code points (nclx, cICP, an ICC cicp tag)
    gain_map: Optional[GainMap] = None  # an Ultra HDR JPEG's as stored, an iPhone or Android HEIC's made one
    gain_map_left_out: Optional[str] = None  # why an Ultra HDR JPEG's or HEIC's gain map could not be kept

    @property
    def upright_size(self) -> Tuple[int, int]:
        """Width and height as viewers show the image (orientations 5-8 turn it a quarter)."""
        return (self.height, self.width) if self.orientation in (5, 6, 7, 8) else (self.width, self.height)


@dataclass(frozen=True)
class HdrColour:
    """What an HDR photo states of its colour (code points: a HEIC's or AVIF's ``nclx``, a PNG's
    cICP, an ICC profile's cicp tag) and light (``clli``, ``mdcv``; a PNG's cLLI, mDCV):
    a PNG states it again in its cICP, cLLI and mDCV chunks, and the tone map to SDR starts from it."""

    primaries: int
    transfer: int  # 16 (PQ) or 18 (HLG)
    light_level: Optional[Tuple[int, int]] = None  # MaxCLL, MaxFALL (cd/m²)
    display: Optional[MasteringDisplay] = None

    @classmethod
    def stated(cls, primaries: int, transfer: int, light_level: Optional[Tuple[int, int]],
               display: Optional[MasteringDisplay]) -> "HdrColour":
        """Unstated or unknown primaries are BT.2100's, as for a video."""
        return cls(primaries if primaries in PRIMARIES else BT2020, transfer, light_level, display)

    @property
    def name(self) -> str:
        return HDR_TRANSFERS[self.transfer]

    def tone_map(self) -> ToneMap:
        return ToneMap.for_stream({"color_primaries": self.primaries, "color_trc": self.transfer}, self._mastering(),
                                  srgb=True)

    def _mastering(self) -> Dict[str, str]:
        """The light levels in the notation a video's are kept in (x265's), which sets the tone map's peak."""
        mastering = {}
        if self.light_level:
            mastering["cll"] = "{},{}".format(*self.light_level)
        if self.display:
            d = self.display
            mastering["master_display"] = "G({},{})B({},{})R({},{})WP({},{})L({},{})".format(
                *d.green, *d.blue, *d.red, *d.white, d.max_luminance, d.min_luminance)
        return mastering


def probe_image(path: Path, max_pixels: int) -> ImageInfo:
    """Reads the header only; refuses unreadable files and pixel floods before any decoding."""
    try:
        with Image.open(png_chunks.without_damaged_chunks(path) or path) as img:
            width, height = img.size
            fmt = FORMATS.get(img.format or "")
            # from the header, before anything past it is read
            _check_pixels(img.format, fmt, width, height, max_pixels)
            if fmt == "tiff":
                _refuse_piece_inside_header(img.tag_v2)
            if fmt == "avif":
                _check_avif_coded_size(path)
            mode = img.mode
            exif = _readable_exif(img, path, fmt)
            # Pillow gives a TIFF's size upright and OpenCV decodes its pixels upright, as
            # libheif does a HEIF's: nothing is left to turn
            orientation = 1 if fmt in ("tiff", "heic") else _orientation(exif.get(EXIF_ORIENTATION_TAG))
            icc_profile, png_colour, hdr_colour = _stated_colour(img, path, fmt)
            # an iPhone's maker note is read before the EXIF is pared
            gain_map, gain_map_left_out = _heif_gain_map(path, fmt, img.info, exif, (width, height))
            upright_exif = _upright_exif(exif)
        if fmt == "jpeg" and _declares_gain_map(img):
            gain_map, gain_map_left_out = _decodable_gain_map(path, (width, height))
    except UnidentifiedImageError as exc:
        layout = _tiff_layout(path)
        if layout:
            raise InputError(f"input is a TIFF of {layout}, which is not supported") from exc
        refusal = _heif_refusal(path)
        if refusal:
            raise InputError(f"input HEIC cannot be read: {refusal}") from exc
        raise InputError("input is not a readable image (no PNG, JPEG, WEBP, GIF, BMP, TIFF, HEIC or "
                         "AVIF data found)") from exc
    except ValueError as exc:  # Pillow's bound on what a PNG's compressed text and ICC chunks inflate to
        raise InputError(f"input image holds metadata that could not be read ({_first_line(exc)}); a PNG's "
                         f"compressed text or ICC profile chunk may inflate to {MAX_TEXT_CHUNK:,} bytes") from exc
    except DECODER_ERRORS as exc:
        raise InputError(f"input image cannot be read: {_what_is_wrong(exc)}") from exc
    return ImageInfo(width, height, fmt, mode, orientation, icc_profile, upright_exif, png_colour, hdr_colour,
                     gain_map, gain_map_left_out)


def _heif_refusal(path: Path) -> Optional[str]:
    """Why a HEIF Pillow identified as none cannot be read, in words: pillow-heif's refusal (libheif's
    security limits: a grid of thousands of tiles is over its 1,000 items) reaches Pillow, which
    says only that it knows no such image; None for a file that is no HEIF, or an AVIF."""
    if not pillow_heif.is_supported(path) or declares_avif(path):
        return None
    problem = item_tables_problem(path) or primary_grid_problem(path)
    if problem:
        return problem
    try:
        pillow_heif.open_heif(path)
    except (*DECODER_ERRORS, ValueError, IndexError) as exc:
        return _what_is_wrong(exc)
    return None


def _heif_gain_map(path: Path, fmt: Optional[str], heif_info: dict, exif: Image.Exif, primary_size: Tuple[int, int]
                   ) -> Tuple[Optional[GainMap], Optional[str]]:
    """A HEIC's gain map, an iPhone's (Apple's auxiliary image) or an ISO 21496-1 one (a ``tmap``
    item), or an AVIF's (ISO 21496-1 alone). Where an iPhone's HEIC (iOS 18) has both, Apple's is
    kept, as before iOS 18: its tmap item is derived from the same gain map picture, and the
    tmap's numbers are not clearly better than the maker note's, whose reading is checked against
    Apple's published formula. An AVIF's primary is as Pillow gives it, as stored (its irot and
    imir are its EXIF orientation), and its gain map is read so, the orientation turning both."""
    if fmt == "heic" and declares_apple_gain_map(heif_info):
        return apple_gain_map(path, exif, primary_size)
    if fmt not in ("heic", "avif"):
        return None, None
    return iso_gain_map(path, primary_size, primary_as_stored=fmt == "avif")


def _declares_gain_map(img: Image.Image) -> bool:
    """From the APPn segments Pillow read with a JPEG's header: only a file whose primary picture
    declares a gain map is read whole for it."""
    return declares_gain_map((JPEG_APP0 + int(name[3:]), payload) for name, payload in getattr(img, "applist", [])
                             if name.startswith("APP"))


def _decodable_gain_map(path: Path, primary_size: Tuple[int, int]) -> Tuple[Optional[GainMap], Optional[str]]:
    """An Ultra HDR JPEG's gain map, where it is no wider and no higher than its primary picture (by
    its header: max_input_pixels bounds the primary alone, and scaled with the primary it stays
    within what JPEG holds) and its pixels can be read whole (one cut short or damaged, which
    libjpeg fills gray, describes no picture); else the photo is an SDR one, and why is said."""
    gain_map, missing = gain_map_of(path.read_bytes())
    if gain_map is None:
        return None, missing
    try:
        with Image.open(io.BytesIO(gain_map.jpeg)) as img:
            width, height = img.size
        if width > primary_size[0] or height > primary_size[1]:
            return None, GAIN_MAP_TOO_LARGE
        if _jpeg_pixels(np.frombuffer(gain_map.jpeg, np.uint8)) is not None:
            return gain_map, None
    except (InputError, *DECODER_ERRORS):
        pass
    return None, GAIN_MAP_DAMAGED


def _check_pixels(pillow_format: Optional[str], fmt: Optional[str], width: int, height: int, max_pixels: int) -> None:
    """Refuses a format not served and a size over the limit, from the header alone."""
    if fmt is None:
        raise InputError(f"unsupported image format {pillow_format}; use PNG, JPEG, WEBP, GIF, BMP, TIFF, HEIC or AVIF")
    if width <= 0 or height <= 0:
        raise InputError(f"image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise InputError(
            f"image is {width}x{height} = {width * height:,} pixels, over the limit of {max_pixels:,}"
        )


def _check_avif_coded_size(path: Path) -> None:
    """Refuses an AVIF whose ``ispe`` states a picture wider or higher than its AV1 sequence header
    holds: libavif scales the coded picture up to the stated size (a 48x32 one stated 96x64 came
    back 96x64, every pixel doubled), and the upscale of that enlargement was served as the photo's."""
    stated = spatial_extent(primary_item_properties(path))
    coded = largest_frame_size(primary_item_start(path, 16 + SEQUENCE_HEADER_BYTES) or b"")
    if stated and coded and (stated[0] > coded[0] or stated[1] > coded[1]):
        raise InputError(f"input AVIF is damaged: it states a {stated[0]}x{stated[1]} picture (ispe) and holds a "
                         f"{coded[0]}x{coded[1]} one, which would be enlarged to it")


def _readable_exif(img: Image.Image, path: Path, fmt: str) -> Image.Exif:
    """The image's EXIF, or none where it is damaged (as Pillow reads a JPEG's): the pixels are
    sound, and viewers show such an image as stored."""
    try:
        return _png_exif(img, path) if fmt == "png" else img.getexif()
    # Pillow's reading of EXIF bytes that hold no TIFF header, or of a PNG's raw profile text that
    # is not hex
    except (SyntaxError, struct.error, ValueError):
        return Image.Exif()


def _png_exif(img: Image.Image, path: Path) -> Image.Exif:
    """A PNG's EXIF as Pillow reads it (ImageMagick's 'Raw profile type exif' text and an XMP
    orientation included), its eXIf chunk found past the pixels without inflating them: Pillow's
    getexif decodes them all to look there (a second decode of every PNG, and a read as long as
    its last IDAT chunk states, 4 GB for a corrupt one)."""
    if "exif" not in img.info and (chunk := png_chunks.first_sound_chunk(path, b"eXIf")) is not None:
        img.info["exif"] = chunk
    return Image.Image.getexif(img)  # the base class reads img.info alone; PngImageFile's decodes


def _tiff_layout(path: Path) -> Optional[str]:
    """How a TIFF's first directory says its samples are laid out, for a TIFF Pillow identifies
    none of (GIMP's 16-bit gray with alpha) or OpenCV decodes none of (16-bit CMYK); None for any
    other file or a directory unreadable."""
    try:
        with open(path, "rb") as file, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow warns of each entry a corrupt directory cuts short
            head = file.read(8)
            if head[:4] not in (b"II*\0", b"MM\0*"):
                return None
            directory = TiffImagePlugin.ImageFileDirectory_v2(head)
            file.seek(directory.next)
            directory.load(file)
    except (OSError, ValueError, SyntaxError, struct.error):
        return None
    if not {tiff_pieces.WIDTH, tiff_pieces.HEIGHT, tiff_pieces.BITS} <= set(directory):  # else no layout at all
        return None
    bits = directory.get(tiff_pieces.BITS, (1,))
    bits = "/".join(map(str, sorted(set(bits if isinstance(bits, tuple) else (bits,)))))
    colour = TIFF_PHOTOMETRIC_NAMES.get(directory.get(tiff_pieces.PHOTOMETRIC), "unknown colour")
    samples = directory.get(tiff_pieces.SAMPLES, 1)
    return f"{samples} sample{'' if samples == 1 else 's'} of {bits} bits ({colour})"


def _stated_colour(img: Image.Image, path: Path, fmt: Optional[str]
                   ) -> Tuple[Optional[bytes], Optional[bytes], Optional[HdrColour]]:
    """The input's ICC profile, a PNG's colour chunks, and an HDR photo's colour: a PNG's cICP
    (this service's own output, an HDR editor's, a Display P3 export) is what readers show it by,
    whatever else it has; then an ICC profile whose cicp tag states PQ or HLG (macOS's and
    Photoshop's HDR profiles), which its matrix/TRC cannot; a HEIC's or AVIF's nclx box counts
    where it has no profile."""
    icc_profile = img.info.get("icc_profile") or None
    if fmt == "png" and (cicp := _png_cicp_colour(path)) is not None:
        return cicp
    code_points = _rgb_code_points(icc_cicp(icc_profile))
    if code_points and code_points[1] in HDR_TRANSFERS:
        return None, None, HdrColour.stated(*code_points, *_light_levels(path, fmt))
    if icc_profile is None and fmt in ("heic", "avif"):  # a profile the file has is what readers show
        profile, hdr_colour = _colour_from_nclx(path, fmt)
        return profile, None, hdr_colour
    return icc_profile, _png_colour_chunks(img.info) if fmt == "png" else None, None


def _colour_from_nclx(path: Path, fmt: str) -> Tuple[Optional[bytes], Optional[HdrColour]]:
    """The colour a HEIC or AVIF states by its code points alone (phones and Chrome write Display
    P3 or BT.2020 so): as a profile where a display curve holds it (JPEG has no other way to say
    it), else, for PQ and HLG, as the code points a PNG's cICP chunk states."""
    nclx = stated_nclx(primary_item_properties(path))
    if nclx is None:
        return None, None
    primaries, transfer = nclx.primaries, nclx.transfer
    if transfer in HDR_TRANSFERS:
        return None, HdrColour.stated(primaries, transfer, *_light_levels(path, fmt))
    return icc_from_nclx(primaries, transfer), None


def _png_cicp_colour(path: Path) -> Optional[Tuple[Optional[bytes], Optional[bytes], Optional[HdrColour]]]:
    """What a PNG's cICP chunk states, as :func:`_stated_colour` gives it; None where it has none
    a reader here takes (see :func:`_rgb_code_points`; code points known), and its other colour
    chunks count. PQ or HLG: an HDR photo. SDR: the cICP again for a PNG, beside no chunk that
    could say otherwise but a profile made from it, which a JPEG or WebP carries alone (a reader
    without cICP shows the PNG by it too)."""
    cicp = png_chunks.chunks_before_pixels(path, (b"cICP",)).get(b"cICP")
    code_points = _rgb_code_points(cicp)
    if code_points is None:
        return None
    primaries, transfer = code_points
    if transfer in HDR_TRANSFERS:
        return None, None, HdrColour.stated(primaries, transfer, *_light_levels(path, "png"))
    return (icc_from_nclx(primaries, transfer), png_chunks.chunk(b"cICP", cicp), None) \
        if displayable(primaries, transfer) else None


def _rgb_code_points(cicp: Optional[bytes]) -> Optional[Tuple[int, int]]:
    """(primaries, transfer) of the four H.273 bytes a PNG's cICP or an ICC cicp tag holds, where
    they state full-range RGB (matrix 0, as PNG's must; full range, which a cICP written again
    says); None for any other."""
    if cicp is None or len(cicp) != 4 or cicp[2:] != b"\x00\x01":
        return None
    return cicp[0], cicp[1]


def _light_levels(path: Path, fmt: Optional[str]) -> Tuple[Optional[Tuple[int, int]], Optional[MasteringDisplay]]:
    """The light levels an HDR photo's file states beside its colour: MaxCLL and MaxFALL (cd/m²) and
    the mastering display, from a PNG's cLLI (in 0.0001 cd/m², read in whole cd/m² as HEIF states
    them) and mDCV chunks, or a HEIC's or AVIF's clli and mdcv properties."""
    if fmt in ("heic", "avif"):
        properties = primary_item_properties(path)
        return content_light_level(properties), mastering_display(properties)
    if fmt != "png":
        return None, None
    chunks = png_chunks.chunks_before_pixels(path, (b"cLLI", b"mDCV"))
    light, display = chunks.get(b"cLLI", b""), chunks.get(b"mDCV", b"")
    light_level = tuple(round(v / 10_000) for v in struct.unpack(">II", light)) if len(light) == 8 else None
    v = struct.unpack(">8HII", display) if len(display) == 24 else None  # red, green, blue, white, as PNG orders
    return light_level, MasteringDisplay(v[0:2], v[2:4], v[4:6], v[6:8], v[8], v[9]) if v else None


def _png_colour_chunks(png_info: dict) -> Optional[bytes]:
    """gAMA, cHRM and sRGB as chunks again (Pillow reads them as numbers): what a viewer shows a
    PNG's levels as where it has no ICC profile."""
    chunks = b""
    if isinstance(png_info.get("gamma"), float):
        chunks += png_chunks.chunk(b"gAMA", struct.pack(">I", round(png_info["gamma"] * 100_000)))
    chromaticity = png_info.get("chromaticity")
    if isinstance(chromaticity, tuple) and len(chromaticity) == 8:
        chunks += png_chunks.chunk(b"cHRM", struct.pack(">8I", *(round(v * 100_000) for v in chromaticity)))
    if isinstance(png_info.get("srgb"), int) and not png_info.get("icc_profile"):  # the spec: one or the other
        chunks += png_chunks.chunk(b"sRGB", bytes([png_info["srgb"] & 0xFF]))
    return chunks or None


def _orientation(value) -> int:
    """EXIF orientation 1-8; anything else (text, a fraction, 0) is read as 1, as viewers do."""
    try:
        orientation = int(value)
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        return 1
    return orientation if 1 <= orientation <= 8 else 1


def _upright_exif(exif) -> Optional[bytes]:
    """The EXIF the output carries: turned upright, without what describes the input's pixels
    (their layout in the file, their size before upscaling); None when nothing else is left, or
    where it cannot be written again (a damaged block, whose orientation may still be read)."""
    for tag in PIXEL_LAYOUT_TAGS & set(exif):
        del exif[tag]
    if EXIF_IFD_TAG in exif:
        sub_ifd = exif.get_ifd(EXIF_IFD_TAG)
        for tag in EXIF_PIXEL_DIMENSION_TAGS:
            sub_ifd.pop(tag, None)
    if not exif:
        return None
    exif[EXIF_ORIENTATION_TAG] = 1
    try:
        data = exif.tobytes()
    except (struct.error, TypeError, ValueError):  # a tag holding a value of a type Pillow writes it otherwise
        return None
    return data[6:] if data.startswith(b"Exif\x00\x00") else data


def decode_image(path: Path, info: ImageInfo) -> np.ndarray:
    if info.format in READ_BY_PILLOW or _bmp_opencv_misreads(path, info):  # an image task takes a GIF's first frame
        return _palette_of_grays_as_gray(_decode_with_pillow(path, info), info.mode)
    data = np.fromfile(str(path), dtype=np.uint8)
    if info.format == "tiff":
        _refuse_damaged_tiff_pieces(path)
    image = _deep_tiff_stored_by_plane(path) if info.format == "tiff" else None
    if image is None:
        image = _jpeg_pixels(data) if info.format == "jpeg" else cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None and info.format == "tiff":  # from memory OpenCV refuses 8-bit tiles of 16, 48, 80 ... pixels
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        layout = _tiff_layout(path) if info.format == "tiff" else None
        if layout:
            raise InputError(f"TIFF of {layout} could not be decoded (corrupt, truncated or a layout not supported)")
        raise InputError(f"{info.format} image could not be decoded (corrupt or truncated file)")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if info.mode == "CMYK" and image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]  # OpenCV hands a CMYK TIFF over as BGR and an opaque fourth channel, not alpha
    if image.dtype not in (np.uint8, np.uint16):
        raise InputError(f"unsupported sample type {image.dtype}; 8- and 16-bit images are supported")
    if info.format == "png" and image.ndim == 2:
        image = _with_transparent_gray_level(image, data)
    if info.format == "bmp" and has_alpha(image) and not image[:, :, 3].any():
        image = np.ascontiguousarray(image[:, :, :3])  # an alpha byte left 0 everywhere: viewers show it opaque
    if info.format == "tiff" and info.mode in ("LA", "La") and image.ndim == 2:
        image = _with_tiff_gray_alpha(path, image, premultiplied=info.mode == "La")
    elif info.format == "tiff" and has_alpha(image) and _tiff_colour_is_premultiplied(path, image.dtype):
        image = _unpremultiply(image)
    image = _palette_of_grays_as_gray(image, info.mode)
    if (image.shape[1], image.shape[0]) != (info.width, info.height) and info.orientation == 1:
        raise InputError(
            f"decoded size {image.shape[1]}x{image.shape[0]} differs from the header "
            f"{info.width}x{info.height}: the file is corrupt"
        )
    return apply_exif_orientation(image, info.orientation)


def _jpeg_pixels(data: np.ndarray) -> Optional[np.ndarray]:
    """A JPEG's pixels, refused where its picture data ends or breaks before its last row: libjpeg
    (OpenCV's decoder) fills what is missing flat gray with a warning alone, so a JPEG cut off and
    closed by an EOI marker, or stating more rows than it holds, was upscaled gray-bottomed; FFmpeg's
    decoder, told to take damage as an error and given one bits past each scan (see
    :func:`_scans_closed_by_ones`), says so. One without an EOI marker stays refused by OpenCV as truncated."""
    _refuse_damaged_jpeg(data)
    return cv2.imdecode(data, cv2.IMREAD_UNCHANGED)


def _refuse_damaged_jpeg(data: np.ndarray) -> None:
    """Refuses a JPEG FFmpeg's decoder, told to take damage as an error, finds damaged. One it
    cannot judge (a sampling it has no layout for, luma 1x3 or chroma finer than luma: 'Not yet
    implemented', which failed the task as 'process failed: PatchWelcomeError') is left to
    libjpeg's judgement, which reads those whole."""
    decoder = av.CodecContext.create("mjpeg", "r")
    decoder.options = {"err_detect": "explode"}
    try:
        decoder.decode(av.Packet(_scans_closed_by_ones(data.tobytes())))
    except av.InvalidDataError as exc:
        raise InputError("jpeg image is cut off or damaged: its picture data ends or breaks before its "
                         "last row") from exc
    except av.FFmpegError:
        pass


def _scans_closed_by_ones(jpeg: bytes) -> bytes:
    """``jpeg`` with one bits after each scan's picture data: FFmpeg's decoder reads on past a scan
    cut short into zero bits, which decode as blocks (a 48x32 JPEG cut at 90% and closed by an EOI
    marker passed its check, and libjpeg filled its last rows gray); one bits are a code no table holds."""
    pieces, start = [], 0
    for end in _jpeg_scan_ends(jpeg):
        pieces += [jpeg[start:end], JPEG_SCAN_OVERRUN]
        start = end
    return b"".join(pieces) + jpeg[start:]


def _jpeg_scan_ends(jpeg: bytes) -> Iterator[int]:
    """Where each scan's picture data of a JPEG's first picture ends (the file's end, for one cut off)."""
    return (end for marker, _, end in first_picture_markers(jpeg) if marker == SOS)


def _bmp_opencv_misreads(path: Path, info: ImageInfo) -> bool:
    """A BMP with OS/2's 12-byte header (OS/2's and Windows 2's bitmaps), whose pixels OpenCV reads
    as one channel of garbage, or of 16 bits a pixel: OpenCV shifts their 5- and 6-bit levels up
    and leaves the low bits 0 (white came out 248, Pillow spreads them over 0-255), and refuses
    those under a BITMAPV4 or V5 header (GIMP's) outright."""
    if info.format != "bmp":
        return False
    with open(path, "rb") as file:
        header = file.read(BMP_BITS_AT + 2)
    header_bytes = struct.unpack("<I", header[14:18])[0] if len(header) >= 18 else None
    bits = struct.unpack("<H", header[BMP_BITS_AT:])[0] if len(header) == BMP_BITS_AT + 2 else None
    return header_bytes == BMP_CORE_HEADER_BYTES or bits == 16


def _palette_of_grays_as_gray(image: np.ndarray, mode: str) -> np.ndarray:
    """A palette image (GIF, PNG, TIFF) whose colours are all grays as gray, as a gray PNG, JPEG or
    HEIC is: the decoders expand a palette to colour, and it came out as three equal channels."""
    if mode == "P" and image.ndim == 3 and image.shape[2] == 3 and (image[:, :, :1] == image[:, :, 1:]).all():
        return np.ascontiguousarray(image[:, :, 0])
    return image


def _with_transparent_gray_level(image: np.ndarray, png: np.ndarray) -> np.ndarray:
    """A gray PNG whose tRNS chunk marks one level transparent, which OpenCV reads as plain gray,
    as gray with alpha (BGRA, the layout gray with alpha takes here) where a pixel has that level."""
    data = png.tobytes()
    if len(data) < 33 or data[25] != 0:  # IHDR's colour type: 0 is gray without alpha
        return image
    level = _png_gray_transparent_level(io.BytesIO(data))
    if level is None:
        return image
    bit_depth = data[24]
    if bit_depth < 8:  # OpenCV spreads 1-, 2- and 4-bit levels over 0-255
        level *= 255 // (2 ** bit_depth - 1)
    if not (image == level).any():
        return image  # nothing transparent: it stays gray
    out = cv2.cvtColor(image, cv2.COLOR_GRAY2BGRA)
    out[:, :, 3] = np.where(image == level, 0, np.iinfo(image.dtype).max)
    return out


def _png_gray_transparent_level(file: BinaryIO) -> Optional[int]:
    """The level a gray PNG's tRNS chunk (before its pixels) marks transparent; None where it has
    none, or a damaged one, which libpng drops."""
    for kind, at, length in png_chunks.chunks(file):
        if kind in (b"IDAT", b"IEND"):
            return None
        if kind == b"tRNS" and length >= 2:
            trns = png_chunks.chunk_data(file, kind, at, length)
            return struct.unpack(">H", trns[:2])[0] if trns is not None else None
    return None


def _deep_tiff_stored_by_plane(path: Path) -> Optional[np.ndarray]:
    """A 16-bit RGB(A) TIFF stored plane by plane (a scanner's or Photoshop's "per channel" order)
    as BGR(A), upright; None for any other TIFF (one stored so that no reader here takes, in tiles
    or gray with alpha, is refused). OpenCV reads such planes as if their samples were
    interleaved (every pixel garbage); FFmpeg's decoder reads them as stored."""
    with Image.open(path) as img:
        tags = img.tag_v2
        bits = tags.get(tiff_pieces.BITS, (8,))
        samples = tags.get(tiff_pieces.SAMPLES, 1)
        if tags.get(tiff_pieces.PLANAR) == 2 and samples == 2:  # OpenCV's gray is garbage, Pillow's alpha fails
            raise InputError("a gray TIFF with alpha stored plane by plane is not supported; save it with "
                             "interleaved samples")
        if (tags.get(tiff_pieces.PLANAR) != 2 or tags.get(tiff_pieces.PHOTOMETRIC) != 2 or samples not in (3, 4)
                or max(bits if isinstance(bits, tuple) else (bits,)) != 16):
            return None
        orientation = _orientation(tags.get(EXIF_ORIENTATION_TAG))
        if tiff_pieces.TILE_WIDTH in tags:  # FFmpeg's decoder reads the tiles of DNG alone
            raise InputError("a 16-bit TIFF stored plane by plane in tiles is not supported; save it with "
                             "interleaved samples (\"RGBRGB\") or in strips")
    try:
        with av.open(str(path), format="tiff_pipe") as container:
            rgb = next(container.decode(video=0)).to_ndarray(format="rgba64le" if samples == 4 else "rgb48le")
    except (av.FFmpegError, StopIteration) as exc:
        raise InputError(f"16-bit TIFF stored plane by plane could not be decoded ({_first_line(exc)})") from exc
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGBA2BGRA if samples == 4 else cv2.COLOR_RGB2BGR)
    return apply_exif_orientation(bgr, orientation)


def _refuse_piece_inside_header(tags: TiffImagePlugin.ImageFileDirectory_v2) -> None:
    where = tiff_pieces.inside_header(tags)
    if where:
        raise InputError(f"input TIFF is corrupt: {where}")


def _refuse_damaged_tiff_pieces(path: Path) -> None:
    """Refuses a TIFF an LZW or Deflate strip or tile of which does not decode to its size: libtiff
    decoded such a piece damaged part way, or one of no bytes, to garbage with no word."""
    with Image.open(path) as img:
        pieces = tiff_pieces.layout(img.tag_v2)
    if pieces is None:
        return
    with open(path, "rb") as file:
        damage = tiff_pieces.damage(file, pieces)
    if damage:
        raise InputError(f"input TIFF is corrupt: {damage}")


def _with_tiff_gray_alpha(path: Path, gray: np.ndarray, premultiplied: bool) -> np.ndarray:
    """A gray TIFF's alpha, which OpenCV leaves out (its gray as stored), from Pillow (BGRA, the
    layout gray with alpha takes here). Pillow turns some TIFFs upright and not others: one with
    an orientation stays gray."""
    with Image.open(path) as img:
        if _orientation(img.tag_v2.get(EXIF_ORIENTATION_TAG)) != 1:
            return gray
        alpha = np.asarray(img)[:, :, 1]
    if alpha.shape != gray.shape:
        return gray
    out = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGRA)
    out[:, :, 3] = alpha
    return _unpremultiply(out) if premultiplied else out


def _tiff_colour_is_premultiplied(path: Path, dtype: np.dtype) -> bool:
    """Whether OpenCV hands a TIFF's colour over premultiplied by its alpha: an 8-bit one's always
    where the file says it has alpha (libtiff's RGBA interface, which OpenCV reads 8-bit TIFFs
    through, premultiplies unassociated alpha); a 16-bit one's as stored, so where it is associated."""
    with Image.open(path) as img:
        extra_samples = img.tag_v2.get(338, ())
    kind = extra_samples[0] if isinstance(extra_samples, tuple) and extra_samples else extra_samples
    return kind == 1 or (kind == 2 and dtype == np.uint8)


def _unpremultiply(image: np.ndarray) -> np.ndarray:
    """Straight colour from colour premultiplied by alpha (none where the alpha is 0), in place, a
    band of rows at a time: a 64-megapixel image's float copy would take gigabytes."""
    top = np.float32(np.iinfo(image.dtype).max)
    for rows in range(0, image.shape[0], UNPREMULTIPLY_ROWS):
        band = image[rows:rows + UNPREMULTIPLY_ROWS]
        alpha = band[:, :, 3:].astype(np.float32)
        colour = np.divide(band[:, :, :3] * top, alpha, out=np.zeros(band.shape[:2] + (3,), np.float32),
                           where=alpha > 0)
        band[:, :, :3] = np.clip(np.round(colour), 0, top)
    return image


def _decode_with_pillow(path: Path, info: ImageInfo) -> np.ndarray:
    try:
        deep = _deep_heif_or_avif(path, info.format)
        if deep is not None:
            return apply_exif_orientation(_bgr_without_opaque_alpha(deep), info.orientation)
        with Image.open(path) as img:  # at a GIF's or AVIF's first frame, a HEIC's primary picture
            if img.mode == "L" and "transparency" not in img.info:  # gray stays gray
                return apply_exif_orientation(np.asarray(img), info.orientation)
            rgba = np.asarray(img.convert("RGBA"))
    except (*DECODER_ERRORS, ValueError) as exc:
        raise InputError(f"{info.format} image could not be decoded: {_what_is_wrong(exc)}") from exc
    return apply_exif_orientation(_bgr_without_opaque_alpha(cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA)),
                                  info.orientation)


def _bgr_without_opaque_alpha(image: np.ndarray) -> np.ndarray:
    if has_alpha(image) and (image[:, :, 3] == np.iinfo(image.dtype).max).all():
        return np.ascontiguousarray(image[:, :, :3])
    return image


def _deep_heif_or_avif(path: Path, fmt: str) -> Optional[np.ndarray]:
    """A 10- or 12-bit HEIC or AVIF (phones and Chrome write them) at its depth, spread over the
    16-bit range as a 16-bit PNG's levels are: gray, BGR or BGRA; None for an 8-bit one. Pillow
    hands both over as 8-bit; libheif turns a HEIC upright, OpenCV leaves an AVIF as stored."""
    if fmt == "heic":
        heif = pillow_heif.open_heif(path, convert_hdr_to_8bit=False, hdr_to_16bit=False)
        bits = heif.info["bit_depth"]
        if bits <= 8:
            return None
        stored = np.asarray(heif)  # gray, RGB or RGBA at the stored levels
        stored = cv2.cvtColor(stored, cv2.COLOR_RGBA2BGRA if stored.shape[-1] == 4 else cv2.COLOR_RGB2BGR) \
            if stored.ndim == 3 else stored
    elif fmt == "avif":
        bits = bits_per_channel(primary_item_properties(path)) or 8
        if bits <= 8:
            return None
        stored = cv2.imdecode(np.fromfile(str(path), dtype=np.uint8), cv2.IMREAD_UNCHANGED)
        if stored is None or stored.dtype != np.uint16:
            raise ValueError(f"its {bits}-bit pixels could not be decoded")
    else:
        return None
    return spread_to_sixteen_bits(stored, bits)


def spread_to_sixteen_bits(image: np.ndarray, bits: int) -> np.ndarray:
    """Levels 0 to 2**bits - 1 as 0 to 65,535 (a 10-bit 1023 is white, as 65,535 is; shifting
    would make it 65,472), through a table: no float copy of a large photo."""
    top = (1 << bits) - 1
    table = np.minimum(np.round(np.arange(65536) * (65535 / top)), 65535).astype(np.uint16)
    return table[image]


def apply_exif_orientation(image: np.ndarray, orientation: int) -> np.ndarray:
    """Turns the stored pixels upright, as viewers show them (EXIF orientations 2-8)."""
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1, :],
        5: lambda a: np.swapaxes(a, 0, 1),
        6: lambda a: np.swapaxes(a, 0, 1)[:, ::-1],
        7: lambda a: np.swapaxes(a, 0, 1)[::-1, ::-1],
        8: lambda a: np.swapaxes(a, 0, 1)[::-1, :],
    }
    op = ops.get(orientation)
    return np.ascontiguousarray(op(image)) if op else image


def output_format(info: ImageInfo, image: np.ndarray, requested: Optional[str] = None) -> str:
    """The format asked for; else the input's where it can hold the result: alpha, 16-bit or HDR
    need PNG (or WEBP alpha); HEIC and AVIF photos come back as JPEG (or PNG with alpha); a result
    wider or higher than the format holds (WebP 16,383, JPEG 65,535) is PNG."""
    if requested:
        return requested
    alpha = has_alpha(image)
    if image.dtype == np.uint16 or info.hdr_colour:
        return "png"
    if info.format == "webp" and max(image.shape[:2]) <= MAX_SIDE["webp"]:
        return "webp"
    if info.format in ("jpeg", "heic", "avif") and not alpha and max(image.shape[:2]) <= MAX_SIDE["jpeg"]:
        return "jpeg"
    return "png"


def check_format_holds(requested: Optional[str], size: Tuple[int, int]) -> None:
    """Before the model runs: the format asked for, or PNG (where the others fall back), must hold a
    result of ``size`` = (width, height)."""
    fmt = requested or "png"
    if max(size) > MAX_SIDE[fmt]:
        advice = "; ask for png" if fmt != "png" and max(size) <= MAX_SIDE["png"] else ""
        raise InputError(f"a {size[0]}x{size[1]} result does not fit {fmt}, which holds at most "
                         f"{MAX_SIDE[fmt]:,} pixels a side{advice}")


def effective_quality(fmt: str, image: np.ndarray, quality: Optional[int]) -> Optional[int]:
    """The quality a result is encoded at: JPEG's and WebP's (default 95); None for lossless (PNG,
    and WebP with alpha unless a quality is asked)."""
    if fmt == "png" or (fmt == "webp" and quality is None and has_alpha(image)):
        return None
    return quality or DEFAULT_QUALITY


def stored_layout(image: np.ndarray, fmt: str) -> Tuple[int, int]:
    """(channels, bits per sample) of the file ``fmt`` stores the image as (what
    :func:`fit_to_format` would make of it, read off the array without converting it)."""
    channels = 1 if image.ndim == 2 else image.shape[2]
    if fmt == "png":
        return channels, 16 if image.dtype == np.uint16 else 8
    if fmt == "webp" and channels == 1:
        channels = 3  # WebP has no gray form
    if fmt == "webp" and channels == 4 and _alpha_opaque_in_eight_bits(image):
        channels = 3  # libwebp leaves such an alpha out
    if fmt == "jpeg" and channels == 4:
        channels = 3
    return channels, 8


def fitting_icc_profile(icc_profile: Optional[bytes], image: np.ndarray, fmt: str) -> Optional[bytes]:
    """The input's ICC profile where it describes the output's colour space: a CMYK JPEG comes out
    RGB, and gray with alpha (or gray as WebP) comes out in colour, where a CMYK or gray profile
    would be misread."""
    if not icc_profile or len(icc_profile) < 20:
        return None
    gray = stored_layout(image, fmt)[0] == 1
    return icc_profile if icc_profile[16:20] == (b"GRAY" if gray else b"RGB ") else None


def fitting_exif(exif: Optional[bytes], fmt: str) -> Optional[bytes]:
    """The EXIF where the output holds it: a JPEG's one APP1 segment holds 65,533 bytes."""
    if exif and fmt == "jpeg" and len(b"Exif\x00\x00" + exif) + 2 > 0xFFFF:
        return None
    return exif


def fit_to_format(image: np.ndarray, fmt: str) -> np.ndarray:
    """What ``fmt`` can hold of the image: JPEG and WebP take 8 bits (16-bit samples go to the
    nearest 8-bit level), JPEG takes no alpha (dropped: ask PNG or WebP to keep it)."""
    if fmt == "png":
        return image
    image = eight_bits(image)
    if fmt == "jpeg" and has_alpha(image):
        image = np.ascontiguousarray(image[:, :, :3])
    return image


def eight_bits(image: np.ndarray) -> np.ndarray:
    """16-bit samples at the nearest 8-bit level; 8-bit ones as they are."""
    if image.dtype == np.uint16:
        return ((image.astype(np.uint32) + 128) // 257).astype(np.uint8)
    return image


def encode_image(image: np.ndarray, fmt: str, quality: Optional[int] = None, icc_profile: Optional[bytes] = None,
                 exif: Optional[bytes] = None, png_colour: Optional[bytes] = None,
                 hdr_colour: Optional[HdrColour] = None, gain_map: Optional[GainMap] = None) -> bytes:
    """``quality``: see :func:`effective_quality`. The ICC profile goes along where it fits; a PNG
    input's gamma and primaries (``ImageInfo.png_colour``) into a PNG, as does an HDR photo's
    colour, in a cICP chunk (see :func:`~tmlsr_ray.pipeline.photo_hdr.as_shown` for the formats that
    hold none); a JPEG is an Ultra HDR one with ``gain_map`` (:func:`~tmlsr_ray.pipeline.photo_hdr.gain_map_for`)."""
    icc_profile = fitting_icc_profile(icc_profile, image, fmt)
    exif = fitting_exif(exif, fmt)
    quality = effective_quality(fmt, image, quality)
    image = fit_to_format(image, fmt)
    if fmt == "webp" and (icc_profile or exif):
        return _webp_with_metadata(image, icc_profile, exif, quality)
    params = {
        "png": [cv2.IMWRITE_PNG_COMPRESSION, 3],
        "jpeg": [cv2.IMWRITE_JPEG_QUALITY, quality],
        "webp": [cv2.IMWRITE_WEBP_QUALITY, quality or 101],  # above 100: lossless
    }[fmt]
    ok, buf = cv2.imencode("." + ("jpg" if fmt == "jpeg" else fmt), image, params)
    if not ok:
        raise RuntimeError(f"could not encode the result as {fmt}")
    if fmt == "png":
        return png_with_metadata(buf.tobytes(), icc_profile, exif, (png_colour or b"") + _hdr_chunks(hdr_colour))
    if fmt == "jpeg":
        return jpeg_with_metadata(buf.tobytes(), icc_profile, exif, gain_map)
    return buf.tobytes()


def has_alpha(image: np.ndarray) -> bool:
    return image.ndim == 3 and image.shape[2] == 4


def _alpha_opaque_in_eight_bits(image: np.ndarray) -> bool:
    """Whether every alpha sample is 255 once brought to 8 bits (a 16-bit one from 65,407 on,
    as :func:`fit_to_format` rounds)."""
    opaque_from = 255 if image.dtype == np.uint8 else 65535 - 128
    return bool(image[:, :, 3].min() >= opaque_from)


def _hdr_chunks(hdr_colour: Optional[HdrColour]) -> bytes:
    """PNG's cICP (Third Edition): the primaries and transfer, matrix 0 (the samples are RGB),
    full range; readers take it over any iCCP, and none is written beside it. Then cLLI (in
    0.0001 cd/m²) and mDCV (red, green, blue, white, as cHRM orders them) where the photo states them."""
    if hdr_colour is None:
        return b""
    chunks = png_chunks.chunk(b"cICP", bytes([hdr_colour.primaries, hdr_colour.transfer, 0, 1]))
    if hdr_colour.light_level:
        chunks += png_chunks.chunk(b"cLLI", struct.pack(">II", *(level * 10_000 for level in hdr_colour.light_level)))
    if (display := hdr_colour.display) is not None:
        chunks += png_chunks.chunk(b"mDCV", struct.pack(">8HII", *display.red, *display.green, *display.blue,
                                                  *display.white, display.max_luminance, display.min_luminance))
    return chunks


def png_with_metadata(png: bytes, icc_profile: Optional[bytes], exif: Optional[bytes],
                      colour_chunks: Optional[bytes] = None) -> bytes:
    """iCCP, eXIf and the colour chunks right after IHDR (all must come before the image data)."""
    chunks = colour_chunks or b""
    if icc_profile:
        chunks += png_chunks.chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc_profile))
    if exif:
        chunks += png_chunks.chunk(b"eXIf", exif)
    end_of_ihdr = 8 + 8 + 13 + 4  # signature, IHDR length and type, its 13 bytes, CRC
    return png[:end_of_ihdr] + chunks + png[end_of_ihdr:]


def jpeg_with_metadata(jpeg: bytes, icc_profile: Optional[bytes], exif: Optional[bytes],
                       gain_map: Optional[GainMap] = None) -> bytes:
    """APP1 (EXIF) and APP2 (ICC, split into numbered segments) right after SOI; then, with a gain
    map, what makes it an Ultra HDR JPEG (see :func:`with_gain_map`)."""
    segments = b""
    if exif:
        segments += jpeg_segment(0xE1, b"Exif\x00\x00" + exif)
    if icc_profile:
        segments += icc_segments(icc_profile)
    if gain_map:
        return with_gain_map(jpeg[:2] + segments, jpeg[2:], gain_map)
    return with_metadata(jpeg, segments)


def _webp_with_metadata(image: np.ndarray, icc_profile: Optional[bytes], exif: Optional[bytes],
                        quality: Optional[int] = None) -> bytes:
    conversion = cv2.COLOR_BGRA2RGBA if has_alpha(image) else cv2.COLOR_BGR2RGB
    pil = Image.fromarray(cv2.cvtColor(image, conversion) if image.ndim == 3 else image)
    out = io.BytesIO()
    options = {"quality": quality} if quality else {"lossless": True}
    pil.save(out, "WEBP", icc_profile=icc_profile or None, exif=(b"Exif\x00\x00" + exif) if exif else b"", **options)
    return out.getvalue()


CONTENT_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
EXTENSIONS = {"png": ".png", "jpeg": ".jpg", "webp": ".webp"}


def _what_is_wrong(exc: BaseException) -> str:
    """What a decoder's refusal says of the file, in words rather than the decoder's own."""
    words = _first_line(exc)
    for complaint, meaning, words_add in DECODER_COMPLAINTS:
        if complaint in words.lower():
            return f"{meaning} ({words[:160]})" if words_add else meaning
    return f"the file is corrupt or truncated ({words})"


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]
