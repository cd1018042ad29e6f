"""What every model backend implements and declares (no Ray, no HTTP)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Protocol, Tuple, Union, runtime_checkable

import numpy as np

MODEL_DTYPES = ("auto", "fp32", "fp16", "bf16")
# off | torch.compile's own modes; "default" keeps one dynamic-shape graph for every frame size,
# the other two specialise on each input shape (CUDA graphs, autotuned kernels).
COMPILE_MODES = ("off", "default", "reduce-overhead", "max-autotune")


class ModelError(Exception):
    """A model file that cannot be used (unknown architecture, broken file)."""


class TilingAdvice(str, Enum):
    """How a network takes tiles, as spandrel's ModelTiling says (its names, lower-cased)."""

    SUPPORTED = "supported"
    DISCOURAGED = "discouraged"  # it draws on the whole image: tiles show at their seams
    INTERNAL = "internal"  # it tiles the image itself


@runtime_checkable
class SuperResolutionModel(Protocol):
    """A loaded model that upscales batches of frames at its native scale.

    ``upscale`` takes float32 RGB frames shaped (N, H, W, 3) with values in [0, 1] and returns
    float32 frames shaped (N, H * scale, W * scale, 3), clamped to [0, 1]. Any H and W are
    accepted; padding an architecture needs is the backend's business.

    A backend may also offer ``upscale_samples(frames)``: uint8/uint16 frames in, the same type out,
    equal to rounding ``upscale`` on the same scale; the video path then prefers it, since it lets a
    GPU do the conversions. On CUDA such a backend also offers ``upscale_samples(frames, target,
    yuv)`` (resized there, and converted into the encoder's planes; ``frames`` may be the
    decoder's planes, :class:`~tmlsr_ray.models.yuv.Yuv420Frames`, made RGB there) and
    ``fits_whole(height, width)``: whether a frame of that size runs untiled. A backend says in
    ``tiling`` how its network takes tiles, a :class:`TilingAdvice`: ``supported`` (also when
    absent); ``discouraged`` (it draws on the whole image, so tiles show at their seams), then it
    also offers ``fits_in_memory(height, width)``: whether a frame of that size runs whole where
    the network runs, on a CPU too, ``was_tiled_at(height, width)``: whether frames of that size
    were tiled on this model, and ``record_tiled_at(height, width)``; ``internal`` (it tiles the
    image itself).
    """

    name: str
    scale: int
    architecture: str
    device: str

    def upscale(self, frames: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class ModelInfo:
    """What a model file is, read off its contents (never its name)."""

    name: str
    family: str  # the backend that serves it: realesrgan | spandrel | seedvr2
    architecture: str
    scale: Optional[int]  # output / input size; None: any size, set by the task's ``resolution``
    size_multiple: int = 1  # input sides the network needs a multiple of (the backend pads)
    minimum: Optional[int] = None  # the shortest input side the network runs on (the backend pads); None: any
    channels: Tuple[int, int] = (3, 3)  # (in, out)
    dtypes: Tuple[str, ...] = ("float32",)  # what it may run in; half types only where they hold
    temporal: bool = False  # restores several frames together (its batches overlap)
    seeded: bool = False  # its output depends on a noise seed
    replica_kind: str = "upscaler"  # which model replicas run it
    purpose: str = "SR"  # SR (scale > 1) or Restoration (scale 1)
    bytes: int = 0
    # The layers' sizes where the backend reads them (Real-ESRGAN: its network's arguments): two
    # files of one architecture mix their weights only where these are equal too
    network: Tuple[Tuple[str, Any], ...] = ()

    def public(self) -> Dict[str, Any]:
        return {"name": self.name, "family": self.family, "architecture": self.architecture,
                "scale": self.scale, "size_multiple": self.size_multiple, "minimum": self.minimum,
                "dtypes": list(self.dtypes),
                "bytes": self.bytes, "channels": list(self.channels), "purpose": self.purpose,
                "temporal": self.temporal, "seeded": self.seeded}


def compile_mode(value: Union[bool, str]) -> str:
    """One of :data:`COMPILE_MODES`; ``True``/``False`` (and their spellings in YAML or an
    environment variable) mean ``default``/``off``, as the setting took before it had modes."""
    if isinstance(value, bool):
        return "default" if value else "off"
    mode = {"true": "default", "false": "off"}.get(str(value).strip().lower(), str(value).strip().lower())
    if mode not in COMPILE_MODES:
        raise ValueError(f"compile mode {value!r} is none of {', '.join(COMPILE_MODES)} (or true/false)")
    return mode


@dataclass(frozen=True)
class LoadOptions:
    """How a replica loads a model: ``device`` auto | cpu | cuda; ``dtype`` auto (the fastest
    half type the model holds on a GPU, fp32 on a CPU) | fp32 | fp16 | bf16; ``compile`` one of
    :data:`COMPILE_MODES`; ``denoise``: a task's denoise strength, for a model with a weak-denoise
    twin (None: the file as it is); ``replicas_per_host``: the model replicas sharing this host's
    memory, each sizing its CPU passes to its share of it; ``gpu_share``: the part of its GPU the
    replica holds (under 1 where replicas share a card), to which it sizes what runs whole there."""

    device: str = "auto"
    dtype: str = "auto"
    compile: str = "off"
    denoise: Optional[float] = None
    replicas_per_host: int = 1
    gpu_share: float = 1.0


def file_suffix(path: Path) -> str:
    """A model file's kind by its name, however the name is cased (``4x-Model.PTH`` from Windows)."""
    return path.suffix.lower()


@dataclass(frozen=True)
class ModelFamily:
    """One model backend. ``recognise`` answers ``None`` for a file that is not this family's,
    and raises :class:`ModelError` for one that is but cannot be served (the reason a user reads)."""

    name: str
    suffixes: Tuple[str, ...]
    recognise: Callable[[Path], Optional[ModelInfo]]
    load: Callable[[Path, LoadOptions], Any]
    companions: Tuple[str, ...] = ()  # files that are parts of this family's models, not models
