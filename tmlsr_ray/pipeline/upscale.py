"""The upscale stage for images, with the semantics of Real-ESRGAN's ``RealESRGANer.enhance``.

- 8-bit and 16-bit images stay 8- and 16-bit; grayscale stays grayscale;
- alpha is upscaled by the model too (replicated to three channels, back to one with BGR2GRAY);
- the model runs at its native scale; one Lanczos resize then reaches the requested size;
- large images are processed in overlapping tiles, each finished (clamped, quantized) as soon as it
  comes back, so memory holds the output image, never a float copy of it.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from typing import Callable, Optional, Tuple, Union

import cv2
import numpy as np

from tmlsr_ray.models.base import SuperResolutionModel, TilingAdvice
from tmlsr_ray.models.device import is_out_of_memory, release_cached_device_memory
from tmlsr_ray.models.seedvr2.frames import resized_size
from tmlsr_ray.models.yuv import Yuv420, Yuv420Frames
from tmlsr_ray.errors import CanceledError, InputError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SizeRequest:
    """The sizing fields of a task; the most specific one given wins."""

    outscale: Optional[float] = None
    output_magnification: Optional[float] = None
    output_dims: Optional[Tuple[int, int]] = None

    def output_size(self, width: int, height: int, model_scale: float) -> Tuple[int, int]:
        if self.output_dims is not None:
            return int(self.output_dims[0]), int(self.output_dims[1])
        factor = self.output_magnification or self.outscale or model_scale
        return max(1, round(width * factor)), max(1, round(height * factor))


# What a task for a model of any scale (SeedVR2) gets without resolution or any scale field.
ANY_SCALE_DEFAULT = 2


def target_size(width: int, height: int, model_scale: Optional[int], sizing: SizeRequest,
                resolution: Optional[int] = None) -> Tuple[int, int]:
    """(width, height) of the output. A model of one scale: the sizing fields, its scale the
    default. A model of any scale (``model_scale`` None): ``resolution`` is the output height and
    the width keeps the aspect ratio (for portrait input too); without it, the sizing fields with
    ×2 as the default."""
    if model_scale is not None:
        return sizing.output_size(width, height, model_scale)
    if resolution is not None:
        return max(1, round(width * resolution / height)), resolution
    return sizing.output_size(width, height, ANY_SCALE_DEFAULT)


@dataclass(frozen=True)
class Tiling:
    tile_size: int = 512
    tile_pad: int = 32
    min_pixels: int = 1_500_000  # smaller inputs run whole, exactly like the reference


# A network whose tiles show at their seams gets an overlap of at least a quarter of its tile: it
# draws on far more of the image around a pixel than a convolution stack.
DISCOURAGED_TILE_PER_PAD = 4


def processing_resolution(target: Tuple[int, int]) -> int:
    """The short side SeedVR2 renders at to produce ``target``."""
    return min(target)


def check_output_size(width: int, height: int, scale: Optional[int], target: Tuple[int, int],
                      max_pixels: int) -> None:
    """The model's native output and the final output must both stay within the pixel limit. A
    model of any scale (``scale`` None: SeedVR2) renders the input's aspect at the output's short
    side, then is resized to the output: a tall input asked at a wide size renders far more."""
    final = target[0] * target[1]
    if scale is None:
        rendered_height, rendered_width = resized_size(height, width, processing_resolution(target))
        native, how = rendered_width * rendered_height, f"after rendering {rendered_width}x{rendered_height}"
    else:
        native, how = width * scale * height * scale, f"after {width * scale}x{height * scale} at the model's ×{scale}"
    if max(native, final) > max_pixels:
        raise InputError(f"output would be {max(native, final):,} pixels ({target[0]}x{target[1]} {how}), "
                         f"over the limit of {max_pixels:,}")


def upscale_image(
    model: SuperResolutionModel,
    image: np.ndarray,
    target: Tuple[int, int],
    tiling: Tiling = Tiling(),
    should_stop: Callable[[], bool] = lambda: False,
) -> np.ndarray:
    """Upscales a gray/BGR/BGRA uint8 or uint16 image to ``target`` = (width, height)."""
    max_range = 65535.0 if image.dtype == np.uint16 else 255.0
    planes, mode = _to_model_planes(image.astype(np.float32) / np.float32(max_range))
    height, width = image.shape[:2]
    scale = model.scale
    channels = {"L": (), "RGB": (3,), "RGBA": (4,)}[mode]
    canvas = np.empty((height * scale, width * scale, *channels), dtype=image.dtype)

    for (y0, y1, x0, x1), tile_out in _run_tiles(model, planes, tiling, should_stop):
        canvas[y0 * scale : y1 * scale, x0 * scale : x1 * scale] = _finish(tile_out, mode, max_range, image.dtype)

    if (canvas.shape[1], canvas.shape[0]) != tuple(target):
        canvas = cv2.resize(canvas, tuple(target), interpolation=cv2.INTER_LANCZOS4)
    return canvas


def upscale_frames(
    model: SuperResolutionModel,
    frames: Union[np.ndarray, Yuv420Frames],
    target: Tuple[int, int],
    tiling: Tiling = Tiling(),
    should_stop: Callable[[], bool] = lambda: False,
    yuv: Optional[Yuv420] = None,
) -> np.ndarray:
    """Upscales RGB video frames (N, H, W, 3), uint8 or uint16, to ``target`` = (width, height);
    on a GPU, given the encoder's ``yuv`` layout, into those planes there (see ``upscale_samples``).
    Frames may come as the decoder's planes where :func:`takes_planes` says the model takes them."""
    if isinstance(frames, Yuv420Frames) and not takes_planes(model, *frames.size):
        frames = frames.rgb()  # a CPU model's: the decoder's conversion keeps the reference semantics
    whole = _whole_frames(model, frames, target, tiling, should_stop, yuv)
    if whole is not None:
        return whole
    if isinstance(frames, Yuv420Frames):
        frames = frames.rgb()  # they ran out of device memory whole
    max_range = np.float32(65535.0 if frames.dtype == np.uint16 else 255.0)
    count, height, width, _ = frames.shape
    scale = model.scale
    canvas = np.empty((count, height * scale, width * scale, 3), dtype=frames.dtype)
    planes = frames.astype(np.float32) / max_range
    # A model with integer samples chose whole or tiles above: its tiles stay tiles.
    tiles = _run_tiles(model, planes, tiling, should_stop, may_run_whole=not hasattr(model, "upscale_samples"))
    for (y0, y1, x0, x1), tile_out in tiles:
        canvas[:, y0 * scale : y1 * scale, x0 * scale : x1 * scale] = (tile_out * max_range).round()
    return resize_frames(canvas, target)


