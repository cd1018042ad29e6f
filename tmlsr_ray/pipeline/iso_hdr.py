"""An ISO 21496-1 HDR photo (no Ray, no HTTP): a HEIC or AVIF whose gain map is stored the ISO
21496-1 way (Android 15 on, and iOS 18 besides Apple's own, in HEVC; libavif and Chrome in AV1): a
hidden item, linked with the primary by a derived ``tmap`` item whose payload is ISO 21496-1's
metadata, made the gain map of an Ultra HDR JPEG: its levels as stored, its metadata's numbers
written in the ISO 21496-1 segment and mirrored in hdrgm's XMP. pillow-heif and Pillow's AVIF
plugin read no hidden item: the boxes are followed here
(:func:`~tmlsr_ray.pipeline.heif_boxes.tone_map_link`) and FFmpeg decodes the map (its HEVC
decoder, or dav1d for AV1).
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import List, Optional, Tuple

import av
import cv2
import numpy as np
from av.video.reformatter import ColorRange

from tmlsr_ray.models.yuv import REFUSED_MATRICES, SWS_MATRIX_TAG, YCGCO, nearest_sws_matrix
from tmlsr_ray.pipeline.av1_header import first_frame
from tmlsr_ray.pipeline.decode import frame_to_rgb
from tmlsr_ray.pipeline.gainmap import (GAIN_MAP_QUALITY, GainMap, gain_map_segments, icc_segments,
                                        iso_gain_map_numbers, iso_version_only, with_metadata)
from tmlsr_ray.pipeline.heif_boxes import (CodedItem, DamagedStructure, ImageGrid, Nclx, ToneMapLink, image_grid,
                                           primary_item_properties, spatial_extent, stated_nclx, tone_map_link)
from tmlsr_ray.pipeline.heif_turns import TURN_BITS, Property, heif_turned, stated_turn
from tmlsr_ray.pipeline.nclx import icc_from_nclx

ISO_HDR = "ISO 21496-1 HDR"  # GainMap.kind
TMAP_VERSION = 0  # the tmap item's first byte, before ISO 21496-1's metadata (ISO/IEC 23008-12)
DAMAGED = "the ISO 21496-1 HDR photo's gain map could not be read whole ({why})"
BAD_METADATA = "the ISO 21496-1 HDR photo's tmap metadata could not be read ({why})"
NOT_DECODED = ("the ISO 21496-1 HDR photo's gain map is coded as {kind}, and only HEVC (what phones write) and AV1 "
               "(libavif's) ones are read")
# each coding FFmpeg decodes a gain map item of: its decoder and its configuration property, the
# decoder's extradata
DECODERS = {b"hvc1": ("hevc", b"hvcC"), b"av01": ("libdav1d", b"av1C")}
AV1_CONFIG_BYTES = 4  # av1C's fields before its configOBUs
IDENTITY_MATRIX = 0  # H.273's matrix_coefficients of samples that are G, B and R, not YUV
TOO_LARGE = "the ISO 21496-1 HDR photo's gain map is wider or higher than its picture"
UNREAD_MATRIX = ("the ISO 21496-1 HDR photo's gain map states its colours in {matrix}, which is not read (nor by "
                 "libavif)")
UNLIKE_PRIMARY = ("the ISO 21496-1 HDR photo's gain map is cropped or turned otherwise than its picture (its clap, "
                  "irot and imir), which libavif refuses")
TRANSFORMS = (b"clap", b"irot", b"imir")  # ISO/IEC 23008-12's transformative properties
# a coded picture's sides are its picture's rounded up to whole coding blocks, of 64 at most
HEVC_BLOCK = 64
# FFmpeg checks max_pixels against a frame's width rounded up to its rows' alignment (STRIDE_ALIGN:
# 64 where AVX-512 is built in, less elsewhere): the limit holds that rounding, or a map whose
# width is no multiple of it is refused. dav1d (its frame_size_limit) checks the frame's own
# size, which the rounded limit bounds as well
FFMPEG_ROW_ALIGNMENT = 64
LINEAR_TRANSFER = 8  # H.273's transfer_characteristics


def iso_gain_map(path: Path, primary_size: Tuple[int, int], primary_as_stored: bool = False
                 ) -> Tuple[Optional[GainMap], Optional[str]]:
    """The gain map a HEIC or AVIF of ``primary_size`` (as its reader gives the primary: libheif
    cropped and turned, or, ``primary_as_stored``, Pillow's AVIF plugin as stored) links by a
    ``tmap`` item, with its metadata, shown as its primary is (:func:`_as_read`); (None, None) for
    a file with no tmap item, (None, why) where it cannot be kept: its boxes or metadata damaged,
    coded otherwise than in HEVC or AV1, larger than its primary (by its properties, before
    decoding), or its data not decoding whole."""
    try:
        link = tone_map_link(path)
    except DamagedStructure as exc:
        return None, DAMAGED.format(why=exc)
    if link is None:
        return None, None
    if link.metadata[:1] != bytes([TMAP_VERSION]):
        return None, BAD_METADATA.format(why=f"its version is {link.metadata[0]}, not 0")
    try:
        numbers = iso_gain_map_numbers(link.metadata[1:])
    except ValueError as exc:
        return None, BAD_METADATA.format(why=exc)
    # a grid's tiles are what is coded (HEVC in phones' grids)
    codings = [tile.type for tile in link.gain_map_tiles] if link.gain_map_type == b"grid" else [link.gain_map_type]
    coding = next((kind for kind in codings if kind not in DECODERS), None)
    if coding is not None:
        return None, NOT_DECODED.format(kind=repr(coding)[2:-1])  # its bytes, those unprintable escaped
    properties = _as_read(link.gain_map_properties, primary_item_properties(path) if primary_as_stored else None)
    if properties is None:
        return None, UNLIKE_PRIMARY
    if spatial_extent(properties) is None:
        return None, DAMAGED.format(why="it states no size (ispe)")
    if not _fits(properties, primary_size):
        return None, TOO_LARGE
    unread = _unread_matrix(link) if len(numbers.channels) == 3 else None
    if unread:
        return None, UNREAD_MATRIX.format(matrix=unread)
    try:
        levels = _decoded_map(link, len(numbers.channels) == 3, primary_size)
    except DamagedStructure as exc:
        return None, DAMAGED.format(why=exc)
    if levels is None:
        return None, DAMAGED.format(why="its coded data does not decode to the picture its properties state")
    ok, jpeg = cv2.imencode(".jpg", _shown(levels, properties), [cv2.IMWRITE_JPEG_QUALITY, GAIN_MAP_QUALITY])
    if not ok:
        return None, DAMAGED.format(why="it could not be encoded as jpeg")
    metadata = gain_map_segments(numbers)
    if not numbers.use_base_colour_space:
        metadata += icc_segments(_alternate_colour_space(link.tone_map_properties) or b"")
    return GainMap(with_metadata(jpeg.tobytes(), metadata), metadata, "1.0", iso_version_only(), ISO_HDR), None


def _unread_matrix(link: ToneMapLink) -> Optional[str]:
    """The matrix a three-channel map's item (or a grid's tile) states that neither swscale nor
    this module reads (ICtCp, SMPTE ST 2085, ...): read by the nearest, its colours came out wrong."""
    stated = [link.gain_map_properties, *(tile.properties for tile in link.gain_map_tiles)]
    matrices = {nclx.matrix for nclx in map(stated_nclx, stated) if nclx}
    refused = sorted(matrices & REFUSED_MATRICES.keys())
    return f"{REFUSED_MATRICES[refused[0]]} (matrix {refused[0]})" if refused else None


def _as_read(properties: List[Property], stored_primary: Optional[List[Property]]) -> Optional[List[Property]]:
    """The gain map's ``properties`` its picture is shown by: all of them where the primary is read
    cropped and turned by its own (libheif; ISO/IEC 23008-12 has each input of a derived picture
    shown so); where the primary is read as stored (``stored_primary`` its properties), none of its
    clap, irot and imir: libavif writes a gain map's as its primary's and has them applied to both
    once, as the primary's EXIF orientation turns both here (Pillow crops neither). None where the
    gain map states ones unlike its primary's, which libavif refuses; a gain map stating none is
    read as stored, as libavif reads an alpha plane stating none."""
    if stored_primary is None:
        return properties
    transforms = _transforms(properties)
    if transforms and transforms != _transforms(stored_primary):
        return None
    return [prop for prop in properties if prop[0] not in TRANSFORMS]


def _transforms(properties: List[Property]) -> List[Property]:
    """The clap, irot and imir of ``properties`` in their order, irot and imir by their stated bits alone."""
    return [(kind, bytes([stated_turn(kind, payload)]) if kind in TURN_BITS and payload else payload)
            for kind, payload in properties if kind in TRANSFORMS]


def _alternate_colour_space(tone_map_properties: List[Property]) -> Optional[bytes]:
    """The ICC profile of the colour space a gain map not applied in its base's is applied in: the
    alternate picture's, the tmap item's ``colr``. An Ultra HDR JPEG's gain map states it in its
    own ICC profile (libultrahdr refuses such a gain map without one; Skia reads it so). Of
    ``nclx`` code points, a profile of their primaries and a linear transfer: the gain map is
    applied in linear light, and an ICC profile holds no HDR transfer. None where the tmap states
    none: the base's, as viewers take a gain map without a profile."""
    for kind, payload in tone_map_properties:
        if kind == b"colr" and payload[:4] in (b"prof", b"rICC"):
            return payload[4:]
        nclx = Nclx.read(kind, payload)
        if nclx:
            return icc_from_nclx(nclx.primaries, LINEAR_TRANSFER)
    return None


