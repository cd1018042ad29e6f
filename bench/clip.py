"""Frames for the benches when no clip is given: smooth moving gradients with hard-edged shapes
and a little noise (what upscaled video holds, and what an encoder finds neither trivial nor
pure noise); and a clip written from them (needs PyAV).

    python bench/clip.py OUT.mp4 [--size 1280x720] [--frames 48]
"""

from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path
from typing import Tuple

import numpy as np


def parse_size(text: str) -> Tuple[int, int]:
    width, height = text.lower().split("x")
    return int(width), int(height)


def synthetic_frames(count: int, width: int, height: int, seed: int = 0) -> np.ndarray:
    """(count, height, width, 3) uint8 RGB; frame k is the pattern moved k pixels."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = np.empty((count, height, width, 3), np.uint8)
    for k in range(count):
        wave = np.sin((x + 3 * k) / 37.0) * np.cos((y - 2 * k) / 23.0)
        frame = np.stack([0.5 + 0.4 * wave, 0.5 + 0.3 * np.sin((x + y + 5 * k) / 61.0), 0.4 + 0.2 * wave], axis=-1)
        top, left = (height // 5 + 2 * k) % height, (width // 7 + 4 * k) % width
        frame[top: top + height // 6, left: left + width // 5] = (0.95, 0.1, 0.6)
        frame += rng.normal(0, 0.02, frame.shape).astype(np.float32)
        frames[k] = (np.clip(frame, 0, 1) * 255).round()
    return frames


def write_clip(path: Path, frames: np.ndarray, rate: int = 25) -> Path:
    """An H.264 MP4 of the frames (libx264, CRF 16, ultrafast: made fast, decoded near-lossless)."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(rate))
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "16", "preset": "ultrafast"}
        for pixels in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode(None))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--size", type=parse_size, default=(1280, 720))
    parser.add_argument("--frames", type=int, default=48)
    args = parser.parse_args()
    write_clip(args.out, synthetic_frames(args.frames, *args.size))
    print(f"wrote {args.out}: {args.frames} frames of {args.size[0]}x{args.size[1]}")


if __name__ == "__main__":
    main()
