"""The SeedVR2 backend's declaration: a GGUF, safetensors or torch DiT recognised by its tensors, with its companions."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Tuple

from tmlsr_ray.models.base import LoadOptions, ModelError, ModelFamily, ModelInfo, file_suffix
from tmlsr_ray.models.gguf_tensors import check_tensor_types, tensor_layout
from tmlsr_ray.models.seedvr2.dit import infer_config
from tmlsr_ray.models.seedvr2.pipeline import EMBEDDING_NAMES, VAE_FILES, SeedVR2Files, SeedVR2Model

GGUF_MAGIC = b"GGUF"
DIT_TENSOR = "vid_in.proj.weight"  # the patch embedding every SeedVR2 DiT starts with


def recognise(path: Path) -> Optional[ModelInfo]:
    """A GGUF, safetensors or torch file whose tensors are a SeedVR2 DiT (others are left to the
    next family); its VAE and text embedding must lie beside it."""
    layout = _tensor_layout(path)
    if layout is None or DIT_TENSOR not in layout:
        return None
    # ModelError names what does not fit (the 7B layout, say)
    config = infer_config({name: shape for name, (_, shape) in layout.items()})
    check_tensor_types(path, layout)  # listed with the reason, not failing each task
    SeedVR2Files.beside(path)  # ModelError names a missing companion and where it goes
    return ModelInfo(name=path.name, family="seedvr2", architecture=f"SeedVR2 ({config.describe()})",
                     scale=None, size_multiple=16, dtypes=("bfloat16", "float16", "float32"),
                     temporal=True, seeded=True, replica_kind="seedvr2", bytes=path.stat().st_size)


def _tensor_layout(path: Path) -> Optional[Dict[str, Tuple[str, Tuple[int, ...]]]]:
    """The file's tensor types and shapes; None when it holds another format than its suffix says."""
    if file_suffix(path) == ".gguf":
        with path.open("rb") as handle:
            if handle.read(4) != GGUF_MAGIC:
                return None
        return tensor_layout(path)
    try:
        return tensor_layout(path)
    except ModelError:
        return None  # a torch file named .safetensors, a .pth nesting its tensors: spandrel reads any by contents


def load(path: Path, options: LoadOptions):
    dtype = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}.get(options.dtype, options.dtype)
    return SeedVR2Model.load(SeedVR2Files.beside(path), device=options.device, dtype=dtype)


COMPANIONS = (*VAE_FILES, *(name + suffix for name in EMBEDDING_NAMES for suffix in (".pt", ".safetensors")))
FAMILY = ModelFamily("seedvr2", (".gguf", ".safetensors", ".pth"), recognise, load, companions=COMPANIONS)
