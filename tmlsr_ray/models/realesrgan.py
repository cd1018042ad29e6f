"""Real-ESRGAN backend: SRVGGNetCompact and RRDBNet checkpoints, architecture read off the weights."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Union

import torch
import torch.nn.functional as F

from tmlsr_ray.models.base import LoadOptions, ModelError, ModelFamily, ModelInfo, compile_mode, file_suffix
from tmlsr_ray.models.basicsr_compat import import_architectures
from tmlsr_ray.models.checkpoint import read_state_dict
from tmlsr_ray.models.compilation import compile_network
from tmlsr_ray.models.device import select_device, select_dtype
from tmlsr_ray.models.frame_network import FrameNetwork
from tmlsr_ray.models.meta_device import built_on_meta


@dataclass(frozen=True)
class ArchitectureSpec:
    """What is needed to rebuild the network a state dict came from."""

    kind: str  # "SRVGGNetCompact" | "RRDBNet"
    scale: int
    kwargs: Dict[str, int | str]


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
    return network_class(spec)(**spec.kwargs)


def unfilled_network(spec: ArchitectureSpec) -> torch.nn.Module:
    """The network of ``spec`` built on the meta device: no weights, none initialised; a strict
    load checks a file's keys and shapes against it, and with ``assign=True`` gives it the file's."""
    network = network_class(spec)  # imported first: a tensor a module makes on import must not be a meta one
    return built_on_meta(lambda: network(**spec.kwargs))


def network_class(spec: ArchitectureSpec) -> type:
    rrdbnet, srvgg = import_architectures()
    return rrdbnet if spec.kind == "RRDBNet" else srvgg


# Live activations per input pixel and feature channel: SRVGGNetCompact keeps about two feature
# maps alive; RRDBNet's upsampling tail peaks at num_feat·scale²·2 and more beside it (a pass of
# x4plus's widths measured 1.1 times what 32 gave: tests/models/test_frame_network.py).
ACTIVATIONS_PER_FEATURE = {"SRVGGNetCompact": 3, "RRDBNet": 36}


# Both architectures run in every type (the official RealESRGANer runs them in fp16 by default);
# how close fp16 and bf16 come to fp32 is what bench/frames.py --dtype measures (PSNR).
HELD_DTYPES = {"fp32": True, "fp16": True, "bf16": True}


class RealESRGANModel(FrameNetwork):
    """A loaded Real-ESRGAN network (SRVGGNetCompact or RRDBNet) on the shared device path.
    ``dtype``: auto | fp32 | fp16 | bf16 (auto: fp16 on a GPU, fp32 on a CPU); ``compile``: one
    of the compile modes, or True/False."""

    def __init__(self, path: Path, device: str = "auto", dtype: str = "auto", compile: Union[bool, str] = "off",
                 denoise: Optional[float] = None, replicas_per_host: int = 1, gpu_share: float = 1.0):
        # Read, not mapped: the network keeps these tensors (a mapping's pages would count beside them).
        state = read_state_dict(path, mapped=False) if denoise is None else denoised_state(path, denoise)
        self.spec = detect_architecture(state)
        self.name = path.name
        self.scale = self.spec.scale
        self.architecture = self.spec.kind
        self._place(device, select_dtype(dtype, select_device(device), HELD_DTYPES, self.architecture),
                    replicas_per_host, gpu_share)
        net = unfilled_network(self.spec)
        try:
            # The file's tensors become the network's: a network built for real held a second,
            # randomly initialised copy of every weight until the load overwrote it.
            net.load_state_dict(state, strict=True, assign=True)
        except RuntimeError as exc:
            raise ModelError(f"model file {path.name} does not fit {self.spec.kind}: {exc}") from exc
        del state  # so each weight converted below frees the one it replaces
        net.eval().requires_grad_(False)
        # channels_last roughly doubles CPU conv speed at video sizes and suits tensor cores.
        net = net.to(self._device, memory_format=torch.channels_last)
        self.compile_mode = compile_mode(compile)
        self._net = compile_network(net.to(self._dtype), self.compile_mode, path.name)
        self.compiled = self.compile_mode != "off"
        self._size_multiple = size_multiple(self.spec)
        self._activations = ACTIVATIONS_PER_FEATURE[self.spec.kind]
        self._num_feat = int(self.spec.kwargs.get("num_feat", 64))

    @property
    def compile_seconds(self) -> Dict[tuple, float]:
        """Seconds the first call of each input (shape, dtype) took under torch.compile; empty when off."""
        return dict(getattr(self._net, "compile_seconds", {}))

    def _pass_cap_lifted(self, height: int, width: int) -> None:
        if self.compiled:
            self._net.may_pad_again(height + (-height) % self._size_multiple, width + (-width) % self._size_multiple)

    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) on the device → (N, 3, H·s, W·s), padding what the architecture needs."""
        height, width = batch.shape[2:]
        pad_h, pad_w = (-height) % self._size_multiple, (-width) % self._size_multiple
        if pad_h or pad_w:
            # Reflected as RealESRGANer pads; a side shorter than its padding (a 1x1 image into a
            # x1 model's multiple of 4) has nothing to reflect and repeats its edge instead.
            mode = "reflect" if pad_h < height and pad_w < width else "replicate"
            batch = F.pad(batch, (0, pad_w, 0, pad_h), mode=mode)
        out = self._net(batch.contiguous(memory_format=torch.channels_last))
        return out[:, :, : height * self.scale, : width * self.scale]