def _fits(properties: List[Property], primary_size: Tuple[int, int]) -> bool:
    """Whether the gain map as shown (:func:`_shown_size`) is no wider and no higher than its
    primary, and its coded picture (its ``ispe``) no larger than that rounded up to HEVC's blocks:
    FFmpeg sizes its buffers by the coded picture."""
    shown = _shown_size(properties)
    return shown[0] <= primary_size[0] and shown[1] <= primary_size[1] and _coded_within(
        spatial_extent(properties), primary_size)


def _coded_within(coded: Tuple[int, int], primary_size: Tuple[int, int]) -> bool:
    """Whether a coded picture (turned or not) is no larger than the primary rounded up to HEVC's
    blocks: FFmpeg sizes its buffers by the coded picture."""
    return max(coded) <= max(primary_size) + HEVC_BLOCK and min(coded) <= min(primary_size) + HEVC_BLOCK


def _shown_size(properties: List[Property]) -> Tuple[int, int]:
    """(width, height) of the item as :func:`_shown` shows it, from its ``ispe``."""
    width, height = spatial_extent(properties)
    for kind, payload in properties:
        if kind == b"clap":
            width, height = _clean_aperture(payload, width, height)[2:]
        elif kind == b"irot" and payload[:1] and payload[0] & 1:
            width, height = height, width
    return width, height