def _whole_frames(model: SuperResolutionModel, frames: Union[np.ndarray, Yuv420Frames], target: Tuple[int, int],
                  tiling: Tiling, should_stop: Callable[[], bool], yuv: Optional[Yuv420]) -> Optional[np.ndarray]:
    """The frames upscaled whole through the model's integer path where they run whole; None
    where they are to be tiled (or ran out of device memory whole)."""
    upscale_samples = getattr(model, "upscale_samples", None)
    if upscale_samples is None:
        return None
    if isinstance(frames, Yuv420Frames):  # the model takes them: they run whole
        check_stop(should_stop)
        return _unless_out_of_memory(model, lambda: upscale_samples(frames, target, yuv))
    height, width = frames.shape[1:3]
    on_gpu = getattr(model, "device", "cpu").startswith("cuda")
    # Frames small enough to run whole go through in one call (the backend sizes its passes); on
    # a GPU, every frame that fits there does, since tiles would convert and resize on the host.
    if not (height * width <= tiling.min_pixels or runs_whole(model, height, width)
            or on_gpu and model.fits_whole(height, width)):
        return None
    check_stop(should_stop)
    if on_gpu:  # resized (and converted) there: only the final size comes back
        return _unless_out_of_memory(model, lambda: upscale_samples(frames, target, yuv))
    # integer in and out: the device converts
    return _unless_out_of_memory(model, lambda: resize_frames(upscale_samples(frames), target))


def _unless_out_of_memory(model: SuperResolutionModel, run_whole: Callable[[], np.ndarray]) -> Optional[np.ndarray]:
    """``run_whole()``, or None where the device ran out of memory: whether a frame runs whole
    follows the device's total memory, and other work may hold so much of it at the moment that
    one frame does not fit; that call is tiled instead (with seams, for a model that shows them)."""
    try:
        return run_whole()
    except RuntimeError as exc:  # torch.OutOfMemoryError is one
        if not is_out_of_memory(exc):
            raise
    # Out of the except block: its traceback would keep the failed run's tensors alive.
    release_cached_device_memory()
    logger.warning("%s: out of device memory running a frame whole (other work holds the device, or its "
                   "estimate was too small); tiling it this time", model.name)
    return None


def takes_planes(model: SuperResolutionModel, height: int, width: int) -> bool:
    """Whether the model takes the decoder's 4:2:0 planes for frames of this size: on a GPU, where
    they run whole, the conversion to RGB runs there and half the bytes cross the bus. On a CPU
    the decoder's own conversion keeps the reference semantics."""
    return (getattr(model, "device", "cpu").startswith("cuda") and hasattr(model, "upscale_samples")
            and model.fits_whole(height, width))


def resize_frames(frames: np.ndarray, target: Tuple[int, int]) -> np.ndarray:
    """(N, h, w, C) frames to ``target`` = (width, height), Lanczos as RealESRGANer."""
    if (frames.shape[2], frames.shape[1]) == tuple(target):
        return frames
    return np.stack([cv2.resize(frame, tuple(target), interpolation=cv2.INTER_LANCZOS4) for frame in frames])


