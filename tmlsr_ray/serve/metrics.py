"""The service's metrics, exported through Ray (Ray dashboard, Prometheus endpoint of each node).

Serve deployments record through ``ray.serve.metrics`` (which adds the application, deployment and
replica tags); the state actor is a plain Ray actor and records through ``ray.util.metrics``, the
same exporter. All names start with ``tmlsr_``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, TypeVar

T = TypeVar("T")

STAGE_BUCKETS_S = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600]
LOAD_BUCKETS_S = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120]


class RunnerMetrics:
    """Recorded by the TaskRunner: stage durations, frames, speed, retries."""

    def __init__(self) -> None:
        from ray.serve.metrics import Counter, Gauge, Histogram

        self.stage_seconds = Histogram("tmlsr_stage_duration_seconds", "Duration of task stages.",
                                       boundaries=STAGE_BUCKETS_S, tag_keys=("stage", "status"))
        self.frames = Counter("tmlsr_frames_processed_total", "Video frames upscaled and encoded.",
                              tag_keys=("model",))
        self.fps = Gauge("tmlsr_video_frames_per_second", "Speed of the latest video batch (frames/s).",
                         tag_keys=("model",))
        self.retries = Counter("tmlsr_upscaler_retries_total",
                               "Upscaler calls sent again after a replica died or timed out.")
        self._speeds: Dict[str, float] = {}  # by model tag: the latest batch's, 0 once its videos ended
        self._running: Dict[str, int] = {}  # videos of each model tag in progress here

    def video_started(self, model: str) -> None:
        self._running[tag_value(model)] = self._running.get(tag_value(model), 0) + 1

    def video_progress(self, model: str, frames: int, fps: float) -> None:
        self.frames.inc(frames, tags={"model": tag_value(model)})
        self._set_speed(tag_value(model), fps)

    def video_ended(self, model: str) -> None:
        """The speed drops to 0 with the model's last video here, not while another still runs."""
        tag = tag_value(model)
        self._running[tag] = self._running.get(tag, 1) - 1
        if not self._running[tag]:
            self._set_speed(tag, 0.0)

    def republish(self) -> None:
        """Sets every speed again: Ray drops a gauge's series about 20 s after its last set, so a
        scrape between videos found none (the state actor's gauges are set on every sweep)."""
        for model, fps in self._speeds.items():
            self.fps.set(fps, tags={"model": model})

    def _set_speed(self, model: str, fps: float) -> None:
        self._speeds[model] = fps
        self.fps.set(fps, tags={"model": model})


class ModelMetrics:
    """Recorded by the model replicas: how long loading a model takes."""

    def __init__(self) -> None:
        from ray.serve.metrics import Histogram

        self.load_seconds = Histogram("tmlsr_model_load_seconds", "Time to load a model into a replica.",
                                      boundaries=LOAD_BUCKETS_S, tag_keys=("model",))

    def timed(self, loader: Callable[..., T]) -> Callable[..., T]:
        """``loader`` (of a model file, and what else it takes) that records each load's duration."""
        def load(path: Path, *args: Any) -> T:
            start = time.perf_counter()
            model = loader(path, *args)
            self.load_seconds.observe(time.perf_counter() - start, tags={"model": tag_value(path.name)})
            return model
        return load


class StateMetrics:
    """Recorded by the state actor: tasks by status and the queue (after every sweep), and every end
    (the actor sees them all: cancels of pending tasks and sweeper failures too)."""

    def __init__(self) -> None:
        from ray.util.metrics import Counter, Gauge

        self.tasks_finished = Counter("tmlsr_tasks_finished_total", "Tasks that ended, by final status.",
                                      tag_keys=("status",))
        self.tasks = Gauge("tmlsr_tasks", "Tasks by status (all kept records).", tag_keys=("status",))
        self.queue = Gauge("tmlsr_queue_size", "Tasks waiting for a worker slot.")
        self.active = Gauge("tmlsr_active_workers", "Tasks processing now.")

    def update(self, counts: Mapping[str, int], queue: int, active: int) -> None:
        for status, count in counts.items():
            self.tasks.set(count, tags={"status": status})
        self.queue.set(queue)
        self.active.set(active)


def tag_value(text: str) -> str:
    """A tag value Ray records: ASCII only (it raises UnicodeEncodeError on any other character, which
    failed every task of a model named ``modèle.pth``), the rest as Python escapes."""
    return text.encode("ascii", "backslashreplace").decode("ascii")


def status_counts(stats: Mapping) -> Dict[str, int]:
    return {getattr(status, "value", status): count for status, count in stats.items()}
