"""Encoder throughput at upscaled sizes, without Ray: libx264 (and libx265 where PyAV's FFmpeg has
it) through the service's own PieceWriter (the RGB→YUV conversion included).

    python bench/encoder.py [--clip CLIP] [--sizes 2560x1440 5120x2880] [--codecs libx264 libx265 prores_ks]
                            [--presets veryfast faster medium] [--pieces 4] [--frames 48 24]
                            [--repeats 3] [--threads N] [--budget-s S]

For each codec, size and preset: frames/s of one encoder with every core's threads, and of P
pieces encoded at once with cores/P threads each (as P segments in flight on one replica are);
medians of the repeats. The frames are the clip's (or bench/clip.py's synthetic ones) resized to
each size, so they look like upscaled video to the encoder.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import List, Optional

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.clip import parse_size, synthetic_frames, write_clip  # noqa: E402
from tmlsr_ray.pipeline.decode import iter_batches  # noqa: E402
from tmlsr_ray.pipeline.encode import EncodeOptions, PieceWriter  # noqa: E402
from tmlsr_ray.pipeline.probe import probe_video  # noqa: E402
from tmlsr_ray.pipeline.video_info import VideoInfo  # noqa: E402


def encode_fps(frames: np.ndarray, info: VideoInfo, options: EncodeOptions, pieces: int, threads: int) -> float:
    """Frames/s of encoding ``frames`` (RGB (N, H, W, 3), or the writer's 4:2:0 planes (N, H·3/2,
    W)) as ``pieces`` pieces at once, ``threads // pieces`` threads each."""
    size = (frames.shape[2], frames.shape[1] if frames.ndim == 4 else frames.shape[1] * 2 // 3)
    step = max(1, round(1 / (float(info.average_rate or 25) * float(info.time_base))))
    each = replace(options, threads=max(1, threads // pieces))
    chunks = np.array_split(np.arange(len(frames)), pieces)

    def encode(index: int) -> None:
        writer = PieceWriter(index, info, size, each)
        writer.write(frames[chunks[index]], [int(k) * step for k in chunks[index]])
        writer.close()

    start = time.perf_counter()
    with ThreadPoolExecutor(pieces) as pool:
        list(pool.map(encode, range(pieces)))
    return len(frames) / (time.perf_counter() - start)


def upscaled_frames(clip: Path, info: VideoInfo, count: int, width: int, height: int) -> np.ndarray:
    """The clip's first ``count`` frames (repeated if it has fewer) resized to width × height."""
    source = np.concatenate([b.frames for b in iter_batches(clip, info, 8)])[:count]
    source = source[np.arange(count) % len(source)]
    return np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_CUBIC) for f in source])


def repeat(measure, times: int) -> List[float]:
    return [measure() for _ in range(times)]


def bench_encoders(clip: Path, args, deadline: float) -> None:
    info = probe_video(clip)
    import av

    print(f"source {clip.name} {info.width}x{info.height}; {args.threads} threads; PyAV {av.__version__}, "
          f"FFmpeg {getattr(av, 'ffmpeg_version_info', '?')}")
    print(f"{'codec':8s} {'size':>10s} {'preset':>9s} {'frames':>6s} {'1 encoder':>10s} "
          f"{f'{args.pieces} pieces':>10s} {'ratio':>6s}  (frames/s, median of {args.repeats})")
    for codec in args.codecs:
        if codec not in av.codecs_available:
            print(f"{codec}: not in this FFmpeg build (skipped)")
            continue
        for (width, height), count in zip(args.sizes, args.frames + args.frames[-1:] * len(args.sizes)):
            frames = upscaled_frames(clip, info, count, width, height)
            for preset in args.presets if EncodeOptions(codec).rate_controlled else ["-"]:  # ProRes has none
                if time.perf_counter() > deadline:
                    print(f"{codec} {width}x{height} {preset}: skipped (time budget spent)")
                    continue
                options = EncodeOptions(codec, 18, preset)
                one = repeat(lambda: encode_fps(frames, info, options, 1, args.threads), args.repeats)
                many = repeat(lambda: encode_fps(frames, info, options, args.pieces, args.threads), args.repeats)
                print(f"{codec:8s} {f'{width}x{height}':>10s} {preset:>9s} {count:6d} {statistics.median(one):10.2f} "
                      f"{statistics.median(many):10.2f} {statistics.median(many) / statistics.median(one):6.2f}",
                      flush=True)


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clip", type=Path, help="source frames (default: a synthetic 1280x720 clip)")
    parser.add_argument("--sizes", type=parse_size, nargs="+", default=[(2560, 1440), (5120, 2880)])
    parser.add_argument("--codecs", nargs="+", default=["libx264", "libx265"])
    parser.add_argument("--presets", nargs="+", default=["veryfast", "faster", "medium"])
    parser.add_argument("--pieces", type=int, default=4, help="pieces encoded at once (vs one encoder)")
    parser.add_argument("--frames", type=int, nargs="+", default=[48, 24], help="frames per size (last repeats)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--budget-s", type=float, default=1e9, help="skip what would start after this")
    args = parser.parse_args(argv)
    deadline = time.perf_counter() + args.budget_s
    with tempfile.TemporaryDirectory() as tmp:
        clip = args.clip or write_clip(Path(tmp) / "source.mp4", synthetic_frames(24, 1280, 720))
        bench_encoders(clip, args, deadline)


if __name__ == "__main__":
    main()
