"""The device-side Lanczos-4 resize (what the model path runs after a ×4 network to give ×2
output), without Ray: the blocked band matrices of tmlsr_ray.models.lanczos against the dense
matrix product the model path used before (the baseline, measured in the same run), and
OpenCV's cv2.resize on the host for reference.

    python bench/resize.py [--cases 5120x2880:2560x1440 7680x4320:3840x2160] [--frames 2]
                           [--repeats 3] [--device auto|cpu|cuda] [--no-cv2]

For each case: milliseconds per frame (median of the repeats, after a first call that builds the
plan, whose time is reported), the dense/blocked ratio, the largest difference between the two,
and peak GPU memory on CUDA. The dense baseline's matrices are built once, outside the timing
(the old path also rebuilt them, in a Python loop, on every call); the "plan" line says what
building the blocked plans of both axes costs, once per size and model.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, List, Tuple

import cv2
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.clip import parse_size  # noqa: E402
from tmlsr_ray.models.lanczos import Lanczos4, axis_plan, lanczos4_taps  # noqa: E402

Size = Tuple[int, int]


def parse_case(text: str) -> Tuple[Size, Size]:
    source, _, target = text.partition(":")
    return parse_size(source), parse_size(target)


def dense_matrix(source: int, destination: int, device: torch.device) -> torch.Tensor:
    """The (destination, source) band matrix as one dense matrix, as the path before kept it."""
    indices, weights = lanczos4_taps.__wrapped__(source, destination)
    matrix = np.zeros((destination, source))
    np.add.at(matrix, (np.arange(destination)[:, None].repeat(indices.shape[1], 1), indices), weights)
    return torch.from_numpy(matrix).to(device, torch.float32)


def dense_resize(across: torch.Tensor, down: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda frames: down @ (frames @ across.T)


def timed_ms(run: Callable[[], object], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    run()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) * 1000


def median_ms(run: Callable[[], object], device: torch.device, repeats: int) -> float:
    return statistics.median(timed_ms(run, device) for _ in range(repeats))


def bench_case(source: Size, target: Size, frames: int, repeats: int, device: torch.device, with_cv2: bool) -> None:
    label = f"{source[0]}x{source[1]} -> {target[0]}x{target[1]}"
    torch.manual_seed(0)
    batch = (torch.rand(frames, 3, source[1], source[0], device=device) * 255).round_()
    resize = Lanczos4()
    plan_ms = timed_ms(lambda: [axis_plan.__wrapped__(*axis) for axis in zip(source, target)], device)
    first_ms = timed_ms(lambda: resize(batch, target), device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    blocked_ms = median_ms(lambda: resize(batch, target), device, repeats) / frames
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    dense = dense_resize(dense_matrix(source[0], target[0], device), dense_matrix(source[1], target[1], device))
    dense_ms = median_ms(lambda: dense(batch), device, repeats) / frames
    difference = (dense(batch) - resize(batch, target)).abs().max().item()
    print(f"{label}: blocked {blocked_ms:8.2f} ms/frame, dense {dense_ms:8.2f} ms/frame, "
          f"dense/blocked {dense_ms / blocked_ms:5.1f}x, largest difference {difference:.2e}"
          + (f", peak GPU memory {peak:.2f} GiB" if peak is not None else ""))
    print(f"{label}: first call ({frames} frames) {first_ms:.1f} ms; plan of both axes {plan_ms:.1f} ms")
    if with_cv2:
        host = batch[0].permute(1, 2, 0).to(torch.uint8).cpu().numpy()
        cv2_ms = median_ms(lambda: cv2.resize(host, target, interpolation=cv2.INTER_LANCZOS4), torch.device("cpu"),
                           repeats)
        print(f"{label}: cv2.resize on the host (uint8, {cv2.getNumThreads()} threads) {cv2_ms:8.2f} ms/frame")


def main(argv: List[str] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=parse_case, nargs="+",
                        default=[((5120, 2880), (2560, 1440)), ((7680, 4320), (3840, 2160))])
    parser.add_argument("--frames", type=int, default=2, help="frames per call (a 720p pass holds 2)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--no-cv2", action="store_true", help="skip the host cv2.resize reference")
    args = parser.parse_args(argv)
    device = torch.device("cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
                          else "cpu")
    print(f"device {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}, "
          f"torch {torch.__version__}, {args.frames} frame(s) per call, median of {args.repeats}")
    with torch.inference_mode():
        for source, target in args.cases:
            bench_case(source, target, args.frames, args.repeats, device, not args.no_cv2)


if __name__ == "__main__":
    main()
