"""Randomly initialised SeedVR2 checkpoints with the real tensor layout, for benchmarks.

The real weights are several GB and cannot be fetched here; speed and memory depend on the shapes,
not the values, so a random DiT of the 3B shape, packed as Q4_K like the public Q4_K_M file, and a
random VAE of the real shape measure what the real files would cost.
"""

from __future__ import annotations

from pathlib import Path
from typing import Tuple

import gguf
import numpy as np
import torch

from tests.helpers import DiTShape, dit_tensors

Q4_K = gguf.GGMLQuantizationType.Q4_K
Q4_K_BLOCK_BYTES = 144  # per 256 weights: d, dmin (f16), 12 bytes of 6-bit scales, 128 of nibbles
SHAPES = {"3b": DiTShape(), "tiny": DiTShape(hidden=256, blocks=2, mm_layers=1, mlp_hidden=768)}


def write_random_dit(path: Path, shape: DiTShape, seed: int = 0) -> None:
    """Matrices whose rows split into 256-weight blocks as Q4_K (random, bounded values), the rest as
    F16 (matrices) or F32 (vectors), as the public Q4_K_M file stores them."""
    rng = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(str(path), "seedvr2")
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_K_M)
    for name, dims in dit_tensors(shape):
        if name.endswith("rope.freqs"):
            k = np.arange(dims[0], dtype=np.float32)
            writer.add_tensor(name, (1.0 / 10000 ** (2 * k / (2 * dims[0]))).astype(np.float32))
        elif len(dims) == 1:
            writer.add_tensor(name, (rng.standard_normal(dims) * 0.02).astype(np.float32))
        elif dims[1] % 256 == 0:
            writer.add_tensor(name, _random_q4_k(rng, dims), raw_dtype=Q4_K)
        else:
            writer.add_tensor(name, (rng.standard_normal(dims) * 0.02).astype(np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _random_q4_k(rng: np.random.Generator, dims: Tuple[int, int]) -> np.ndarray:
    rows, cols = dims
    blocks = rng.integers(0, 256, size=(rows, cols // 256, Q4_K_BLOCK_BYTES), dtype=np.uint8)
    # d and dmin small enough that weights stay about ±0.05, like trained ones.
    blocks[:, :, 0:4] = np.array([5e-5, 5e-5], dtype=np.float16).view(np.uint8)
    return blocks.reshape(rows, cols // 256 * Q4_K_BLOCK_BYTES)


def write_random_embeddings(folder: Path, text_dim: int, seed: int = 0) -> None:
    generator = torch.Generator().manual_seed(seed)
    for name, tokens in (("pos_emb", 58), ("neg_emb", 64)):
        tensor = torch.randn(tokens, text_dim, generator=generator).to(torch.bfloat16)
        torch.save(tensor, folder / f"{name}.pt")
