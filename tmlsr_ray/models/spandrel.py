"""Community models through spandrel: every single-image super-resolution and restoration
architecture spandrel detects from a state dict (SwinIR, HAT, DAT, OmniSR, SPAN, RealCUGAN,
PLKSR, ESRGAN variants, …), as ``.pth`` or ``.safetensors``.

spandrel reads each file's architecture, scale, channels, size rules and the number types it
holds; this module refuses what a whole-frame upscaler cannot serve (face restoration needs
detected and aligned faces, inpainting needs a mask) with the reason, and runs the rest through
the same batched device path as the Real-ESRGAN backend.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Dict, Optional

import torch

from tmlsr_ray.models.base import LoadOptions, ModelError, ModelFamily, ModelInfo, TilingAdvice, file_suffix
from tmlsr_ray.models.checkpoint import first_lines, read_state_dict
from tmlsr_ray.models.device import select_device, select_dtype
from tmlsr_ray.models.frame_network import FrameNetwork
from tmlsr_ray.models.meta_device import built_on_meta, holds_meta_tensors, parameters_on_meta

SUFFIXES = (".pth", ".safetensors")
MAX_SCALE = 8
# Architectures spandrel 0.4.2 loads with any channel count but runs on RGB only, and why: such a
# file failed every task it was listed for. RCAN is one only with its mean shift (``norm``).
RGB_MEAN = "it subtracts an RGB mean from its input"
RGB_ONLY_ARCHITECTURES = {
    "SPAN": RGB_MEAN,
    "SeemoRe": RGB_MEAN,
    "RCAN": RGB_MEAN,
    "MixDehazeNet": "it splits its output into a haze map and an RGB image",
    "RetinexFormer": "its illumination estimator takes an RGB image and its mean",
}
# Architectures spandrel 0.4.2 loads at any scale but runs at ×4 only, and why: such a file failed
# every task it was listed for.
FOUR_TIMES_ONLY_ARCHITECTURES = {
    "MMRealSR": "below ×4 its degradation estimator is built for the pixel-unshuffled input, and given the image",
}
# Architectures whose spandrel call takes one image, as spandrel's contract says, and fails on a
# batch: DRUNet's and FDnCNN's noise-level map is made for one image, IPT's patch chopper folds the
# patches of one image into the batch dimension, SeemoRe picks its experts by one image's routing.
# They run image by image: a video's batch of frames, or an RGBA image (its colour and alpha go
# through together), failed every task.
ONE_IMAGE_ARCHITECTURES = {"DRUNet", "DnCNN", "IPT", "SeemoRe"}
# Architectures that draw noise from torch's global generator on every call (AuraSR: its style
# vector, one per image, and a faint noise on its input): each image runs with the same noise, so a
# video's frames, an image's tiles and a retried task get one style. They drew new noise per call
# and per place in a batch: the same frame came out different each time.
NOISED_ARCHITECTURES = {"AuraSR"}
NOISE_SEED = 0
# Live activations per input pixel and 64 feature channels, for batch sizing on a GPU, by
# spandrel's architecture name: transformer blocks (windows, attention scores, MLPs four times
# wider) keep far more alive than convolutions, and HAT's overlapping windows most. Each is at or
# above a pass measured at its published widths (tests/models/test_frame_network.py): RealCUGAN's
# U-Net took 3.2 times, SPAN's 2.4 times, HAT's 1.7 times what they were given before. OmniSR's
# took a 5.7th of the transformers' 96, SCUNet's and RetinexFormer's an 8th and a 10th (SCUNet's
# with its input padded to its multiple of 64), MixDehazeNet's and HVI-CIDNet's a 17th.
ACTIVATIONS_PER_FEATURE = {"ESRGAN": 36, "RealESRGAN Compact": 3, "SPAN": 18, "RealCUGAN": 32, "PLKSR": 8,
                           "HAT": 176, "OmniSR": 16, "SCUNet": 14, "RetinexFormer": 11, "MixDehazeNet": 6,
                           "HVI-CIDNet": 6}
TRANSFORMER_ACTIVATIONS = 96
# Windowed transformers published at several widths, whose live values per input pixel follow
# their hyperparameters: (values per feature channel, per head and position a pixel's window
# attends to), measured on the meta device. One count per architecture over-estimated the light
# models (SwinIR-light, DAT-light: 60 channels) 2.6 and 1.7 times, which tiled, with seams, a
# 1080p frame that fits whole; the classic SwinIR 1.4 times.
WINDOWED_TRANSFORMER_VALUES = {"SwinIR": (10, 2), "DAT": (9, 1)}
# Values per output pixel a pixel-shuffle or nearest+conv upsampler keeps: its 64 channels at
# each stage, convolved and shuffled (a light model's direct pixel shuffle keeps a few)
UPSAMPLER_VALUES = 128
WIDTH_MARGIN = 1.1
REFUSED_PURPOSES = {
    "FaceSR": "a face-restoration model: it needs detected and aligned faces, not whole frames",
    "Inpainting": "an inpainting model: it needs a mask of what to fill, not a frame to upscale",
}
# Refused on detection, before their (large) networks are built only to be thrown away.
REFUSED_ARCHITECTURES = {"GFPGAN": "FaceSR", "RestoreFormer": "FaceSR", "LaMa": "Inpainting"}
# BT.601 luma, for models that take one channel
LUMA = (0.299, 0.587, 0.114)


# Architectures whose networks are built with their parameters on the meta device and given the
# file's tensors as their weights, so that a loaded model holds one copy of them (a network built
# for real held its random weights beside the file's until they were copied in: 2x the file). Each
# is checked to upscale as the network built for real does (tests/models/test_spandrel.py); the
# others are built for real.
WEIGHTS_ASSIGNED_ARCHITECTURES = {"Compact", "ESRGAN", "SwinIR", "HAT", "DAT", "OmniSR", "SPAN", "RealCUGAN", "PLKSR",
                                  "DRUNet", "DnCNN", "SeemoRe", "AuraSR", "IPT"}


def describe(path: Path, weighted: bool = True):
    """spandrel's descriptor of the file, or ModelError saying why it cannot be served; ``weighted``:
    its network holding the file's weights (to run it), else built without them where the
    architecture allows (to recognise the file)."""
    import spandrel

    # Read, not mapped, for a network that keeps the tensors: a mapping's pages would count beside them.
    state = read_state_dict(path, mapped=not weighted)
    support = next((a for a in spandrel.MAIN_REGISTRY.architectures("detection") if a.detect(state)), None)
    if support is None:
        raise ModelError(f"model file {path.name}: no architecture spandrel {spandrel.__version__} "
                         "knows matches its tensors (nor Real-ESRGAN's, nor SeedVR2's)")
    name = support.architecture.name
    _refuse_purpose(path, name, REFUSED_ARCHITECTURES.get(str(support.architecture.id)))
    try:
        descriptor = _built(support.architecture, state, weighted)
    except Exception as exc:  # a detected architecture whose tensors do not fit it
        raise ModelError(f"model file {path.name} ({name}) does not load: {type(exc).__name__}: "
                         f"{first_lines(str(exc), count=2, limit=300)}") from exc
    _refuse_purpose(path, name, descriptor.purpose)
    _refuse_unservable(path, name, descriptor, state)
    descriptor.size_requirements = _size_requirements_run(descriptor)
    return descriptor


def _size_requirements_run(descriptor):
    """The size rule the network runs on: spandrel 0.4.2 states none for a network that
    pixel-unshuffles its input (or too small a one), and such a network's own padding fails where
    spandrel's would not (spandrel's call pads to the rule it is given, reflected then its edge
    repeated)."""
    rule = descriptor.size_requirements
    unshuffled_multiple = _unshuffled_multiple(descriptor.architecture.name, descriptor.model)
    if unshuffled_multiple == 1:
        return rule
    return replace(rule, multiple_of=math.lcm(rule.multiple_of, unshuffled_multiple))


def _unshuffled_multiple(architecture: str, network) -> int:
    """The input sides' multiple a pixel-unshuffling network needs. SwinIR's: spandrel says the
    unshuffle's square, while its network pads to its window before the unshuffle, which then
    leaves sides its windows do not divide (a window of 4 unshuffled by 2: an 18x26 or 20x28 frame
    failed, 16x24 ran). RCAN's and FDAT's (×1 unshuffled by 4, ×2 by 2): their networks reflect
    their input up to the unshuffle's multiple, which fails on a side no longer than the padding
    (a ×1's 1x7 or 3x2 frame, or a tile's)."""
    if architecture == "SwinIR" and getattr(network, "start_unshuffle", 1) > 1:
        return network.window_size * network.start_unshuffle
    if architecture == "RCAN":
        return network.downscale_factor
    if architecture == "FDAT":
        return network.pad or 1  # the unshuffle's factor; 0 without one
    return 1


def _built(architecture, state: Dict[str, torch.Tensor], weighted: bool):
    """spandrel's descriptor of ``state``. Each build gets a copy of the dict: spandrel's loaders
    rename and drop its keys (SwinIR's pixel-unshuffle layout), and a build for real after one on
    meta needs them as read."""
    if not weighted:
        return built_on_meta(lambda: architecture.load(dict(state)))
    if str(architecture.id) in WEIGHTS_ASSIGNED_ARCHITECTURES:
        descriptor = _with_weights_assigned(architecture, state)
        if descriptor is not None:
            return descriptor
    return architecture.load(state)


def _with_weights_assigned(architecture, state: Dict[str, torch.Tensor]):
    """The descriptor whose network, built with its parameters on meta, takes ``state``'s tensors
    as its weights; None where that cannot be: a constructor that needs its parameters' values, a
    loader that renames the keys into a dict of its own (ESRGAN's newer layout), checking them
    against the network and giving it none, or a network left with a tensor without data."""
    renamed = dict(state)  # the loader renames and drops keys in it, as its network needs them
    try:
        with parameters_on_meta():
            descriptor = architecture.load(renamed)
        descriptor.model.load_state_dict(renamed, strict=True, assign=True)
    except Exception:  # built for real next, where a file that does not fit fails again
        return None
    return None if holds_meta_tensors(descriptor.model) else descriptor


def _refuse_unservable(path: Path, name: str, descriptor, state: Dict[str, torch.Tensor]) -> None:
    """ModelError for a network loaded fine that a frame upscaler cannot run."""
    if not 1 <= descriptor.scale <= MAX_SCALE:
        raise ModelError(f"model file {path.name} ({name}) scales ×{descriptor.scale}; served are ×1 to ×{MAX_SCALE}")
    if name in FOUR_TIMES_ONLY_ARCHITECTURES and descriptor.scale != 4:
        raise ModelError(f"model file {path.name} ({name}) scales ×{descriptor.scale}, which spandrel's {name} "
                         f"cannot run ({FOUR_TIMES_ONLY_ARCHITECTURES[name]})")
    if descriptor.input_channels not in (1, 3, 4) or descriptor.output_channels not in (1, 3, 4):
        raise ModelError(f"model file {path.name} ({name}) takes {descriptor.input_channels} channels and "
                         f"gives {descriptor.output_channels}; served are 1, 3 or 4")
    if descriptor.input_channels != 3 and _runs_rgb_only(name, state):
        raise ModelError(f"model file {path.name} ({name}) takes {descriptor.input_channels} channels, which "
                         f"spandrel's {name} cannot run ({RGB_ONLY_ARCHITECTURES[name]})")
    if descriptor.size_requirements.square:
        raise ModelError(f"model file {path.name} ({name}) needs square inputs, which frames are not")


def _runs_rgb_only(architecture: str, state: Dict[str, torch.Tensor]) -> bool:
    if architecture == "RCAN":
        return "sub_mean.weight" in state  # how spandrel tells its mean shift is there
    return architecture in RGB_ONLY_ARCHITECTURES


def _refuse_purpose(path: Path, architecture: str, purpose: Optional[str]) -> None:
    refused = REFUSED_PURPOSES.get(purpose)
    if refused:
        raise ModelError(f"model file {path.name} is {refused} ({architecture}); served here are "
                         "super-resolution and restoration models")


def recognise(path: Path) -> Optional[ModelInfo]:
    if file_suffix(path) not in SUFFIXES:
        return None
    descriptor = describe(path, weighted=False)
    dtypes = ("float32",) + ("float16",) * descriptor.supports_half + ("bfloat16",) * descriptor.supports_bfloat16
    return ModelInfo(
        name=path.name, family="spandrel", architecture=descriptor.architecture.name, scale=descriptor.scale,
        size_multiple=descriptor.size_requirements.multiple_of, minimum=descriptor.size_requirements.minimum or None,
        channels=(descriptor.input_channels, descriptor.output_channels), dtypes=dtypes,
        purpose=descriptor.purpose, bytes=path.stat().st_size)


def held_dtypes(descriptor) -> Dict[str, bool]:
    """The number types the architecture holds (spandrel knows which overflow in half)."""
    return {"fp32": True, "fp16": descriptor.supports_half, "bf16": descriptor.supports_bfloat16}


def activations_per_feature(architecture: str, network: torch.nn.Module) -> int:
    """Live activations per input pixel and 64 feature channels of ``network`` in a pass: a
    windowed transformer's by its width, heads, window and upsampler, another by its architecture."""
    values = WINDOWED_TRANSFORMER_VALUES.get(architecture)
    hyper = getattr(network, "hyperparameters", None)
    if values is None or hyper is None:
        return ACTIVATIONS_PER_FEATURE.get(architecture, TRANSFORMER_ACTIVATIONS)
    per_channel, per_attended = values
    attended = hyper["window_size"] ** 2 if architecture == "SwinIR" else math.prod(hyper["split_size"])
    blocks = per_channel * hyper["embed_dim"] + per_attended * max(hyper["num_heads"]) * attended
    upsampler = UPSAMPLER_VALUES * hyper["upscale"] ** 2 if hyper["upsampler"] in ("pixelshuffle", "nearest+conv") else 0
    return math.ceil(WIDTH_MARGIN * max(blocks, upsampler) / 64)


class SpandrelModel(FrameNetwork):
    """A spandrel-loaded network on the shared device path; spandrel's own call pads to the
    architecture's size rule."""

    def __init__(self, path: Path, options: LoadOptions = LoadOptions()):
        descriptor = describe(path)
        self.name = path.name
        self.scale = descriptor.scale
        self.architecture = descriptor.architecture.name
        self.tiling = TilingAdvice(descriptor.tiling.name.lower())
        device = select_device(options.device)
        self._place(options.device, select_dtype(options.dtype, device, held_dtypes(descriptor), self.architecture),
                    options.replicas_per_host, options.gpu_share)
        self._descriptor = descriptor.to(self._device).to(self._dtype).eval()
        self._descriptor.model.requires_grad_(False)
        if self.architecture == "SwinIR":
            _attention_masks_in_their_inputs_dtype(self._descriptor.model)
        self.compiled = False  # spandrel calls its model through its own wrapper
        self._activations = activations_per_feature(self.architecture, descriptor.model)
        self._channels = (descriptor.input_channels, descriptor.output_channels)
        self._noised = self.architecture in NOISED_ARCHITECTURES
        self._one_image_at_a_time = self._noised or self.architecture in ONE_IMAGE_ARCHITECTURES

    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) → (N, 3, H·s, W·s), adapting to models of 1 or 4 channels."""
        channels_in, channels_out = self._channels
        if channels_in == 1:
            weights = torch.tensor(LUMA, device=batch.device, dtype=batch.dtype).view(1, 3, 1, 1)
            batch = (batch * weights).sum(dim=1, keepdim=True)
        elif channels_in == 4:
            batch = torch.cat([batch, torch.ones_like(batch[:, :1])], dim=1)
        out = self._call(batch.contiguous())
        if channels_out == 1:
            return out.repeat(1, 3, 1, 1)  # a copy: the caller clamps in place
        return out[:, :3]

    def _call(self, batch: torch.Tensor) -> torch.Tensor:
        if self._one_image_at_a_time and len(batch) > 1:
            return torch.cat([self._call(image[None]) for image in batch])
        if not self._noised:
            return self._descriptor(batch)
        # The global generator is left as it was: other work in the process draws from it.
        with torch.random.fork_rng(devices=[self._device] if self._device.type == "cuda" else []):
            torch.manual_seed(NOISE_SEED)
            return self._descriptor(batch)


def _attention_masks_in_their_inputs_dtype(network: torch.nn.Module) -> None:
    """spandrel 0.4.2's SwinIR computes the attention mask of a frame size other than its training
    size, as it runs, in fp32: in bf16 the mask turned the scores fp32, and their product with the
    values failed. Its values (0 and -100) are exact in any half type."""
    def cast_mask(module, args, kwargs):
        mask = kwargs.get("mask")
        if mask is None or mask.dtype == args[0].dtype:
            return None
        return args, {**kwargs, "mask": mask.to(args[0].dtype)}

    for module in network.modules():
        if type(module).__name__ == "WindowAttention":
            module.register_forward_pre_hook(cast_mask, with_kwargs=True)


def load(path: Path, options: LoadOptions) -> SpandrelModel:
    return SpandrelModel(path, options)


FAMILY = ModelFamily("spandrel", SUFFIXES, recognise, load)
