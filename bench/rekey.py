"""A long-GOP video's segments, without Ray: cut with long GOPs re-keyed (decoded once where the
video is cut, each segment's frames stored without loss from a keyframe) against the same video
cut without re-keying (the baseline, measured in the same run: a GOP past the pre-roll runs on
to its next keyframe as one segment).

    python bench/rekey.py [--clip CLIP | --size 1280x720 --seconds 40 --gop-s 0] [--segment-s 10]
                          [--max-preroll 300] [--rekey-mib 256] [--repeats 3]

For each way: the segments (how many, re-keyed, the largest in frames), the frames replicas
decode in all (pre-roll included), the cutting pass (every segment file made; median of the
repeats, and input frames/s), the bytes of the segment files per frame against a decoded frame,
and the replicas' decode of the segment files: the sum, and the slowest single segment (what one
replica carries on its own; with several replicas the video takes at least that long). Without
--clip, a synthetic clip of --seconds at --size and 25 fps with one keyframe every --gop-s
seconds (0: one keyframe) is written first.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Dict, List

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.clip import parse_size, synthetic_frames  # noqa: E402
from tmlsr_ray.pipeline.probe import probe_video  # noqa: E402
from tmlsr_ray.pipeline.rekey import raw_frame_bytes  # noqa: E402
from tmlsr_ray.pipeline.segment_plan import Cutting  # noqa: E402
from tmlsr_ray.pipeline.segments import decode_segment, extract_segments, plan_segments  # noqa: E402
from tmlsr_ray.pipeline.video_info import VideoInfo  # noqa: E402

RATE = 25


def long_gop_clip(path: Path, size, seconds: float, gop_s: float) -> Path:
    """H.264 (ultrafast, CRF 16) of a few distinct synthetic frames repeated, with one keyframe
    every ``gop_s`` seconds (0: the first frame only)."""
    import av

    frames = round(seconds * RATE)
    gop = round(gop_s * RATE) or frames
    pattern = synthetic_frames(48, *size)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=RATE)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        stream.options = {"crf": "16", "preset": "ultrafast", "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0"}
        for index in range(frames):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pattern[index % len(pattern)], format="rgb24")))
        container.mux(stream.encode(None))
    return path


def measure(clip: Path, info: VideoInfo, cutting: Cutting, repeats: int) -> Dict:
    plan = plan_segments(clip, info, cutting)
    times: List[float] = []
    for _ in range(repeats):
        start = time.perf_counter()
        files = dict(extract_segments(clip, info, plan.segments))
        times.append(time.perf_counter() - start)
    decodes = {}
    for segment, data in files.items():
        start = time.perf_counter()
        for _ in decode_segment(data, info, segment, 8):
            pass
        decodes[segment.index] = time.perf_counter() - start
    rekeyed = [s for s in plan.segments if s.rekeyed]
    return {
        "segments": len(plan.segments), "rekeyed": len(rekeyed),
        "largest": max(len(s.pts) for s in plan.segments),
        # a re-keyed file holds its own frames only; a copied one decodes from its keyframe
        "decoded": sum(len(s.pts) if s.rekeyed else s.last_packet - s.first_packet + 1 for s in plan.segments),
        "cut_s": statistics.median(times), "frames": plan.frames,
        "bytes_per_frame": sum(len(d) for d in files.values()) / plan.frames,
        "rekeyed_bytes_per_frame": (sum(len(files[s]) for s in rekeyed) / sum(len(s.pts) for s in rekeyed)
                                    if rekeyed else 0.0),
        "decode_sum_s": sum(decodes.values()), "decode_max_s": max(decodes.values()),
    }


def report(label: str, result: Dict, raw: int, baseline: Dict) -> None:
    print(f"{label}: {result['segments']} segments ({result['rekeyed']} re-keyed), largest {result['largest']} "
          f"frames ({result['largest'] / baseline['largest']:.2f}x baseline); replicas decode "
          f"{result['decoded']} frames for {result['frames']}")
    print(f"  cutting pass {result['cut_s']:.2f} s ({result['frames'] / result['cut_s']:.0f} input frames/s; "
          f"{result['cut_s'] / baseline['cut_s']:.1f}x baseline); segment files {result['bytes_per_frame'] / 1e3:.0f} "
          f"kB/frame, re-keyed ones {result['rekeyed_bytes_per_frame'] / 1e3:.0f} kB/frame "
          f"({result['rekeyed_bytes_per_frame'] / raw:.2f} of a decoded frame, {raw / 1e3:.0f} kB)")
    print(f"  replicas' decode: {result['decode_sum_s']:.2f} s in all, slowest segment "
          f"{result['decode_max_s']:.2f} s ({result['decode_max_s'] / baseline['decode_max_s']:.2f}x baseline)")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clip", type=Path, help="a long-GOP video (else a synthetic one)")
    parser.add_argument("--size", type=parse_size, default=(1280, 720))
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--gop-s", type=float, default=0.0, help="keyframe interval (0: one keyframe)")
    parser.add_argument("--segment-s", type=float, default=10.0)
    parser.add_argument("--max-preroll", type=int, default=300)
    parser.add_argument("--rekey-mib", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        clip = args.clip or long_gop_clip(Path(tmp) / "long-gop.mp4", args.size, args.seconds, args.gop_s)
        info = probe_video(clip)
        cutting = Cutting(segment_s=args.segment_s, max_preroll_frames=args.max_preroll,
                          rekey_max_bytes=args.rekey_mib << 20)
        print(f"{clip.name}: {info.width}x{info.height} {info.codec} {info.pix_fmt}, segments of {args.segment_s} s, "
              f"pre-roll at most {args.max_preroll} frames, re-keyed segments at most {args.rekey_mib} MiB; "
              f"median of {args.repeats}")
        baseline = measure(clip, info, replace(cutting, rekey_max_bytes=0), args.repeats)
        rekeyed = measure(clip, info, cutting, args.repeats)
    raw = raw_frame_bytes(info)
    report("baseline, not re-keyed", baseline, raw, baseline)
    report("re-keyed", rekeyed, raw, baseline)


if __name__ == "__main__":
    main()
