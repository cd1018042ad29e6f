"""The service's metrics reach Ray's Prometheus endpoint (what the Ray dashboard shows)."""

from __future__ import annotations

import time

import requests

from tests.helpers import eventually, make_clip

EXPECTED = ("tmlsr_stage_duration_seconds", "tmlsr_frames_processed_total", "tmlsr_video_frames_per_second",
            "tmlsr_tasks_finished_total", "tmlsr_model_load_seconds", "tmlsr_tasks", "tmlsr_queue_size",
            "tmlsr_active_workers")


def test_task_stage_frame_model_and_queue_metrics_are_exported(service, input_server, tmp_path):
    clip = input_server.add("metrics.mp4", make_clip(tmp_path / "m.mp4", frames=6, audio=False).read_bytes())
    task = service.run(url=clip, model="tiny-x4.pth", timeout=120)
    assert task["status"] == "completed", task["error"]
    ours = 'model="tiny-x4.pth"'  # this task's frames, not an earlier test's

    def not_exported() -> list:
        text = requests.get(service.metrics_url, timeout=10).text
        frames = [line for line in text.splitlines() if "tmlsr_frames_processed_total{" in line]
        missing = [name for name in EXPECTED if f"\n{name}" not in text and f"ray_{name}" not in text]
        return missing + ([] if any(ours in line for line in frames) else [ours])

    # Ray exports every few seconds: asked more often, each scrape would cost and find nothing new.
    eventually(not_exported, 60, "every metric exported", until=lambda missing: not missing, every=2)


def test_the_video_speed_stays_exported_between_videos_at_zero(service, input_server, tmp_path):
    """Ray drops a gauge's series about 20 s after its last set: a scrape between videos found no
    speed at all. The runner sets it again every few seconds, 0 once its video ended."""
    clip = input_server.add("speed.mp4", make_clip(tmp_path / "s.mp4", frames=6, audio=False).read_bytes())
    task = service.run(url=clip, model="smooth-x2.pth", timeout=120)
    assert task["status"] == "completed", task["error"]
    ended = time.monotonic()
    time.sleep(35)  # past Ray's expiry of a gauge set once
    speed = [line for line in requests.get(service.metrics_url, timeout=10).text.splitlines()
             if "tmlsr_video_frames_per_second{" in line and 'model="smooth-x2.pth"' in line]
    assert speed and all(float(line.rsplit(" ", 1)[1]) == 0 for line in speed), (time.monotonic() - ended, speed)


class _Recorded:
    def __init__(self):
        self.values = []

    def set(self, value, tags):
        self.values.append((tags["model"], value))


def test_the_speed_drops_to_zero_with_the_models_last_video_and_is_set_again_while_idle():
    from tmlsr_ray.serve.metrics import RunnerMetrics

    metrics = RunnerMetrics()
    metrics.fps = speeds = _Recorded()
    metrics.video_started("a.pth")
    metrics.video_started("a.pth")
    metrics.video_progress("a.pth", 4, 12.5)
    metrics.video_ended("a.pth")  # the other video of the model still runs
    metrics.republish()
    assert speeds.values == [("a.pth", 12.5), ("a.pth", 12.5)]
    metrics.video_ended("a.pth")
    metrics.republish()
    assert speeds.values[2:] == [("a.pth", 0.0), ("a.pth", 0.0)]