def recognise(path: Path) -> Optional[ModelInfo]:
    """A Real-ESRGAN checkpoint: its tensors are exactly those of the network they describe
    (other architectures share key names like ``body.0.weight``, so only a strict load decides)."""
    if file_suffix(path) != ".pth":
        return None
    try:
        state = read_state_dict(path)
        spec = detect_architecture(state)
        if spec.kwargs["num_in_ch"] != 3:  # gray or RGBA networks: spandrel's backend adapts the channels
            return None
        unfilled_network(spec).load_state_dict(state, strict=True)
    except Exception:  # not this family's file: another backend may know it
        return None
    return ModelInfo(name=path.name, family="realesrgan", architecture=spec.kind, scale=spec.scale,
                     size_multiple=size_multiple(spec), dtypes=("float32", "float16", "bfloat16"),
                     purpose="SR" if spec.scale > 1 else "Restoration", bytes=path.stat().st_size,
                     network=tuple(spec.kwargs.items()))


def load(path: Path, options: LoadOptions) -> RealESRGANModel:
    return RealESRGANModel(path, device=options.device, dtype=options.dtype, compile=options.compile,
                           denoise=options.denoise, replicas_per_host=options.replicas_per_host,
                           gpu_share=options.gpu_share)


# Real-ESRGAN's general model and its twin trained without denoising: its inference script's
# --denoise_strength interpolates the two networks' weights (deep network interpolation)
GENERAL_MODEL, WEAK_DENOISE_TWIN = "realesr-general-x4v3", "realesr-general-wdn-x4v3"


def weak_denoise_twin(path: Path) -> Optional[Path]:
    """The file beside ``path`` that a denoise strength blends it with, named as Real-ESRGAN's
    script names it (``realesr-general-x4v3`` → ``realesr-general-wdn-x4v3``); None where there is none."""
    if GENERAL_MODEL not in path.name:
        return None
    twin = path.with_name(path.name.replace(GENERAL_MODEL, WEAK_DENOISE_TWIN))
    return twin if twin.is_file() else None


def twin_mismatch(model: ModelInfo, twin: ModelInfo) -> Optional[str]:
    """Why the weak-denoise twin's weights cannot be mixed with the model's (None: they can): an
    architecture's name and scale leave its widths and depths open."""
    if (twin.family, twin.network) == (model.family, model.network):
        return None
    return (f"{twin.name} ({_network_described(twin)}) is not the network of {model.name} "
            f"({_network_described(model)}): their weights cannot be mixed")


def _network_described(info: ModelInfo) -> str:
    return ", ".join([f"{info.architecture} ×{info.scale}"] + [f"{name} {value}" for name, value in info.network])


def denoised_state(path: Path, strength: float) -> Dict[str, torch.Tensor]:
    """The weights at ``strength`` between the weak-denoise twin (0) and the model itself (1), as
    Real-ESRGAN's ``RealESRGANer.dni`` mixes them."""
    twin = weak_denoise_twin(path)
    if twin is None:
        raise ModelError(f"model file {path.name} has no weak-denoise twin beside it (its "
                         f"{path.name.replace(GENERAL_MODEL, WEAK_DENOISE_TWIN)}): it takes no denoise_strength")
    model, other = read_state_dict(path), read_state_dict(twin)
    if {name: t.shape for name, t in model.items()} != {name: t.shape for name, t in other.items()}:
        raise ModelError(f"model files {path.name} and {twin.name} are not the same network: their weights "
                         "cannot be mixed for a denoise_strength")
    return {name: strength * tensor + (1 - strength) * other[name] for name, tensor in model.items()}


FAMILY = ModelFamily("realesrgan", (".pth",), recognise, load)