def _to_model_planes(image: np.ndarray) -> Tuple[np.ndarray, str]:
    """(N, H, W, 3) float RGB planes for the model: the colour, then the alpha if any."""
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)[None], "L"
    if image.shape[2] == 4:
        rgb = cv2.cvtColor(np.ascontiguousarray(image[:, :, :3]), cv2.COLOR_BGR2RGB)
        alpha = cv2.cvtColor(np.ascontiguousarray(image[:, :, 3]), cv2.COLOR_GRAY2RGB)
        return np.stack([rgb, alpha]), "RGBA"
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)[None], "RGB"


def _finish(planes: np.ndarray, mode: str, max_range: float, dtype: np.dtype) -> np.ndarray:
    """Model output (N, h, w, 3) RGB in [0, 1] back to the image's layout and sample type."""
    bgr = np.ascontiguousarray(planes[0][:, :, ::-1])
    if mode == "L":
        out = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    elif mode == "RGBA":
        alpha = cv2.cvtColor(np.ascontiguousarray(planes[1][:, :, ::-1]), cv2.COLOR_BGR2GRAY)
        out = cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA)
        out[:, :, 3] = alpha
    else:
        out = bgr
    return (out * np.float32(max_range)).round().astype(dtype)


def runs_whole(model: SuperResolutionModel, height: int, width: int) -> bool:
    """Whether the model's own tiling advice runs a frame of this size whole, whatever the tiling
    threshold: one that tiles the image itself always; one whose tiles show at their seams (it
    draws on the whole image: SCUNet, SwinIR, RetinexFormer) wherever it fits in memory."""
    advice = _tiling_advice(model)
    return advice is TilingAdvice.INTERNAL or (advice is TilingAdvice.DISCOURAGED
                                               and model.fits_in_memory(height, width))


def _tiling_advice(model: SuperResolutionModel) -> TilingAdvice:
    """What the model's family says of tiling it (a :class:`TilingAdvice` since the model was
    built); a family that says nothing takes tiles as a convolution stack does."""
    return getattr(model, "tiling", TilingAdvice.SUPPORTED)


def _tiling_for(model: SuperResolutionModel, tiling: Tiling, height: int, width: int) -> Tiling:
    """The tiling a frame too large to run whole gets: a wider overlap for a model whose tiles
    show at their seams, which is said, since its output may show them all the same. The
    overlap comes out of the tile, not on top of it: what one pass takes (the tile and its
    overlap each side) stays what the settings give every model, since it sets the memory."""
    if _tiling_advice(model) is not TilingAdvice.DISCOURAGED:
        return tiling
    span = tiling.tile_size + 2 * tiling.tile_pad
    pad = max(tiling.tile_pad, span // (2 + DISCOURAGED_TILE_PER_PAD))
    tile = span - 2 * pad
    if not model.was_tiled_at(height, width):  # a video says it once, not per batch
        logger.warning("%s: its architecture discourages tiling, but a %sx%s input does not fit whole in memory: "
                       "tiles of %s overlapping by %s (seams may show)", model.name, width, height, tile, pad)
        model.record_tiled_at(height, width)
    return replace(tiling, tile_size=tile, tile_pad=pad)


def _run_tiles(model, planes: np.ndarray, tiling: Tiling, should_stop, may_run_whole: bool = True):
    """Yields ((y0, y1, x0, x1), output) per tile of the input; one tile when the image is small
    or the model runs it whole (:func:`runs_whole`: by its advice and the device's total memory),
    and it did not meet a device full at the moment (then it is tiled after all). Not
    ``may_run_whole``: tiles whatever the size (the caller ran it whole, or meant to)."""
    count, height, width, _ = planes.shape
    if may_run_whole and (count * height * width <= tiling.min_pixels or runs_whole(model, height, width)):
        check_stop(should_stop)
        whole = _unless_out_of_memory(model, lambda: model.upscale(planes))
        if whole is not None:
            yield (0, height, 0, width), whole
            return
    tiling = _tiling_for(model, tiling, height, width)
    tile, pad, scale = tiling.tile_size, tiling.tile_pad, model.scale
    for ty in range(math.ceil(height / tile)):
        for tx in range(math.ceil(width / tile)):
            check_stop(should_stop)
            y0, y1 = ty * tile, min((ty + 1) * tile, height)
            x0, x1 = tx * tile, min((tx + 1) * tile, width)
            py0, py1 = max(y0 - pad, 0), min(y1 + pad, height)
            px0, px1 = max(x0 - pad, 0), min(x1 + pad, width)
            out = model.upscale(planes[:, py0:py1, px0:px1])
            crop = out[:, (y0 - py0) * scale : (y1 - py0) * scale, (x0 - px0) * scale : (x1 - px0) * scale]
            yield (y0, y1, x0, x1), crop


def check_stop(should_stop: Callable[[], bool]) -> None:
    if should_stop():
        raise CanceledError("task canceled")
