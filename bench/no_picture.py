"""What the checks read on every H.264 packet cost a decode, without Ray: its NAL headers are read
(holds_no_picture_packet) before the packet is decoded, and a stream after start codes' (raw, TS) are
scanned for the pictures it lacks (PictureOrderGaps.read). Measured over x264
clips this script makes (a moving ramp under noise, so packets are a real encode's size), each as a
raw .h264 stream (start codes) and as an MP4 (NAL lengths), at 720p and 2160p.

    python bench/no_picture.py [--frames 24] [--repeats 5] [--work /tmp/no_picture]

Per clip: its packets' mean and largest size, each check's microseconds per packet (median of the
repeats, the largest packet's apart; the picture order's on the raw stream only), the decode's milliseconds per packet on this machine's
threads, and the check's share of the decode time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List

import av
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tmlsr_ray.pipeline.damage import holds_no_picture_packet  # noqa: E402
from tmlsr_ray.pipeline.h264_header import PictureOrderGaps  # noqa: E402

SIZES = {"720p": (1280, 720), "2160p": (3840, 2160)}
CONTAINERS = {"h264": "h264", "mp4": "mp4"}


def make_stream(path: Path, size, frames: int) -> Path:
    """A moving ramp under noise, some of it new each frame (a camera's grain: P-frames of a real
    encode's size), x264 at its veryfast preset, a keyframe every 12 frames."""
    width, height = size
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 48, (height, width, 3), dtype=np.uint8)
    ramp = np.linspace(0, 200, width, dtype=np.uint8)[None, :, None]
    with av.open(str(path), "w", format=CONTAINERS[path.suffix[1:]]) as out:
        video = out.add_stream("libx264", rate=24, options={"preset": "veryfast", "crf": "18",
                                                             "x264-params": "keyint=12"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        for index in range(frames):
            grain = rng.integers(0, 6, (height, width, 1), dtype=np.uint8)
            pixels = np.roll(ramp + noise, 8 * index, axis=1) + grain
            out.mux(video.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        out.mux(video.encode(None))
    return path


def check_seconds(packets: List["av.Packet"], check: Callable[["av.Packet"], object]) -> List[float]:
    """Each packet's check, in seconds."""
    spent = []
    for packet in packets:
        start = time.perf_counter()
        check(packet)
        spent.append(time.perf_counter() - start)
    return spent


def checks(path: Path) -> Dict[str, Callable[[], Callable[["av.Packet"], object]]]:
    """Each check the clip's packets get, made fresh for a run (the picture order's keeps state),
    as the decode calls it."""
    made = {"no picture": lambda: holds_no_picture_packet}
    if path.suffix == ".h264":
        made["picture order"] = lambda: lambda packet, gaps=PictureOrderGaps(): gaps.read(memoryview(packet))
    return made


def decode_seconds(path: Path) -> float:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        start = time.perf_counter()
        for _ in container.decode(stream):
            pass
        return time.perf_counter() - start


def measure(path: Path, repeats: int) -> None:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        packets = [packet for packet in container.demux(stream) if packet.size]
        runs = {name: [check_seconds(packets, make()) for _ in range(repeats)] for name, make in checks(path).items()}
    largest = max(range(len(packets)), key=lambda index: packets[index].size)
    decode = statistics.median(decode_seconds(path) for _ in range(repeats)) / len(packets)
    sizes = [packet.size for packet in packets]
    for name, check_runs in runs.items():
        per_packet = statistics.median(statistics.mean(run) for run in check_runs)
        on_largest = statistics.median(run[largest] for run in check_runs)
        print(f"{path.name:12s} {len(packets):3d} packets, mean {statistics.mean(sizes) / 1e3:8.1f} kB, "
              f"largest {max(sizes) / 1e3:8.1f} kB | {name:13s} {per_packet * 1e6:8.1f} us/packet "
              f"({on_largest * 1e6:8.1f} us on the largest) | decode {decode * 1e3:7.2f} ms/packet | "
              f"check's share {per_packet / decode:.3%}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--work", type=Path, default=Path("/tmp/no_picture"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    for name, size in SIZES.items():
        for suffix in CONTAINERS:
            path = args.work / f"{name}.{suffix}"
            if not path.exists():
                make_stream(path, size, args.frames)
            measure(path, args.repeats)


if __name__ == "__main__":
    main()