def _decoded_map(link: ToneMapLink, three_channels: bool, primary_size: Tuple[int, int]) -> Optional[np.ndarray]:
    """The gain map's stored picture (before its clap, irot and imir): its coded item decoded, or a
    grid's tiles decoded and laid out; None where a picture does not decode."""
    if link.gain_map_type != b"grid":
        return _decoded(CodedItem(link.gain_map_type, link.gain_map_properties, link.gain_map_data), three_channels)
    grid = image_grid(link.gain_map_data)
    tile_size = _tile_size(grid, link.gain_map_tiles, spatial_extent(link.gain_map_properties), primary_size)
    tiles = []
    for tile in link.gain_map_tiles:
        tiles.append(_decoded(tile, three_channels))
        if tiles[-1] is None:
            return None
    return _laid_out(tiles, grid, tile_size)


def _tile_size(grid: ImageGrid, tiles: List[CodedItem], stated: Tuple[int, int], primary_size: Tuple[int, int]
               ) -> Tuple[int, int]:
    """(width, height) all of ``grid``'s tiles state, checked to be as ISO/IEC 23008-12 has them
    (one tile for each cell, all of one size, covering the picture with no tile wholly outside it)
    and no larger than the primary, before any is decoded: a row or column of one tile may be
    larger than the map (a writer's fixed tile size, cropped), and what is decoded is within the
    primary's sides or twice the map's. Raises DamagedStructure."""
    unlinked = grid.links_problem(len(tiles))
    if unlinked:
        raise DamagedStructure(unlinked)
    if (grid.width, grid.height) != stated:
        raise DamagedStructure(f"its grid makes a {grid.width}x{grid.height} picture and states "
                               f"{stated[0]}x{stated[1]}")
    sizes = {spatial_extent(tile.properties) for tile in tiles}
    if len(sizes) != 1 or None in sizes:
        raise DamagedStructure("its grid's tiles state no size or sizes of their own")
    width, height = sizes.pop()
    if not _coded_within((width, height), primary_size):
        raise DamagedStructure(f"its grid's {width}x{height} tiles are larger than its {primary_size[0]}x"
                               f"{primary_size[1]} primary")
    for tiles_across, side, picture_side in ((grid.columns, width, grid.width), (grid.rows, height, grid.height)):
        if not (tiles_across - 1) * side < picture_side <= tiles_across * side:
            raise DamagedStructure(f"its grid's {width}x{height} tiles do not cover its {grid.width}x{grid.height} "
                                   f"picture in {grid.rows}x{grid.columns}")
    return width, height


