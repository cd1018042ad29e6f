"""Image latency: submit → completed through the whole service, against the model's own forward time.

    .venv/bin/python bench/image.py [--size 256] [--runs 10] [--model realesr-animevideov3.pth]

Starts the service in-process (local Ray, a free port, a temporary data directory) unless
``--server URL`` names a running one, serves a random image from a local HTTP server, submits it
``--runs`` times one after another, and prints the median latency next to the median time of
``model.upscale`` on the same pixels in this process (same thread count as one replica).
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import requests
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.helpers import InputServer, free_port  # noqa: E402


def start_service(data_dir: Path, weights_dir: Path) -> str:
    import ray
    from ray import serve

    from tmlsr_ray.app import APP_NAME, build_app

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    port = free_port()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, namespace="tmlsr")
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(build_app({"weights_dir": str(weights_dir), "data_dir": str(data_dir),
                         "allow_private_urls": True}), name=APP_NAME, route_prefix="/")
    return f"http://127.0.0.1:{port}"


def submit_and_wait(server: str, url: str, model: str, stages: dict | None = None) -> float:
    start = time.perf_counter()
    task_id = requests.post(f"{server}/tasks", json={"url": url, "type": "image", "model": model},
                            timeout=30).json()["task_id"]
    while True:
        task = requests.get(f"{server}/tasks/{task_id}", timeout=30).json()
        if task["status"] in ("completed", "failed", "canceled"):
            break
        time.sleep(0.05)  # faster polling would itself load the 2 cores the model runs on
    elapsed = time.perf_counter() - start
    if task["status"] != "completed":
        raise SystemExit(f"task {task_id} ended {task['status']}: {task['error']}")
    for stage in task["stages"]:
        if stages is not None:
            stages.setdefault(stage["name"], []).append(stage["duration"])
    return elapsed


def model_forward_seconds(weights_dir: Path, model: str, pixels: np.ndarray, runs: int) -> float:
    import torch

    from tmlsr_ray.models.realesrgan import RealESRGANModel

    net = RealESRGANModel(weights_dir / model, device="cpu")
    frames = (pixels[None].astype(np.float32) / 255.0)[..., ::-1].copy()
    net.upscale(frames)  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        net.upscale(frames)
        times.append(time.perf_counter() - start)
    print(f"torch threads in this process: {torch.get_num_threads()}")
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--model", default="realesr-animevideov3.pth")
    parser.add_argument("--weights-dir", type=Path, default=REPO / "weights")
    parser.add_argument("--server", help="URL of a running service (default: start one in-process)")
    args = parser.parse_args()

    pixels = np.random.default_rng(0).integers(0, 255, (args.size, args.size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    with tempfile.TemporaryDirectory() as tmp:
        inputs = InputServer(Path(tmp))
        url = inputs.add("bench.png", buf.getvalue())
        server = args.server or start_service(Path(tmp) / "data", args.weights_dir)
        submit_and_wait(server, url, args.model)  # warm-up: model load, first request
        stages: dict = {}
        latencies = [submit_and_wait(server, url, args.model, stages) for _ in range(args.runs)]
        forward = model_forward_seconds(args.weights_dir, args.model, pixels, args.runs)
        inputs.close()
    latency = statistics.median(latencies)
    print(f"image {args.size}x{args.size}, model {args.model}, {args.runs} runs")
    print(f"service latency submit->completed: median {latency * 1000:.0f} ms "
          f"(min {min(latencies) * 1000:.0f}, max {max(latencies) * 1000:.0f})")
    print("stages (median): " + ", ".join(f"{name} {statistics.median(v) * 1000:.0f} ms" for name, v in stages.items()))
    print(f"model forward alone (same process setup): median {forward * 1000:.0f} ms")
    print(f"ratio latency / forward: {latency / forward:.2f}; overhead {1000 * (latency - forward):.0f} ms")


if __name__ == "__main__":
    main()
