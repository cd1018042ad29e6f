"""The decode stage of a replica's segment, without Ray: the decoder's frames converted to RGB on
the host by swscale (the CPU path, and the baseline measured in the same run) against its 4:2:0
planes taken as they are, which a GPU replica asks for and converts on the device.

    python bench/decode.py --clip CLIP [--batch 8] [--repeats 3]

Frames/s of each way (median of the repeats, after one warm-up pass), milliseconds per frame, the
ratio planes / RGB, and the bytes per frame each hands the model. The planes run includes the
chroma-siting measurement of its first frame (once per segment in the service).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import List, Optional

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tmlsr_ray.models.yuv import Yuv420, Yuv420Frames  # noqa: E402
from tmlsr_ray.pipeline.decode import iter_batches, planar_layout  # noqa: E402
from tmlsr_ray.pipeline.probe import probe_video  # noqa: E402
from tmlsr_ray.pipeline.video_info import VideoInfo  # noqa: E402


def decode_fps(clip: Path, info: VideoInfo, batch: int, planes: Optional[Yuv420]) -> tuple:
    """(frames/s, bytes per frame handed over, what the batches held)."""
    start = time.perf_counter()
    frames = nbytes = 0
    kinds = set()
    for decoded in iter_batches(clip, info, batch, planes=planes):
        array = decoded.frames.planes if isinstance(decoded.frames, Yuv420Frames) else decoded.frames
        frames += len(array)
        nbytes += array.nbytes
        kinds.add(type(decoded.frames).__name__)
    return frames / (time.perf_counter() - start), nbytes / max(1, frames), "/".join(sorted(kinds))


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", type=Path, required=True)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    info = probe_video(args.clip)
    layout = planar_layout(info)
    print(f"{args.clip.name}: {info.width}x{info.height} {info.codec} {info.pix_fmt}; planes layout {layout}; "
          f"{os.cpu_count()} CPU cores")
    if layout is None:
        print("this clip's frames are converted on the host either way (10-bit, 4:2:2, odd size, …)")
        return
    decode_fps(args.clip, info, args.batch, None)  # warm-up: file cache, decoder start
    results = {}
    for name, planes in (("RGB (swscale on the host)", None), ("4:2:0 planes", layout)):
        runs = [decode_fps(args.clip, info, args.batch, planes) for _ in range(args.repeats)]
        fps = [r[0] for r in runs]
        results[name] = statistics.median(fps)
        print(f"{name:26s} {results[name]:8.1f} frames/s ({1000 / results[name]:.2f} ms/frame; "
              f"{min(fps):.1f}..{max(fps):.1f}); {runs[0][1] / 1e6:.2f} MB per frame handed over; "
              f"batches of {runs[0][2]}", flush=True)
    rgb, planes = results.values()
    print(f"ratio planes / RGB: {planes / rgb:.2f}x")


if __name__ == "__main__":
    main()
