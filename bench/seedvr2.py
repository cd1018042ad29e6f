"""SeedVR2 cost: seconds per output frame and peak memory, with a model of the real 3B shape.

    .venv/bin/python bench/seedvr2.py [--shape 3b|tiny] [--input 96x64] [--frames 5] [--resolution 128]
                                      [--runs 3] [--device auto|cpu|cuda] [--vae-tile 1024] [--workdir DIR]

Writes (once, into --workdir) a random DiT of the real 3B shape packed as Q4_K like
seedvr2_ema_3b-Q4_K_M.gguf, a random VAE of the real shape (fp16 safetensors) and random text
embeddings, loads them through the service's own loaders, and restores a synthetic clip of
--frames frames of --input size to short side --resolution. Prints, in one run: load time, the
median seconds per output frame over --runs (after one warm-up) with the encode/DiT/decode split,
peak memory (GPU allocator peak on CUDA, process RSS on CPU), and as baseline Real-ESRGAN
(weights/realesr-animevideov3.pth) producing the same output size from the same frames, with the
ratio of the two.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List

import numpy as np
import torch
from safetensors.torch import save_file

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.seedvr2_checkpoints import SHAPES, write_random_dit, write_random_embeddings  # noqa: E402
from tmlsr_ray.models.realesrgan import RealESRGANModel  # noqa: E402
from tmlsr_ray.models.seedvr2.pipeline import RestoreOptions, SeedVR2Files, SeedVR2Model  # noqa: E402
from tmlsr_ray.models.seedvr2.vae import CausalVideoVAE, VaeConfig, VaeTiling  # noqa: E402
from tmlsr_ray.pipeline.upscale import processing_resolution  # noqa: E402
from tmlsr_ray.pipeline.upscale import Tiling, upscale_frames  # noqa: E402

VAE_SHAPES = {"3b": (128, 256, 512, 512), "tiny": (32, 32, 64, 64)}


def write_random_vae(path: Path, channels: tuple) -> None:
    config = VaeConfig(in_channels=3, out_channels=3, latent_channels=16, block_out_channels=channels,
                       layers_per_block=2, decoder_layers_per_block=3,
                       temporal_down_blocks=(1, 2), temporal_up_blocks=(0, 1))
    torch.manual_seed(0)
    state = CausalVideoVAE(config).state_dict()
    save_file({name: tensor.to(torch.float16).contiguous() for name, tensor in state.items()}, str(path))


def prepare_weights(workdir: Path, shape: str) -> Path:
    folder = workdir / shape
    folder.mkdir(parents=True, exist_ok=True)
    dit = folder / f"seedvr2_ema_{shape}-Q4_K_M.gguf"
    if not dit.exists():
        print(f"writing random {shape} checkpoints to {folder} …", flush=True)
        write_random_dit(dit.with_suffix(".part"), SHAPES[shape])
        write_random_vae(folder / "ema_vae_fp16.safetensors", VAE_SHAPES[shape])
        write_random_embeddings(folder, SHAPES[shape].text_dim)
        dit.with_suffix(".part").rename(dit)
    return dit


def synthetic_clip(frames: int, width: int, height: int) -> np.ndarray:
    """A moving gradient with texture: enough structure for every stage to do real work."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    clip = [np.stack([(x + 3 * t) % 256, (y + 2 * t) % 256, (x * y / 7 + t) % 256], axis=-1)
            for t in range(frames)]
    return np.stack(clip).astype(np.uint8)


def timed_runs(run: Callable[[], None], runs: int, sync: Callable[[], None]) -> List[float]:
    run()  # warm-up: kernels, allocator, first-shape paths
    sync()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        sync()
        times.append(time.perf_counter() - start)
    return times


def peak_memory_gib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="3b")
    parser.add_argument("--input", default="96x64", help="input WIDTHxHEIGHT")
    parser.add_argument("--frames", type=int, default=5)
    parser.add_argument("--resolution", type=int, default=128, help="output height (short side here)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--vae-tile", type=int, default=1024, help="VAE tile (pixels); 0 = untiled")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/tmlsr-bench-seedvr2"))
    args = parser.parse_args()
    width, height = (int(v) for v in args.input.split("x"))
    frames = synthetic_clip(args.frames, width, height)
    target = (round(width * args.resolution / height), args.resolution)

    dit_path = prepare_weights(args.workdir, args.shape)
    start = time.perf_counter()
    model = SeedVR2Model.load(SeedVR2Files.beside(dit_path), device=args.device)
    load_s = time.perf_counter() - start
    device = model.device
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    tiling = VaeTiling(args.vae_tile, args.vae_tile // 64 * 8) if args.vae_tile else None
    options = RestoreOptions(processing_resolution(target), seed=0, vae_tiling=tiling)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seedvr2_times = timed_runs(lambda: model.restore(frames, options), args.runs, sync)
    peak = peak_memory_gib(device)
    stages: Dict[str, float] = dict(model.last_timings)
    dtype = str(model.dtype).removeprefix("torch.")

    baseline = RealESRGANModel(REPO / "weights" / "realesr-animevideov3.pth", device=args.device)
    esrgan_times = timed_runs(lambda: upscale_frames(baseline, frames, target, Tiling()), args.runs, sync)

    per_frame = statistics.median(seedvr2_times) / args.frames
    baseline_per_frame = statistics.median(esrgan_times) / args.frames
    print(f"device {device} ({dtype}), DiT {args.shape} Q4_K, "
          f"input {width}x{height} x{args.frames} frames -> {target[0]}x{target[1]}, VAE tile {args.vae_tile}")
    print(f"load: {load_s:.2f} s")
    print(f"SeedVR2: {per_frame:.3f} s/frame (median of {args.runs}; runs {[round(t, 2) for t in seedvr2_times]}), "
          f"last run stages {stages}, peak memory {peak:.2f} GiB")
    print(f"baseline Real-ESRGAN animevideov3 to the same size: {baseline_per_frame:.4f} s/frame")
    print(f"ratio SeedVR2 / Real-ESRGAN: {per_frame / baseline_per_frame:.1f}x")


if __name__ == "__main__":
    main()
