"""Several videos share the Upscaler replicas: each task keeps only a bounded window of segments in
flight, so a second video makes progress while the first is still running."""

from __future__ import annotations

from typing import Optional

import pytest
import requests

from tests.helpers import eventually, make_clip, read_task, task_ended, video_progress

APP, PREFIX, STATE = "fair-app", "/fair", "tmlsr_state_fair"
FRAMES = 72


@pytest.fixture()
def two_replicas(service):
    import ray
    from ray import serve

    from tmlsr_ray.app import build_app
    from tmlsr_ray.serve.state import STATE_NAMESPACE

    settings = {"weights_dir": str(service.weights_dir), "data_dir": str(service.data_dir / "fair"),
                "allow_private_urls": True, "upscaler_num_cpus": 0, "upscaler_replicas": 2, "seedvr2_replicas": 0,
                "max_workers": 2, "video_batch_frames": 2, "video_segments_per_replica": 1, "video_segment_s": 1.0,
                "torch_threads": 1,
                "state_actor_name": STATE, "video_preset": "ultrafast"}
    serve.run(build_app(settings), name=APP, route_prefix=PREFIX)
    yield service.url(PREFIX)
    serve.delete(APP)
    ray.kill(ray.get_actor(STATE, namespace=STATE_NAMESPACE), no_restart=True)


def test_a_second_video_progresses_while_the_first_runs(two_replicas, input_server, tmp_path):
    base = two_replicas
    ids = []
    for name in ("fair-a.mp4", "fair-b.mp4"):
        # Six one-second segments each: the first video still runs when the second replica has loaded its model.
        clip = make_clip(tmp_path / name, frames=FRAMES, size=(160, 120), audio=False)
        url = input_server.add(name, clip.read_bytes())
        ids.append(requests.post(f"{base}/tasks", json={"url": url, "model": "slow-x4.pth"}, timeout=30)
                   .json()["task_id"])
    moving = []  # each look: were both processing, each part way?

    def both_ended() -> Optional[list]:
        tasks = [read_task(base, task_id) for task_id in ids]
        done = [video_progress(t).get("frames_done", 0) for t in tasks]
        moving.append(all(t["status"] == "processing" for t in tasks) and all(0 < d < FRAMES for d in done))
        return tasks if all(task_ended(t) for t in tasks) else None

    tasks = eventually(both_ended, 300, "both videos ended")
    assert [t["status"] for t in tasks] == ["completed", "completed"], [t["error"] for t in tasks]
    assert any(moving), "the second video waited for the first to finish"
