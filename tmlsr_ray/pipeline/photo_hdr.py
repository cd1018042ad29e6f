"""What an HDR photo comes back as (no Ray, no HTTP): kept HDR where the format asked for holds it
(PQ or HLG in a PNG's cICP chunk, an Ultra HDR JPEG's or iPhone HEIC's gain map scaled with its
primary picture into an Ultra HDR JPEG), else tone-mapped to SDR by the video's tone map before
the model, trained on SDR, sees it; and what the output's metadata says of it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Optional, Tuple

import cv2
import numpy as np

from tmlsr_ray.pipeline.colour import ToneMap
from tmlsr_ray.pipeline.gainmap import GainMap, gain_map_quality, with_metadata
from tmlsr_ray.pipeline.image import (MAX_SIDE, ImageInfo, apply_exif_orientation, eight_bits, has_alpha,
                                      output_format, spread_to_sixteen_bits)

GAIN_MAP_HDR = "gain map"  # metadata.hdr of an Ultra HDR JPEG, where a PQ or HLG photo names its transfer
TONE_MAP_ROWS = 256  # a band's float copies, not a whole 64-megapixel photo's (gigabytes)


def as_shown(image: np.ndarray, info: ImageInfo, hdr: str, requested: Optional[str]) -> Tuple[np.ndarray, ImageInfo]:
    """The pixels the model is given and what the output says of them: an HDR photo tone-mapped
    to SDR sRGB 8-bit (before the model, trained on SDR, sees it, as a video's frames are) where
    ``hdr`` is "sdr" or the format asked for holds no HDR (JPEG, WebP: only PNG's cICP states PQ
    or HLG); an Ultra HDR JPEG without its gain map likewise (only JPEG holds one), its primary
    picture being the SDR rendition; any other photo as it is."""
    jpeg_out = requested == "jpeg" or (requested is None and output_format(info, image) == "jpeg")
    if info.gain_map and not (hdr == "keep" and jpeg_out):  # a 10-bit or alpha HEIC's default is PNG
        return image, replace(info, gain_map=None)
    if info.hdr_colour is None or (hdr == "keep" and requested in (None, "png")):
        return image, info
    return tone_mapped(image, info.hdr_colour.tone_map()), replace(info, hdr_colour=None)


def tone_mapped(image: np.ndarray, to_sdr: ToneMap) -> np.ndarray:
    """Gray, BGR or BGRA HDR levels (8- or 16-bit) through the video's tone map, a band of rows at
    a time; gray stays gray, alpha is kept (at 8 bits)."""
    if image.dtype == np.uint8:
        image = spread_to_sixteen_bits(image, 8)
    out = np.empty(image.shape, np.uint8)
    for rows in range(0, image.shape[0], TONE_MAP_ROWS):
        band, into = image[rows:rows + TONE_MAP_ROWS], out[rows:rows + TONE_MAP_ROWS]
        if band.ndim == 2:
            into[:] = to_sdr(np.repeat(band[:, :, None], 3, axis=2))[:, :, 1]
            continue
        into[:, :, :3] = to_sdr(band[:, :, 2::-1])[:, :, ::-1]  # BGR in and out, the tone map's RGB between
        if has_alpha(band):
            into[:, :, 3] = eight_bits(band[:, :, 3])
    return out


def transfer_name(info: ImageInfo) -> Optional[str]:
    """The HDR transfer as a video's metadata names it (``smpte2084``, ``arib-std-b67``), or "gain
    map" for an Ultra HDR JPEG; None for SDR."""
    if info.gain_map:
        return GAIN_MAP_HDR
    return info.hdr_colour.name if info.hdr_colour else None


def hdr_metadata(info: ImageInfo, shown: ImageInfo, hdr: str, fmt: str) -> dict:
    """``hdr``: the output's transfer; ``hdr_note`` where an HDR photo was tone-mapped for the
    format asked, not on request, or where an Ultra HDR JPEG's or iPhone HEIC's gain map was left
    out, or could not be kept (damaged, too large, no headroom stated)."""
    if info.gain_map:
        return _gain_map_hdr_metadata(hdr, fmt, info.gain_map.kind, too_large_for_jpeg=shown.gain_map is not None)
    if info.gain_map_left_out:
        return {"hdr": None, "hdr_note": f"{info.gain_map_left_out}: its SDR picture was upscaled alone"}
    metadata = {"hdr": transfer_name(shown)}
    if info.hdr_colour and not shown.hdr_colour and hdr == "keep":
        metadata["hdr_note"] = (f"{fmt} holds no HDR: the {transfer_name(info)} photo was tone-mapped to SDR "
                                "(sRGB, 8-bit); ask png to keep it HDR")
    return metadata


def _gain_map_hdr_metadata(hdr: str, fmt: str, kind: str, too_large_for_jpeg: bool) -> dict:
    """An Ultra HDR JPEG's output keeps its gain map as a JPEG with ``hdr`` "keep", and says why
    it does not otherwise; ``too_large_for_jpeg`` where the format was not asked for but fell back
    to PNG, which asking jpeg does not mend."""
    if hdr == "keep" and fmt == "jpeg":
        return {"hdr": GAIN_MAP_HDR}
    if hdr != "keep":
        why, advice = 'hdr "sdr" was asked', ""
    elif too_large_for_jpeg:
        why = f"a result wider or higher than jpeg's {MAX_SIDE['jpeg']:,} pixels is {fmt}, which holds no gain map"
        advice = ""
    else:
        why, advice = f"{fmt} holds no gain map", "; ask jpeg to keep it HDR"
    return {"hdr": None, "hdr_note": f"{why}: the {kind} photo's gain map was left out and its SDR picture "
                                     f"upscaled alone{advice}"}


def gain_map_for(shown: ImageInfo, fmt: str, size: Tuple[int, int], quality: Optional[int] = None
                 ) -> Optional[GainMap]:
    """The gain map a JPEG result of ``size`` = (width, height) and ``quality`` carries: the
    input's, turned upright as its primary picture was and scaled by the same factor (it keeps its
    ratio to the primary, a quarter or a half), encoded as :func:`gain_map_quality` says, its
    metadata segments as they were; None for other formats and photos."""
    if shown.gain_map is None or fmt != "jpeg":
        return None
    stored = cv2.imdecode(np.frombuffer(shown.gain_map.jpeg, np.uint8), cv2.IMREAD_UNCHANGED)  # the probe read it whole
    stored = apply_exif_orientation(stored, shown.orientation)
    width, height = shown.upright_size
    scaled_size = (max(1, round(stored.shape[1] * size[0] / width)), max(1, round(stored.shape[0] * size[1] / height)))
    scaled = cv2.resize(stored, scaled_size, interpolation=cv2.INTER_LINEAR)  # smooth data: no model needed
    ok, jpeg = cv2.imencode(".jpg", scaled, [cv2.IMWRITE_JPEG_QUALITY, gain_map_quality(quality)])
    if not ok:
        raise RuntimeError("could not encode the gain map as jpeg")
    return replace(shown.gain_map, jpeg=with_metadata(jpeg.tobytes(), shown.gain_map.metadata))
