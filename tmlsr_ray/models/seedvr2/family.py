"""The SeedVR2 backend's declaration: a GGUF DiT recognised by its tensors, with its companions."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from tmlsr_ray.models.base import LoadOptions, ModelFamily, ModelInfo
from tmlsr_ray.models.gguf_tensors import check_supported_types, read_gguf
from tmlsr_ray.models.seedvr2.dit import infer_config
from tmlsr_ray.models.seedvr2.pipeline import EMBEDDING_NAMES, VAE_FILE, SeedVR2Files, SeedVR2Model

GGUF_MAGIC = b"GGUF"
DIT_TENSOR = "vid_in.proj.weight"  # the patch embedding every SeedVR2 DiT starts with


def recognise(path: Path) -> Optional[ModelInfo]:
    """A GGUF file whose tensors are a SeedVR2 DiT; its VAE and text embedding must lie beside it."""
    with path.open("rb") as handle:
        if handle.read(4) != GGUF_MAGIC:
            return None
    tensors = list(read_gguf(path))
    shapes = {tensor.name: tensor.shape for tensor in tensors}
    if DIT_TENSOR not in shapes:
        return None
    config = infer_config(shapes)  # ModelError names what does not fit (the 7B layout, say)
    check_supported_types(tensors, path.name)  # listed with the reason, not failing each task
    SeedVR2Files.beside(path)  # ModelError names a missing companion and where it goes
    return ModelInfo(name=path.name, family="seedvr2", architecture=f"SeedVR2 ({config.describe()})",
                     scale=None, size_multiple=16, dtypes=("bfloat16", "float16", "float32"),
                     temporal=True, seeded=True, replica_kind="seedvr2", bytes=path.stat().st_size)


def load(path: Path, options: LoadOptions):
    dtype = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}.get(options.dtype, options.dtype)
    return SeedVR2Model.load(SeedVR2Files.beside(path), device=options.device, dtype=dtype)


COMPANIONS = (VAE_FILE, *(name + suffix for name in EMBEDDING_NAMES for suffix in (".pt", ".safetensors")))
FAMILY = ModelFamily("seedvr2", (".gguf",), recognise, load, companions=COMPANIONS)