def _laid_out(tiles: List[np.ndarray], grid: ImageGrid, tile_size: Tuple[int, int]) -> np.ndarray:
    """``tiles`` laid out row by row, the right and bottom ones cropped to the grid's picture."""
    width, height = tile_size
    picture = np.empty((grid.rows * height, grid.columns * width) + tiles[0].shape[2:], tiles[0].dtype)
    for n, tile in enumerate(tiles):
        row, column = divmod(n, grid.columns)
        picture[row * height:(row + 1) * height, column * width:(column + 1) * width] = tile
    return picture[:grid.height, :grid.width]


def _decoded(item: CodedItem, three_channels: bool) -> Optional[np.ndarray]:
    """The picture ``item`` (HEVC or AV1, as :data:`DECODERS` has them) decodes to, of the size its
    ``ispe`` states: its luma, its levels in full range, or BGR for a map of three channels; None
    where it is damaged or of another size."""
    name, config_type = DECODERS[item.type]
    config = next((payload for kind, payload in item.properties if kind == config_type), None)
    if config is None:
        return None
    width, height = spatial_extent(item.properties)
    decoder = item_decoder(name, width, height)
    try:
        decoder.extradata = config
        frames = [*decoder.decode(av.Packet(_temporal_unit(item.type, config, item.data))), *decoder.decode(None)]
    except (av.FFmpegError, ValueError):
        return None
    if not frames or (frames[0].width, frames[0].height) != (width, height):
        return None
    stated = _stated_matrix_and_range(item.properties)
    matrix, full_range = stated if stated else (None, frames[0].color_range != ColorRange.MPEG)
    return _levels(frames[0], full_range, matrix, three_channels)


