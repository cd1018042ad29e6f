"""In-process segment pipeline throughput, without Ray: plan → (decode → Real-ESRGAN → resize →
encode a piece) per segment → join.

    python bench/frames.py CLIP [--model weights/realesr-animevideov3.pth] [--outscale 2 4]
                           [--device auto|cpu|cuda] [--batch 8] [--preset medium] [--codec libx264]
                           [--pieces 1 4] [--segment-s 2] [--frames N]

For each --outscale and each --pieces P, prints in one run: frames/s of the whole pipeline (the
service's own segment code: P segments rendered at once, as P in-flight segments on one replica
are, sharing one model; each piece's encoder gets cores/P threads), frames/s of the model alone
on the same frames (the baseline), and their ratio. P = 1 with one segment is the old single
encoder. It needs no Ray, so it runs where Ray is not installed (a bare GPU machine);
bench/video.py measures the service through Ray Serve.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import List

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tmlsr_ray.models.realesrgan import RealESRGANModel  # noqa: E402
from tmlsr_ray.pipeline.decode import iter_batches, probe_video  # noqa: E402
from tmlsr_ray.pipeline.encode import EncodeOptions, assemble, even_size  # noqa: E402
from tmlsr_ray.pipeline.render import SegmentJob, render_segment  # noqa: E402
from tmlsr_ray.pipeline.segments import Cutting, extract_segments, plan_segments  # noqa: E402
from tmlsr_ray.pipeline.upscale import Tiling, upscale_frames  # noqa: E402
from tmlsr_ray.storage.pieces import PieceStore  # noqa: E402


def sync(model: RealESRGANModel) -> None:
    if model.device.startswith("cuda"):
        torch.cuda.synchronize()


def pipeline_fps(model, clip: Path, outscale: float, batch: int, options: EncodeOptions,
                 pieces: int, segment_s: float, max_frames: int) -> tuple:
    """(frames/s, encoder used, segments) for the first ``max_frames`` frames of the clip."""
    info = probe_video(clip)
    target = even_size(round(info.width * outscale), round(info.height * outscale))
    cutting = Cutting(segment_s=segment_s if pieces > 1 else 1e9, max_frames=10**9)
    model_lock = threading.Lock()  # one model run at a time, as on a replica's model thread
    threads = max(1, (os.cpu_count() or 1) // pieces)
    options = replace(options, threads=threads)

    def upscale(frames_batch):
        with model_lock:
            return upscale_frames(model, frames_batch.frames, target, Tiling(min_pixels=10**9))

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        plan = plan_segments(clip, info, cutting)
        segments = _first_frames(plan.segments, max_frames)
        store = PieceStore(Path(tmp) / "pieces")

        def render(item):
            segment, data = item
            job = SegmentJob(segment, info, target, options, batch)
            *_, (encoded, piece) = render_segment(job, data, upscale)
            store.save(encoded, piece)
            return piece

        with ThreadPoolExecutor(pieces) as pool:
            done = {p.index: p for p in pool.map(render, extract_segments(clip, info, segments))}
        report = assemble(Path(tmp) / "out.mp4", clip, info, list(store.in_order(done)))
        return report.frames / (time.perf_counter() - start), report.encoder, len(segments)


def _first_frames(segments, max_frames: int):
    kept, frames = [], 0
    for segment in segments:
        if frames >= max_frames:
            break
        kept.append(segment)
        frames += len(segment.pts) or max_frames
    return kept


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
    parser.add_argument("--pieces", type=int, nargs="+", default=[1, 4], help="segments rendered at once")
    parser.add_argument("--segment-s", type=float, default=2.0, help="segment length when pieces > 1")
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
        pipeline_fps(model, args.clip, outscale, args.batch, options, 1, 1e9, args.batch)  # warm-up
        for pieces in args.pieces:
            fps, encoder, count = pipeline_fps(model, args.clip, outscale, args.batch, options, pieces,
                                               args.segment_s, frames)
            print(f"outscale {outscale:g} ({encoder}), {pieces} piece(s) at once, {count} segment(s): "
                  f"pipeline {fps:.2f} frames/s, ratio to the model alone {fps / pure:.2f}")


if __name__ == "__main__":
    main()
