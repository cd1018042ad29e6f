"""Video throughput and memory: end-to-end frames/s against the pure model, short clip vs 5× longer.

    .venv/bin/python bench/video.py [CLIP] [--model realesr-animevideov3.pth] [--outscale 4]
                                    [--replicas 1] [--preset medium] [--server URL]

CLIP is a path or URL (default: ../shared/media/video/animation_bbb_320x180_vp9_opus_5s.webm).
Starts the service in-process (local Ray, a free port) unless --server names one, then prints in
one run: end-to-end frames/s of a task (submit → completed), the pure model frames/s on the same
frames in this process with the same thread count, their ratio, and the peak memory (RSS) of the
service's Ray worker processes for the clip and for a clip made 5× as long (same frames, looped).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, Optional

import av
import numpy as np
import psutil
import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.helpers import InputServer, free_port  # noqa: E402
from tmlsr_ray.pipeline.decode import iter_batches, probe_video  # noqa: E402

DEFAULT_CLIP = REPO.parent / "shared" / "media" / "video" / "animation_bbb_320x180_vp9_opus_5s.webm"


def start_service(data_dir: Path, weights_dir: Path, replicas: int, preset: str) -> str:
    import ray
    from ray import serve

    from tmlsr_ray.app import APP_NAME, build_app

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    port = free_port()
    cpus = os.cpu_count() or 2
    ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False,
             namespace="tmlsr", object_store_memory=512 * 1024**2)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(build_app({"weights_dir": str(weights_dir), "data_dir": str(data_dir), "allow_private_urls": True,
                         "upscaler_replicas": replicas, "upscaler_num_cpus": cpus / replicas,
                         "torch_threads": max(1, cpus // replicas), "max_workers": 1,
                         "video_preset": preset}),
              name=APP_NAME, route_prefix="/")
    return f"http://127.0.0.1:{port}"


class PeakMemory:
    """Samples the summed RSS of this machine's Ray worker processes (``ray::…``)."""

    def __init__(self, interval_s: float = 0.1):
        self.peak_bytes = 0
        self.peak_by_name: Dict[str, int] = {}
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            total = 0
            for proc in psutil.process_iter(["name", "cmdline", "memory_info"]):
                title = " ".join(proc.info["cmdline"] or []) or proc.info["name"] or ""
                if not title.startswith("ray::") or proc.info["memory_info"] is None:
                    continue
                rss = proc.info["memory_info"].rss
                total += rss
                # A replica's process title changes with the method it runs: key by actor class.
                name = title.split()[0].split(".")[0]
                self.peak_by_name[name] = max(self.peak_by_name.get(name, 0), rss)
            self.peak_bytes = max(self.peak_bytes, total)
            time.sleep(self._interval_s)


def loop_clip(source: Path, dest: Path, times: int) -> Path:
    """The same frames ``times`` over, as one H.264 MP4 (timestamps continue)."""
    info = probe_video(source)
    rate = info.average_rate or 25
    with av.open(str(dest), "w") as out:
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = info.width, info.height, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "18"}
        for _ in range(times):
            for batch in iter_batches(source, info, 16):
                for pixels in batch.frames:
                    out.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        out.mux(stream.encode(None))
    return dest


def run_task(server: str, url: str, model: str, outscale: Optional[float]) -> Dict:
    body = {"url": url, "type": "video", "model": model}
    if outscale:
        body["outscale"] = outscale
    start = time.perf_counter()
    task_id = requests.post(f"{server}/tasks", json=body, timeout=60).json()["task_id"]
    while True:
        task = requests.get(f"{server}/tasks/{task_id}", timeout=60).json()
        if task["status"] in ("completed", "failed", "canceled"):
            break
        time.sleep(0.2)
    if task["status"] != "completed":
        raise SystemExit(f"task ended {task['status']}: {task['error']}")
    task["wall_s"] = time.perf_counter() - start
    return task


def pure_model_fps(weights_dir: Path, model: str, clip: Path, batch: int, threads: int) -> float:
    import torch

    from tmlsr_ray.models.realesrgan import RealESRGANModel

    torch.set_num_threads(threads)
    net = RealESRGANModel(weights_dir / model, device="cpu")
    info = probe_video(clip)
    batches = [b.frames.astype(np.float32) / 255.0 for b in iter_batches(clip, info, batch)]
    net.upscale(batches[0])  # warm-up
    start = time.perf_counter()
    frames = 0
    for frames_in in batches:
        net.upscale(frames_in)
        frames += len(frames_in)
    return frames / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("clip", nargs="?", default=str(DEFAULT_CLIP))
    parser.add_argument("--model", default="realesr-animevideov3.pth")
    parser.add_argument("--outscale", type=float)
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--weights-dir", type=Path, default=REPO / "weights")
    parser.add_argument("--server", help="URL of a running service (default: start one in-process)")
    parser.add_argument("--long-factor", type=int, default=5)
    parser.add_argument("--preset", default="medium", help="x264 preset of the started service")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        inputs = InputServer(tmp_path)
        clip = Path(args.clip)
        if args.clip.startswith(("http://", "https://")):
            clip = tmp_path / "clip"
            clip.write_bytes(requests.get(args.clip, timeout=600).content)
        short_url = inputs.add("short" + clip.suffix, clip.read_bytes())
        long_clip = loop_clip(clip, tmp_path / "long.mp4", args.long_factor)
        long_url = inputs.url(long_clip.name)
        server = args.server or start_service(tmp_path / "data", args.weights_dir, args.replicas, args.preset)

        run_task(server, short_url, args.model, args.outscale)  # warm-up: model load, first task
        with PeakMemory() as short_memory:
            short = run_task(server, short_url, args.model, args.outscale)
        with PeakMemory() as long_memory:
            long = run_task(server, long_url, args.model, args.outscale)
        threads = max(1, (os.cpu_count() or 2) // args.replicas)
        model_fps = pure_model_fps(args.weights_dir, args.model, clip, 4, threads)
        inputs.close()

    meta = short["output"]["metadata"]
    e2e_fps = meta["frames"] / short["wall_s"]
    process_fps = meta["frames"] / next(s["duration"] for s in short["stages"] if s["name"] == "process")
    print(f"clip {Path(args.clip).name}: {meta['input']['width']}x{meta['input']['height']} -> "
          f"{meta['width']}x{meta['height']}, {meta['frames']} frames, model {args.model}, "
          f"{args.replicas} replica(s), {os.cpu_count()} cores, x264 preset {meta['preset']}")
    print(f"end-to-end (submit -> completed): {e2e_fps:.2f} frames/s ({short['wall_s']:.1f} s)")
    print(f"process stage alone:              {process_fps:.2f} frames/s")
    print(f"pure model (same frames, {threads} threads, batch 4): {model_fps:.2f} frames/s")
    print(f"ratio end-to-end / pure model: {e2e_fps / model_fps:.2f}")
    long_frames = long["output"]["metadata"]["frames"]
    print(f"peak RSS of Ray workers: short clip {short_memory.peak_bytes / 2**20:.0f} MiB, "
          f"{args.long_factor}x clip ({long_frames} frames) {long_memory.peak_bytes / 2**20:.0f} MiB, "
          f"ratio {long_memory.peak_bytes / short_memory.peak_bytes:.2f}")
    for name, peak in sorted(long_memory.peak_by_name.items(), key=lambda kv: -kv[1])[:4]:
        print(f"  {name}: {peak / 2**20:.0f} MiB peak ({args.long_factor}x clip)")
    print(f"end-to-end on the {args.long_factor}x clip: {long_frames / long['wall_s']:.2f} frames/s")


if __name__ == "__main__":
    main()
