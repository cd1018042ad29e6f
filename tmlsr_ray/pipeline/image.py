"""Image decode, probe and encode (no Ray, no HTTP).

Pixels are kept as OpenCV reads them with ``IMREAD_UNCHANGED``: grayscale (H, W), BGR (H, W, 3) or
BGRA (H, W, 4), uint8 or uint16, the layout Real-ESRGAN's reference code works on.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from tmlsr_ray.pipeline.errors import InputError

FORMATS = {"PNG": "png", "JPEG": "jpeg", "WEBP": "webp", "BMP": "bmp", "TIFF": "tiff", "GIF": "gif"}
EXIF_ORIENTATION_TAG = 0x0112


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    format: str  # "png" | "jpeg" | "webp" | ...
    mode: str  # PIL mode of the file, e.g. "RGB", "RGBA", "L", "I;16", "CMYK"
    orientation: int  # EXIF orientation, 1 = as stored


def probe_image(path: Path, max_pixels: int) -> ImageInfo:
    """Reads the header only; refuses unreadable files and pixel floods before any decoding."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
                fmt = FORMATS.get(img.format or "")
                mode = img.mode
                orientation = int(img.getexif().get(EXIF_ORIENTATION_TAG, 1) or 1)
    except Image.DecompressionBombError as exc:
        raise InputError(f"input image is a decompression bomb, far over the limit of {max_pixels:,} "
                         f"pixels ({_first_line(exc)})") from exc
    except UnidentifiedImageError as exc:
        raise InputError("input is not a readable image (no PNG, JPEG, WEBP, GIF, BMP or TIFF data found)") from exc
    except OSError as exc:
        raise InputError(f"input image is corrupt or truncated ({_first_line(exc)})") from exc
    if fmt is None:
        raise InputError(f"unsupported image format {img.format}; use PNG, JPEG, WEBP, GIF, BMP or TIFF")
    if width <= 0 or height <= 0:
        raise InputError(f"image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise InputError(
            f"image is {width}x{height} = {width * height:,} pixels, over the limit of {max_pixels:,}"
        )
    return ImageInfo(width, height, fmt, mode, orientation)


def decode_image(path: Path, info: ImageInfo) -> np.ndarray:
    if info.format == "gif":  # OpenCV builds may lack GIF; an image task takes the first frame
        return _decode_gif_frame(path)
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise InputError(f"{info.format} image could not be decoded (corrupt or truncated file)")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.dtype not in (np.uint8, np.uint16):
        raise InputError(f"unsupported sample type {image.dtype}; 8- and 16-bit images are supported")
    if (image.shape[1], image.shape[0]) != (info.width, info.height) and info.orientation == 1:
        raise InputError(
            f"decoded size {image.shape[1]}x{image.shape[0]} differs from the header "
            f"{info.width}x{info.height}: the file is corrupt"
        )
    return apply_exif_orientation(image, info.orientation)


def _decode_gif_frame(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as img:
            img.seek(0)
            rgba = np.asarray(img.convert("RGBA"))
    except (OSError, ValueError) as exc:
        raise InputError(f"gif image could not be decoded ({_first_line(exc)})") from exc
    if (rgba[:, :, 3] == 255).all():
        return cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGR)
    return cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA)


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


def output_format(info: ImageInfo, image: np.ndarray) -> str:
    """Keeps the input's format where it can hold the result; alpha or 16-bit need PNG (or WEBP alpha)."""
    has_alpha = image.ndim == 3 and image.shape[2] == 4
    if image.dtype == np.uint16:
        return "png"
    if info.format == "webp":
        return "webp"
    if info.format == "jpeg" and not has_alpha:
        return "jpeg"
    return "png"


def encode_image(image: np.ndarray, fmt: str, jpeg_quality: int = 95) -> bytes:
    params = {
        "png": [cv2.IMWRITE_PNG_COMPRESSION, 3],
        "jpeg": [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality],
        "webp": [cv2.IMWRITE_WEBP_QUALITY, 101 if image.ndim == 3 and image.shape[2] == 4 else 95],
    }[fmt]
    ok, buf = cv2.imencode("." + ("jpg" if fmt == "jpeg" else fmt), image, params)
    if not ok:
        raise RuntimeError(f"could not encode the result as {fmt}")
    return buf.tobytes()


CONTENT_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
EXTENSIONS = {"png": ".png", "jpeg": ".jpg", "webp": ".webp"}


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]
