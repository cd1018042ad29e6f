"""In-process frame pipeline throughput, without Ray: decode → Real-ESRGAN → resize → encode.

    python bench/frames.py CLIP [--model weights/realesr-animevideov3.pth] [--outscale 2 4]
                           [--device auto|cpu|cuda] [--batch 8] [--preset medium] [--codec libx264]

For each --outscale, prints in one run: frames/s of the whole pipeline (the service's own decode,
upscale and encode code, one after another in this process), frames/s of the model alone on the
same frames (the baseline), and their ratio. It needs no Ray, so it runs where Ray is not installed
(a bare GPU machine); bench/video.py measures the same through the Serve deployment.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import List

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tmlsr_ray.models.realesrgan import RealESRGANModel  # noqa: E402
from tmlsr_ray.pipeline.decode import iter_batches, probe_video  # noqa: E402
from tmlsr_ray.pipeline.encode import EncodeOptions, VideoWriter, even_size  # noqa: E402
from tmlsr_ray.pipeline.upscale import Tiling, upscale_frames  # noqa: E402


def sync(model: RealESRGANModel) -> None:
    if model.device.startswith("cuda"):
        torch.cuda.synchronize()


def pipeline_fps(model, clip: Path, outscale: float, batch: int, options: EncodeOptions,
                 max_frames: int) -> tuple:
    """(frames/s, encoder used) over the first ``max_frames`` frames."""
    info = probe_video(clip)
    target = even_size(round(info.width * outscale), round(info.height * outscale))
    frames = 0
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        writer = VideoWriter(Path(tmp) / "out.mp4", clip, info, target, options)
        for item in iter_batches(clip, info, batch):
            writer.write(upscale_frames(model, item.frames, target, Tiling(min_pixels=10**9)), item.pts)
            frames += len(item.pts)
            if frames >= max_frames:
                break
        report = writer.close()
        return frames / (time.perf_counter() - start), report.encoder


def model_fps(model, batches: List[np.ndarray]) -> float:
    """The model alone on integer frames, as the pipeline feeds it (device-side conversions)."""
    model.upscale_samples(batches[0])  # warm-up
    sync(model)
    start = time.perf_counter()
    for frames in batches:
        model.upscale_samples(frames)
    sync(model)
    return sum(len(b) for b in batches) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("clip", type=Path)
    parser.add_argument("--model", type=Path, default=REPO / "weights" / "realesr-animevideov3.pth")
    parser.add_argument("--outscale", type=float, nargs="+", default=[2.0, 4.0])
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--preset", default="medium")
    parser.add_argument("--codec", default="libx264", help="libx264, h264_nvenc or auto")
    parser.add_argument("--frames", type=int, default=10**9, help="use only the first N frames")
    parser.add_argument("--compile", action="store_true", help="torch.compile the network")
    args = parser.parse_args()
    model = RealESRGANModel(args.model, device=args.device, compile=args.compile)
    info = probe_video(args.clip)
    batches = [b.frames for b in iter_batches(args.clip, info, args.batch)]
    batches = batches[: max(1, args.frames // args.batch)]
    pure = model_fps(model, batches)
    print(f"{args.clip.name}: {info.width}x{info.height}, {sum(len(b) for b in batches)} frames; "
          f"model {args.model.name} x{model.scale} on {model.device} (half={model.half}), batch {args.batch}")
    print(f"model alone (baseline): {pure:.2f} frames/s")
    frames = sum(len(b) for b in batches)
    for outscale in args.outscale:
        options = EncodeOptions(args.codec, 18, args.preset)
        pipeline_fps(model, args.clip, outscale, args.batch, options, args.batch)  # warm-up: resize, encoder
        fps, encoder = pipeline_fps(model, args.clip, outscale, args.batch, options, frames)
        print(f"outscale {outscale:g} ({encoder}): pipeline {fps:.2f} frames/s, ratio to the model alone "
              f"{fps / pure:.2f}")


if __name__ == "__main__":
    main()
