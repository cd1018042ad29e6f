"""The SeedVR2 pipeline: companion files, loading, and one-step restoration of a batch of frames.

No Ray and no HTTP here: the Serve replica and the offline command (``python -m tmlsr_ray.seedvr2``)
both drive :class:`SeedVR2Model`.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, Literal, Optional

import numpy as np
import torch

from tmlsr_ray.models.base import ModelError
from tmlsr_ray.models.checkpoint import load_checkpoint
from tmlsr_ray.models.device import select_device
from tmlsr_ray.models.seedvr2.dit import NaDiT
from tmlsr_ray.models.seedvr2.frames import preprocess, to_samples, trim, wavelet_color_fix
from tmlsr_ray.models.seedvr2.vae import CausalVideoVAE, VaeTiling

VAE_FILES = ("ema_vae_fp16.safetensors", "ema_vae.pth")  # ComfyUI-SeedVR2's, the official release's
EMBEDDING_NAMES = ("pos_emb", "neg_emb")
TIMESTEP = 1000.0  # one step from pure noise, as the released model is distilled for
ColorFix = Literal["wavelet", "none"]


@dataclass(frozen=True)
class SeedVR2Files:
    """The DiT and what must lie beside it in the weights directory."""

    dit: Path
    vae: Path
    embeddings: Dict[str, Path]  # name → file holding it (.pt, or .safetensors with that key)

    @classmethod
    def beside(cls, dit: Path) -> "SeedVR2Files":
        """Finds the companion files next to ``dit``; a missing one is named, with where it goes."""
        folder = dit.parent
        vae = next((folder / name for name in VAE_FILES if (folder / name).is_file()), None)
        if vae is None:
            raise ModelError(_missing(VAE_FILES[0], f"the SeedVR2 video VAE (or {VAE_FILES[1]})", folder, dit.name))
        return cls(dit, vae, {name: _find_embedding(folder, name, dit.name) for name in EMBEDDING_NAMES})


def _find_embedding(folder: Path, name: str, dit_name: str) -> Path:
    for candidate in (folder / f"{name}.pt", folder / f"{name}.safetensors"):
        if candidate.is_file():
            return candidate
    # One safetensors file may carry both embeddings (as the golden data's pos_emb.safetensors does).
    for other in EMBEDDING_NAMES:
        shared = folder / f"{other}.safetensors"
        if shared.is_file() and name in _safetensors_keys(shared):
            return shared
    raise ModelError(_missing(f"{name}.pt", f"the SeedVR2 text embedding '{name}' (or {name}.safetensors)",
                              folder, dit_name))


def _missing(file: str, what: str, folder: Path, dit_name: str) -> str:
    return (f"{dit_name} needs {what}: put {file} in the weights directory {folder} beside it "
            f"(nothing is downloaded at run time)")


def _safetensors_keys(path: Path) -> set:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return set(handle.keys())


def load_embedding(path: Path, name: str, width: Optional[int] = None) -> torch.Tensor:
    """A text embedding (L, width) from a torch file (a tensor, or a dict holding ``name``) or a
    safetensors file (key ``name``, or its only tensor)."""
    loaded = load_checkpoint(path, what="the text embedding")
    tensors = loaded if isinstance(loaded, dict) else {name: loaded}
    tensor = tensors.get(name, next(iter(tensors.values())) if len(tensors) == 1 else None)
    if not isinstance(tensor, torch.Tensor) or tensor.ndim != 2:
        raise ModelError(f"{path.name} holds no 2-D tensor '{name}'")
    if width is not None and tensor.shape[1] != width:
        raise ModelError(f"{path.name} holds a {tuple(tensor.shape)} text embedding '{name}'; the DiT beside it "
                         f"takes (L, {width})")
    return tensor


@dataclass(frozen=True)
class RestoreOptions:
    """How one batch is restored."""

    resolution: int  # short side of the processed frames
    seed: int = 42
    color_fix: ColorFix = "wavelet"
    vae_tiling: Optional[VaeTiling] = None


def select_dtype(device: torch.device, preference: str = "auto") -> torch.dtype:
    """bf16 on CUDA (the released weights' precision), fp32 on CPU (bf16 matmuls are slow there)."""
    if preference != "auto":
        return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[preference]
    return torch.bfloat16 if device.type == "cuda" else torch.float32


class SeedVR2Model:
    """A loaded SeedVR2: the DiT, the VAE and the positive text embedding, on one device."""

    architecture = "SeedVR2"

    def __init__(self, name: str, dit: NaDiT, vae: CausalVideoVAE, text: torch.Tensor,
                 device: torch.device, dtype: torch.dtype):
        self.name = name
        self.dit = dit
        self.vae = vae
        # A copy even where device and dtype match: a torch file is memory-mapped, and a mapped
        # tensor kept would change, or SIGBUS, when the file is rewritten in place.
        self.text = text.to(device=device, dtype=torch.float32, copy=True)
        self.device = device
        self.dtype = dtype
        self.last_timings: Dict[str, float] = {}

    @classmethod
    def load(cls, files: SeedVR2Files, device: str = "auto", dtype: str = "auto") -> "SeedVR2Model":
        torch_device = select_device(device)
        torch_dtype = select_dtype(torch_device, dtype)
        dit = NaDiT.from_file(files.dit, device=torch_device, dtype=torch_dtype)
        vae = CausalVideoVAE.from_safetensors(files.vae, device=torch_device, dtype=torch_dtype)
        width = dit.config.txt_in_dim
        text = load_embedding(files.embeddings["pos_emb"], "pos_emb", width)
        if "neg_emb" in files.embeddings:  # unused at guidance scale 1; a broken file is still reported now
            load_embedding(files.embeddings["neg_emb"], "neg_emb", width)
        return cls(files.dit.name, dit, vae, text, torch_device, torch_dtype)

    def describe(self) -> Dict[str, object]:
        return {"model": self.name, "architecture": f"{self.architecture} ({self.dit.config.describe()})",
                "device": str(self.device), "dtype": str(self.dtype).removeprefix("torch.")}

    @torch.inference_mode()
    def restore(self, frames: np.ndarray, options: RestoreOptions, noise: Optional[torch.Tensor] = None,
                checkpoint: Callable[[], None] = lambda: None) -> np.ndarray:
        """RGB frames (T, H, W, 3), uint8 or uint16 → restored frames of the same type, short side
        ``options.resolution``. ``noise`` (t', h, w, 16) replaces the seeded noise (for checks);
        ``checkpoint`` runs between the stages and may raise to stop the work."""
        prepared = preprocess(_as_8bit_scale(frames), options.resolution)
        video = prepared.video.to(self.device, self.dtype)
        with self._timed("encode_s"):
            latent = self.vae.encode(video, options.vae_tiling)
        checkpoint()
        if noise is None:
            noise = seeded_noise(tuple(latent.shape), options.seed)
        elif tuple(noise.shape) != tuple(latent.shape):
            raise ValueError(f"noise must be {tuple(latent.shape)} for these frames, got {tuple(noise.shape)}")
        noise = noise.to(self.device, latent.dtype)
        ones = torch.ones_like(latent[..., :1])
        with self._timed("dit_s"):
            velocity = self.dit(torch.cat([noise, latent, ones], dim=-1), self.text, TIMESTEP)
        checkpoint()
        with self._timed("decode_s"):
            decoded = trim(self.vae.decode(noise - velocity, options.vae_tiling).float(), prepared)
        if options.color_fix == "wavelet":
            decoded = wavelet_color_fix(decoded, trim(prepared.video.to(decoded.device), prepared))
        return to_samples(decoded, frames.dtype).cpu().numpy().astype(frames.dtype, copy=False)

    @contextlib.contextmanager
    def _timed(self, stage: str) -> Iterator[None]:
        """Seconds per stage of the last ``restore``, in ``last_timings`` (for logs and benchmarks)."""
        start = time.perf_counter()
        yield
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.last_timings[stage] = round(time.perf_counter() - start, 4)


def seeded_noise(shape: tuple, seed: int) -> torch.Tensor:
    """Drawn on the CPU so that a seed gives the same result on every device."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def _as_8bit_scale(frames: np.ndarray) -> torch.Tensor:
    """Frames as float on the 0–255 scale ``preprocess`` expects (16-bit input keeps its precision)."""
    tensor = torch.from_numpy(np.ascontiguousarray(frames))
    if frames.dtype == np.uint16:
        return tensor.float() * (255.0 / 65535.0)
    return tensor

