"""The real service: a local Ray instance, the Serve application on a free port, real HTTP."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Optional

import pytest
import requests

from tests.helpers import (API_TOKEN, REPO, SEEDVR2_MODEL, SHARED, SPANDREL_ARCHS, WEBHOOK_SECRET, free_port,
                           kill_state_actor, read_task, save_face_model, save_rrdbnet, save_spandrel_model,
                           save_srvgg, wait_for_task)

# A fresh local Ray 2.60 turns token auth on; the tests (like `make run`) use the open local mode.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


@dataclass
class Service:
    base: str
    data_dir: Path
    weights_dir: Path
    metrics_url: str = ""  # this node's Prometheus endpoint

    def url(self, path: str) -> str:
        return self.base + path

    def submit(self, expect: int = 200, **body: Any) -> Dict[str, Any]:
        response = requests.post(self.url("/tasks"), json=body, timeout=30)
        assert response.status_code == expect, response.text
        return response.json()

    def task(self, task_id: str) -> Dict[str, Any]:
        return read_task(self.base, task_id)

    def wait(self, task_id: str, until: Optional[Callable[[Dict[str, Any]], bool]] = None,
             timeout: float = 120) -> Dict[str, Any]:
        """The task once it has ended (or once ``until`` it): ``wait_for_task`` on this service."""
        return wait_for_task(self.base, task_id, timeout=timeout, until=until)

    def run(self, timeout: float = 120, **body: Any) -> Dict[str, Any]:
        return self.wait(self.submit(**body)["task_id"], timeout=timeout)

    def stats(self) -> Dict[str, Any]:
        return requests.get(self.url("/monitor/stats"), timeout=30).json()


def _weights(root: Path) -> Path:
    weights = root / "weights"
    weights.mkdir()
    shutil.copy(REPO / "weights" / "realesr-animevideov3.pth", weights)
    save_srvgg(weights / "tiny-x4.pth")
    save_srvgg(weights / "smooth-x2.pth", scale=2, weight_scale=0.05)
    save_srvgg(weights / "identity-x2.pth", scale=2, weight_scale=0.0)  # returns its nearest-upscaled input
    save_rrdbnet(weights / "tiny-rrdb-x2.pth", scale=2)
    # named as Real-ESRGAN's general model and its weak-denoise twin, which a denoise_strength mixes
    save_srvgg(weights / "realesr-general-x4v3.pth", seed=1, weight_scale=0.5)
    save_srvgg(weights / "realesr-general-wdn-x4v3.pth", seed=2, weight_scale=0.5)
    save_srvgg(weights / "deep-realesr-general-x4v3.pth", num_conv=3)  # a twin of the same architecture, less deep
    save_srvgg(weights / "deep-realesr-general-wdn-x4v3.pth")
    for arch in SPANDREL_ARCHS:
        save_spandrel_model(arch, weights / f"tiny-{arch.lower()}-x2.pth")
    save_spandrel_model("SwinIR", weights / "tiny-swinir-x2.safetensors")
    save_face_model(weights / "tiny-face.pth")
    (weights / "broken.pth").write_bytes(b"not a checkpoint")
    # The real SRVGGNetCompact shape with random weights: as slow as the real model.
    save_srvgg(weights / "slow-x4.pth", num_feat=64, num_conv=16)
    anime = SHARED / "weights" / "RealESRGAN_x4plus_anime_6B.pth"
    if anime.exists():
        shutil.copy(anime, weights)
    seedvr2 = SHARED / "golden" / "seedvr2"
    if seedvr2.is_dir():  # the tiny golden SeedVR2 under the file names of a real installation
        shutil.copy(seedvr2 / "dit.gguf", weights / SEEDVR2_MODEL)
        shutil.copy(seedvr2 / "vae.safetensors", weights / "ema_vae_fp16.safetensors")
        shutil.copy(seedvr2 / "pos_emb.safetensors", weights / "pos_emb.safetensors")
    return weights


@pytest.fixture(scope="session")
def service(tmp_path_factory) -> Service:
    import ray
    from ray import serve

    from tmlsr_ray.app import APP_NAME, build_app
    from tmlsr_ray.serve.state import STATE_ACTOR_NAME, STATE_NAMESPACE

    root = tmp_path_factory.mktemp("service")
    weights = _weights(root)
    port = free_port()
    settings = {
        "weights_dir": str(weights), "data_dir": str(root / "data"), "allow_private_urls": True,
        "max_workers": 2, "heartbeat_interval_s": 0.5, "heartbeat_timeout_s": 15,
        "tile_size": 256, "tile_min_pixels": 500_000, "torch_threads": 2, "video_preset": "ultrafast",
        "video_segment_s": 1.0,
        "seedvr2_temporal_overlap": 1, "webhook_secret": WEBHOOK_SECRET, "webhook_progress_interval_s": 0.5,
        "events_heartbeat_s": 1.0,
    }
    metrics_port = free_port()
    ray.init(address="local", num_cpus=2, include_dashboard=False, namespace=STATE_NAMESPACE,
             object_store_memory=300 * 1024**2, log_to_driver=False, _metrics_export_port=metrics_port)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(build_app(settings), name=APP_NAME, route_prefix="/")
    yield Service(f"http://127.0.0.1:{port}", root / "data", weights, f"http://127.0.0.1:{metrics_port}/metrics")
    serve.shutdown()
    kill_state_actor(STATE_ACTOR_NAME, STATE_NAMESPACE)
    ray.shutdown()


@pytest.fixture(scope="session")
def secured(service):
    """A second service on the same cluster (its own state actor and data), with a token, one
    worker, a queue of one, a tiny output limit and videos of at most 2 s."""
    from ray import serve

    from tmlsr_ray.app import build_app
    from tmlsr_ray.serve.state import STATE_NAMESPACE

    settings = {"weights_dir": str(service.weights_dir), "data_dir": str(service.data_dir / "secured"),
                "allow_private_urls": True, "api_token": API_TOKEN, "upscaler_num_cpus": 0, "seedvr2_replicas": 0,
                "max_output_bytes": 1000, "max_video_duration_s": 2.0, "max_workers": 1, "max_pending_tasks": 1,
                "state_actor_name": "tmlsr_state_secured"}
    serve.run(build_app(settings), name="secured", route_prefix="/secured")
    yield service.url("/secured")
    serve.delete("secured")
    kill_state_actor("tmlsr_state_secured", STATE_NAMESPACE)
