"""Real-ESRGAN backend: SRVGGNetCompact and RRDBNet checkpoints, architecture read off the weights."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from tmlsr_ray.models.base import LoadOptions, ModelError, ModelFamily, ModelInfo
from tmlsr_ray.models.basicsr_compat import import_architectures
from tmlsr_ray.models.device import select_device
from tmlsr_ray.models.lanczos import lanczos4_resize


@dataclass(frozen=True)
class ArchitectureSpec:
    """What is needed to rebuild the network a state dict came from."""

    kind: str  # "SRVGGNetCompact" | "RRDBNet"
    scale: int
    kwargs: Dict[str, int | str]


def read_state_dict(path: Path) -> Dict[str, torch.Tensor]:
    """Loads the tensors of a checkpoint; ``params_ema`` wins over ``params`` as in RealESRGANer."""
    try:
        # weights_only: a checkpoint is data, never code to run.
        loaded = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a broken file
        raise ModelError(f"cannot read model file {path.name}: {exc}") from exc
    if isinstance(loaded, dict):
        for key in ("params_ema", "params"):
            if isinstance(loaded.get(key), dict):
                return loaded[key]
        if all(isinstance(v, torch.Tensor) for v in loaded.values()):
            return loaded
    raise ModelError(f"model file {path.name} holds no state dict")


def detect_architecture(state: Dict[str, torch.Tensor]) -> ArchitectureSpec:
    if "conv_first.weight" in state and "conv_last.weight" in state:
        return _rrdbnet_spec(state)
    if "body.0.weight" in state:
        return _srvgg_spec(state)
    raise ModelError("unknown architecture: neither SRVGGNetCompact nor RRDBNet tensors found")


def _srvgg_spec(state: Dict[str, torch.Tensor]) -> ArchitectureSpec:
    conv_indices = sorted(
        int(m.group(1))
        for key, tensor in state.items()
        if (m := re.fullmatch(r"body\.(\d+)\.weight", key)) and tensor.ndim == 4
    )
    first, last = state[f"body.{conv_indices[0]}.weight"], state[f"body.{conv_indices[-1]}.weight"]
    num_in_ch, num_feat = first.shape[1], first.shape[0]
    num_out_ch = num_in_ch
    scale = int(round((last.shape[0] / num_out_ch) ** 0.5))
    if scale * scale * num_out_ch != last.shape[0]:
        raise ModelError(f"SRVGGNetCompact: last conv has {last.shape[0]} channels, not out×scale²")
    act_type = "prelu" if "body.1.weight" in state else "leakyrelu"
    kwargs = dict(num_in_ch=num_in_ch, num_out_ch=num_out_ch, num_feat=num_feat,
                  num_conv=len(conv_indices) - 2, upscale=scale, act_type=act_type)
    return ArchitectureSpec("SRVGGNetCompact", scale, kwargs)


def _rrdbnet_spec(state: Dict[str, torch.Tensor]) -> ArchitectureSpec:
    num_out_ch = state["conv_last.weight"].shape[0]
    unshuffled_in = state["conv_first.weight"].shape[1]
    # RRDBNet always upsamples ×4 internally; ×2 and ×1 models pixel-unshuffle their input first.
    scale = {1: 4, 4: 2, 16: 1}.get(unshuffled_in // num_out_ch)
    if scale is None:
        raise ModelError(f"RRDBNet: conv_first takes {unshuffled_in} channels, not 3, 12 or 48")
    blocks = {int(m.group(1)) for key in state if (m := re.match(r"body\.(\d+)\.rdb1\.", key))}
    kwargs = dict(num_in_ch=num_out_ch, num_out_ch=num_out_ch, scale=scale,
                  num_feat=state["conv_first.weight"].shape[0], num_block=len(blocks),
                  num_grow_ch=state["body.0.rdb1.conv1.weight"].shape[0])
    return ArchitectureSpec("RRDBNet", scale, kwargs)


def size_multiple(spec: ArchitectureSpec) -> int:
    # RRDBNet pixel-unshuffles ×2/×1 inputs, so sizes must divide by 2 or 4.
    return {2: 2, 1: 4}.get(spec.scale, 1) if spec.kind == "RRDBNet" else 1


def build_network(spec: ArchitectureSpec) -> torch.nn.Module:
    rrdbnet, srvgg = import_architectures()
    cls = rrdbnet if spec.kind == "RRDBNet" else srvgg
    return cls(**spec.kwargs)


# Live activations per input pixel and feature channel: SRVGGNetCompact keeps about two feature
# maps alive; RRDBNet's upsampling tail peaks at num_feat·scale²·2 (2,048 per pixel measured at ×4).
ACTIVATIONS_PER_FEATURE = {"SRVGGNetCompact": 3, "RRDBNet": 32}


def frames_that_fit(free_bytes: int, height: int, width: int, scale: int, activations: int, element_bytes: int,
                    num_feat: int = 64, share: float = 0.5) -> int:
    """Frames one pass can take within ``share`` of ``free_bytes`` (at least one), for a network
    keeping ``activations`` values alive per input pixel and feature channel."""
    per_pixel = (num_feat * activations + 6 * scale * scale) * element_bytes
    return max(1, int(free_bytes * share // (per_pixel * height * width)))


class RealESRGANModel:
    """A loaded Real-ESRGAN network; implements :class:`~tmlsr_ray.models.base.SuperResolutionModel`."""

    def __init__(self, path: Path, device: str = "auto", half: Optional[bool] = None, compile: bool = False):
        state = read_state_dict(path)
        self.spec = detect_architecture(state)
        self.name = path.name
        self.scale = self.spec.scale
        self.architecture = self.spec.kind
        self._device = select_device(device)
        self.device = str(self._device)
        self.half = (self._device.type == "cuda") if half is None else half
        net = build_network(self.spec)
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ModelError(f"model file {path.name} does not fit {self.spec.kind}: {exc}") from exc
        net.eval().requires_grad_(False)
        # channels_last roughly doubles CPU conv speed at video sizes and suits tensor cores.
        net = net.to(self._device, memory_format=torch.channels_last)
        self._dtype = torch.float16 if self.half else torch.float32
        self.dtype = str(self._dtype).removeprefix("torch.")
        self._net = net.to(self._dtype)
        if compile:
            # Fused kernels for a long video; dynamic shapes so every frame size reuses one graph.
            self._net = torch.compile(self._net, dynamic=True)
        self.compiled = compile
        # One CUDA stream per model: copies and kernels of this replica do not serialise with
        # other work on the device.
        self._cuda_stream = torch.cuda.Stream(self._device) if self._device.type == "cuda" else None
        self._size_multiple = size_multiple(self.spec)
        self._activations = ACTIVATIONS_PER_FEATURE[self.spec.kind]

    def upscale(self, frames: np.ndarray) -> np.ndarray:
        with torch.inference_mode(), self._stream_context():
            out = self._forward(self._to_device(frames))
            # channels_last output is NHWC in memory, so this permute is free.
            return out.float().clamp_(0, 1).permute(0, 2, 3, 1).cpu().numpy()

    def upscale_samples(self, frames: np.ndarray, target: Optional[Tuple[int, int]] = None) -> np.ndarray:
        """Integer RGB frames (N, H, W, 3), uint8 or uint16, to integer frames at ×scale, rounded
        as ``round(upscale(frames / top) * top)``, then resized to ``target`` = (width, height)
        where it runs when one is given (OpenCV's Lanczos-4 in torch), so only the final size
        crosses the bus. On a GPU the conversions run there: a quarter of the bytes cross the bus
        and the CPU does no per-pixel float work."""
        top = 65535.0 if frames.dtype == np.uint16 else 255.0
        # torch has no uint16 arithmetic on every device; int32 carries 0..65535 exactly.
        host = frames.astype(np.int32) if frames.dtype == np.uint16 else frames
        with torch.inference_mode(), self._stream_context():
            pieces, per_pass = [], self.frames_per_pass(*frames.shape[1:3])
            for start in range(0, len(host), per_pass):
                batch = self._to_device(host[start:start + per_pass], top)
                out = self._forward(batch).float().clamp_(0, 1).mul_(top).round_()
                if target is not None and (out.shape[3], out.shape[2]) != tuple(target):
                    out = lanczos4_resize(out, target).clamp_(0, top).round_()
                pieces.append(out.to(torch.int32 if top > 255 else torch.uint8).permute(0, 2, 3, 1).cpu())
            return torch.cat(pieces).numpy().astype(frames.dtype, copy=False)

    def frames_per_pass(self, height: int, width: int) -> int:
        """How many frames of this size one forward pass may take: on CUDA, what fits in half of
        the free memory by the architecture's activation estimate; on CPU, any number."""
        if self._device.type != "cuda":
            return 1 << 30
        free, _ = torch.cuda.mem_get_info(self._device)
        return frames_that_fit(free, height, width, self.scale, self._activations, self._dtype.itemsize,
                               num_feat=int(self.spec.kwargs.get("num_feat", 64)))

    def _to_device(self, frames: np.ndarray, top: float = 1.0) -> torch.Tensor:
        host = torch.from_numpy(np.ascontiguousarray(frames))
        if self._cuda_stream is not None:
            host = host.pin_memory()  # lets the copy below run asynchronously on our stream
        batch = host.to(self._device, non_blocking=True).permute(0, 3, 1, 2)
        if top == 1.0:
            return batch.to(self._dtype)
        # Scale in fp32 first: 16-bit samples overflow fp16 (its largest value is 65504).
        return batch.float().div_(top).to(self._dtype)

    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) on the device → (N, 3, H·s, W·s), padding what the architecture needs."""
        height, width = batch.shape[2:]
        pad_h, pad_w = (-height) % self._size_multiple, (-width) % self._size_multiple
        if pad_h or pad_w:
            batch = F.pad(batch, (0, pad_w, 0, pad_h), mode="reflect")
        out = self._net(batch.contiguous(memory_format=torch.channels_last))
        return out[:, :, : height * self.scale, : width * self.scale]

    def _stream_context(self):
        if self._cuda_stream is None:
            return contextlib.nullcontext()
        return torch.cuda.stream(self._cuda_stream)


def recognise(path: Path) -> Optional[ModelInfo]:
    """A Real-ESRGAN checkpoint: its tensors are exactly those of the network they describe
    (other architectures share key names like ``body.0.weight``, so only a strict load decides)."""
    if path.suffix != ".pth":
        return None
    try:
        state = read_state_dict(path)
        spec = detect_architecture(state)
        if spec.kwargs["num_in_ch"] != 3:  # gray or RGBA networks: spandrel's backend adapts the channels
            return None
        build_network(spec).load_state_dict(state, strict=True)
    except Exception:  # not this family's file: another backend may know it
        return None
    return ModelInfo(name=path.name, family="realesrgan", architecture=spec.kind, scale=spec.scale,
                     size_multiple=size_multiple(spec), dtypes=("float32", "float16"),
                     purpose="SR" if spec.scale > 1 else "Restoration", bytes=path.stat().st_size)


def load(path: Path, options: LoadOptions) -> RealESRGANModel:
    half = {"fp16": True, "fp32": False}.get(options.dtype)
    return RealESRGANModel(path, device=options.device, half=half, compile=options.compile)


FAMILY = ModelFamily("realesrgan", (".pth",), recognise, load)
