"""The service's metrics reach Ray's Prometheus endpoint (what the Ray dashboard shows)."""

from __future__ import annotations

import time

import requests

from tests.helpers import make_clip

EXPECTED = ("tmlsr_stage_duration_seconds", "tmlsr_frames_processed_total", "tmlsr_video_frames_per_second",
            "tmlsr_tasks_finished_total", "tmlsr_model_load_seconds", "tmlsr_tasks", "tmlsr_queue_size",
            "tmlsr_active_workers")


def test_task_stage_frame_model_and_queue_metrics_are_exported(service, input_server, tmp_path):
    clip = input_server.add("metrics.mp4", make_clip(tmp_path / "m.mp4", frames=6, audio=False).read_bytes())
    task = service.run(url=clip, model="tiny-x4.pth", timeout=120)
    assert task["status"] == "completed", task["error"]
    ours = 'model="tiny-x4.pth"'  # this task's frames, not an earlier test's
    deadline, missing = time.monotonic() + 60, list(EXPECTED) + [ours]
    while missing and time.monotonic() < deadline:  # Ray exports every few seconds
        time.sleep(2)
        text = requests.get(service.metrics_url, timeout=10).text
        frames = [line for line in text.splitlines() if "tmlsr_frames_processed_total{" in line]
        missing = [name for name in EXPECTED if f"\n{name}" not in text and f"ray_{name}" not in text]
        missing += [] if any(ours in line for line in frames) else [ours]
    assert not missing, f"not exported: {missing}"