def item_decoder(name: str, width: int, height: int) -> "av.CodecContext":
    """A decoder for one item of ``width`` x ``height``: a hostile SPS or sequence header stating a
    larger picture is refused before its frame is allocated; one thread, as libavif and libheif
    decode an item: FFmpeg's default of one a core started 16 for each of a grid's 64x64 tiles,
    and 1,024 AV1 tiles took 2.27 s at 16 threads against 0.48-0.87 s at one (2-core CPU)."""
    decoder = av.CodecContext.create(name, "r")
    decoder.thread_count = 1
    aligned_width = -(-width // FFMPEG_ROW_ALIGNMENT) * FFMPEG_ROW_ALIGNMENT
    decoder.options = {"err_detect": "explode", "max_pixels": str(aligned_width * height)}
    return decoder


def _temporal_unit(coding: bytes, config: bytes, data: bytes) -> bytes:
    """What the decoder is given of an item's ``data``: an AV1 item's first frame after its
    ``av1C``'s configOBUs (its sequence header: AVIF has the data hold one too, but a writer
    leaving it in the av1C alone is read), HEVC's as it is (its parameter sets are the extradata;
    FFmpeg refuses a packet of two pictures)."""
    return config[AV1_CONFIG_BYTES:] + first_frame(data) if coding == b"av01" else data


def _levels(frame: av.VideoFrame, full_range: bool, matrix: Optional[int], three_channels: bool) -> np.ndarray:
    """A decoded gain map's levels in full range: BGR for a map of three channels (by ``matrix``,
    swscale's, where its item states one), else its luma. FFmpeg converts by the frame's range:
    it is told the one stated, and for luma, full range, the levels being expanded here once
    (else a limited-range frame's are expanded twice)."""
    if three_channels and matrix == IDENTITY_MATRIX and frame.format.name.startswith("yuv"):
        return _identity_levels(frame, full_range)
    if three_channels:
        frame.color_range = ColorRange.JPEG if full_range else ColorRange.MPEG
        if matrix is not None:
            frame.colorspace = matrix
        if matrix == YCGCO:  # swscale has no matrix for it: the video path's exact transform
            return np.ascontiguousarray(frame_to_rgb(frame, "rgb24", 0)[:, :, ::-1])
        return frame.to_ndarray(format="bgr24")
    frame.color_range = ColorRange.JPEG
    luma = frame.to_ndarray(format="gray16le" if frame.format.components[0].bits > 8 else "gray")
    if luma.dtype == np.uint16:
        luma = (luma >> 8).astype(np.uint8)
    return luma if full_range else _full_range_levels(luma)


def _identity_levels(frame: av.VideoFrame, full_range: bool) -> np.ndarray:
    """BGR of a frame FFmpeg decoded as YUV whose item states its samples are G, B and R (its
    bitstream stating no matrix, or another): its planes as they are, in that order."""
    deep = frame.format.components[0].bits > 8
    planes = frame.reformat(format="yuv444p16le" if deep else "yuv444p").to_ndarray(channel_last=True)
    if deep:
        planes = (planes >> 8).astype(np.uint8)
    bgr = np.ascontiguousarray(planes[:, :, [1, 0, 2]])
    return bgr if full_range else _full_range_levels(bgr)


def _stated_matrix_and_range(properties: List[Property]) -> Optional[Tuple[int, bool]]:
    """(matrix, full range) as the item's ``nclx`` states them, which libheif and libavif read
    before the HEVC VUI or AV1 sequence header: its matrix_coefficients where swscale has it (or
    0, G, B and R, or YCgCo, transformed here), else the nearest swscale has (that of its primaries, as a video's is read).
    None where it states none: the bitstream's then count, as FFmpeg reads them (BT.601 where it
    states none either, as libheif and libavif default to)."""
    nclx = stated_nclx(properties)
    if nclx is None:
        return None
    nearest = None if nclx.matrix == YCGCO else nearest_sws_matrix(nclx.matrix, nclx.primaries)
    return (nclx.matrix if nearest is None else SWS_MATRIX_TAG[nearest]), nclx.full_range


def _full_range_levels(luma: np.ndarray) -> np.ndarray:
    return np.clip(np.round((luma.astype(np.float32) - 16) * 255 / 219), 0, 255).astype(np.uint8)


def _shown(levels: np.ndarray, properties: List[Property]) -> np.ndarray:
    """The decoded picture as a reader shows the item: its clean aperture (``clap``), ``irot`` and
    ``imir`` applied in the order it lists them, as libheif applies them to the primary (ISO/IEC
    23008-12 requires clap, then irot, then imir). The primary's are not its: each input of a
    derived picture is turned by its own."""
    for kind, payload in properties:
        if kind == b"clap":
            left, top, width, height = _clean_aperture(payload, levels.shape[1], levels.shape[0])
            levels = levels[top:top + height, left:left + width]
        elif kind in (b"irot", b"imir"):
            levels = heif_turned(levels, [(kind, payload)])
    return np.ascontiguousarray(levels)


def _clean_aperture(clap: bytes, width: int, height: int) -> Tuple[int, int, int, int]:
    """(left, top, width, height) of a ``clap``'s window in a ``width`` x ``height`` picture: its
    size, centred on the picture's centre moved by its offsets (ISO/IEC 14496-12 12.1.4), kept
    within the picture."""
    values = struct.unpack(">IIIIiIiI", clap[:32]) if len(clap) >= 32 else (width, 1, height, 1, 0, 1, 0, 1)
    if 0 in values[1::2]:
        return 0, 0, width, height
    aperture_width = min(width, max(1, round(values[0] / values[1])))
    aperture_height = min(height, max(1, round(values[2] / values[3])))
    left = round(values[4] / values[5] + (width - 1) / 2 - (aperture_width - 1) / 2)
    top = round(values[6] / values[7] + (height - 1) / 2 - (aperture_height - 1) / 2)
    left, top = min(max(left, 0), width - aperture_width), min(max(top, 0), height - aperture_height)
    return left, top, aperture_width, aperture_height
