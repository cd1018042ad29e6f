"""``Upscaler``: replicas that hold loaded models and upscale images (and, later, batches of frames)."""

from __future__ import annotations

import asyncio
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, Tuple

import numpy as np
import torch
from ray import serve

from tmlsr_ray.config import Settings
from tmlsr_ray.models.registry import ModelCache, load_model, resolve_model_path
from tmlsr_ray.pipeline.upscale import Tiling, upscale_frames, upscale_image
from tmlsr_ray.serve.metrics import ModelMetrics


class ModelThread:
    """Where a model replica runs its models: one run at a time, off the event loop (concurrent
    runs would only fight over the cores or GPU memory; queued requests wait here, cheaply)."""

    def __init__(self, settings: Settings, name: str):
        # Ray caps OMP threads at the replica's CPU share (1 by default); on a CPU-only machine
        # the model should use every core unless told otherwise.
        torch.set_num_threads(settings.torch_threads or os.cpu_count() or 1)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    async def run(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def run_stoppable(self, fn, *args):
        """``fn(*args, should_stop)``; a canceled request makes ``should_stop()`` true, so the run
        ends at its next check (a tile, a stage) and frees the replica."""
        stop = threading.Event()
        try:
            return await self.run(fn, *args, stop.is_set)
        except asyncio.CancelledError:
            stop.set()
            raise


@serve.deployment(max_ongoing_requests=4)
class Upscaler:
    def __init__(self, settings: Settings):
        self._settings = settings
        self._thread = ModelThread(settings, "upscale")
        self._models = ModelCache(
            settings.max_cached_models,
            ModelMetrics().timed(lambda path: load_model(path, device=settings.device, half=settings.half,
                                                         compile=settings.torch_compile)),
        )
        self._tiling = Tiling(settings.tile_size, settings.tile_pad, settings.tile_min_pixels)

    async def describe_model(self, model_name: str) -> Dict[str, Any]:
        model = await self._thread.run(self._load, model_name)
        return {"model": model.name, "model_scale": model.scale,
                "architecture": model.architecture, "device": model.device}

    async def upscale_image(self, model_name: str, image: np.ndarray, target: Tuple[int, int]) -> np.ndarray:
        return await self._thread.run_stoppable(self._upscale, model_name, image, target)

    async def upscale_frames(self, model_name: str, frames: np.ndarray, target: Tuple[int, int]) -> np.ndarray:
        """RGB frames (N, H, W, 3) in, frames at their final size out (the store carries no more)."""
        return await self._thread.run_stoppable(self._upscale_frames, model_name, frames, target)

    def _load(self, model_name: str):
        return self._models.get(resolve_model_path(self._settings.weights_dir, model_name))

    def _upscale(self, model_name: str, image: np.ndarray, target, should_stop) -> np.ndarray:
        return upscale_image(self._load(model_name), image, target, self._tiling, should_stop)

    def _upscale_frames(self, model_name: str, frames: np.ndarray, target, should_stop) -> np.ndarray:
        return upscale_frames(self._load(model_name), frames, target, self._tiling, should_stop)


def upscaler_options(settings: Settings) -> Dict[str, Any]:
    return {
        **replica_count(settings.upscaler_replicas, settings.upscaler_autoscaling),
        "max_ongoing_requests": settings.upscaler_max_ongoing_requests,
        "ray_actor_options": {"num_cpus": settings.upscaler_num_cpus, "num_gpus": settings.upscaler_num_gpus},
    }


def replica_count(fixed: int, autoscaling) -> Dict[str, Any]:
    """Serve's options for a fixed number of replicas, or for autoscaling between two."""
    if autoscaling is None:
        return {"num_replicas": fixed}
    return {"autoscaling_config": autoscaling.serve_config()}
