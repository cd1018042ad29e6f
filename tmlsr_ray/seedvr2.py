"""Offline SeedVR2 on arrays, for checking and debugging (no Ray, no HTTP)::

    python -m tmlsr_ray.seedvr2 --dit DIT.gguf|.safetensors|.pth --vae VAE.safetensors --embeddings EMB \\
        --input FRAMES.npy --resolution R --out OUT.npy [--noise NOISE.npy] [--color-fix wavelet|none]

FRAMES and OUT are uint8 (T, H, W, 3) RGB; all frames form one batch (padded to 4n+1 frames);
NOISE is the latent noise (t', h, w, 16) in the golden data's layout.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable, List, Optional

import numpy as np
import torch

from tmlsr_ray.models.base import ModelError
from tmlsr_ray.models.seedvr2.pipeline import RestoreOptions, SeedVR2Files, SeedVR2Model
from tmlsr_ray.models.seedvr2.vae import VaeTiling
from tmlsr_ray.protocol import MAX_SEED


def whole_number(low: int, high: Optional[int] = None) -> Callable[[str], int]:
    """An argparse type: an integer in [low, high], else a usage error naming the range."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be at least {low}" if high is None
                                             else f"must be from {low} to {high}")
        return value
    return parse


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tmlsr_ray.seedvr2", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dit", type=Path, required=True, help="DiT checkpoint (.gguf, or a float .safetensors or .pth)")
    parser.add_argument("--vae", type=Path, required=True, help="video VAE (ema_vae_fp16.safetensors)")
    parser.add_argument("--embeddings", type=Path, required=True,
                        help="positive text embedding: pos_emb.pt, or a .safetensors holding 'pos_emb'")
    parser.add_argument("--input", type=Path, required=True, help="uint8 frames (T, H, W, 3) RGB, .npy")
    parser.add_argument("--resolution", type=whole_number(1), required=True, help="short side of the output")
    parser.add_argument("--out", type=Path, required=True, help="where the uint8 output frames go (.npy)")
    parser.add_argument("--noise", type=Path, help="latent noise (t', h, w, 16) .npy instead of --seed")
    parser.add_argument("--seed", type=whole_number(0, MAX_SEED), default=42)
    parser.add_argument("--color-fix", choices=("wavelet", "none"), default="wavelet")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--dtype", choices=("auto", "float32", "bfloat16", "float16"), default="auto")
    parser.add_argument("--vae-tile-size", type=int, default=0, help="pixels; 0 = no spatial tiling")
    parser.add_argument("--vae-tile-overlap", type=int, default=64)
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    try:
        frames = np.load(args.input)
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"--input must hold uint8 (T, H, W, 3) frames, got {frames.dtype} {frames.shape}")
        noise = torch.from_numpy(np.load(args.noise)).float() if args.noise else None
        files = SeedVR2Files(args.dit, args.vae, {"pos_emb": args.embeddings})
        model = SeedVR2Model.load(files, device=args.device, dtype=args.dtype)
        tiling = VaeTiling(args.vae_tile_size, args.vae_tile_overlap) if args.vae_tile_size else None
        options = RestoreOptions(args.resolution, args.seed, args.color_fix, tiling)
        start = time.perf_counter()
        output = model.restore(frames, options, noise=noise)
    except (OSError, ValueError, ModelError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    np.save(args.out, output)
    print(f"{frames.shape} -> {output.shape} in {time.perf_counter() - start:.2f} s on {model.device}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
