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


@serve.deployment(max_ongoing_requests=4)
class Upscaler:
    def __init__(self, settings: Settings):
        self._settings = settings
        # Ray caps OMP threads at the replica's CPU share (1 by default); on a CPU-only machine
        # the model should use every core unless told otherwise.
        torch.set_num_threads(settings.torch_threads or os.cpu_count() or 1)
        self._models = ModelCache(
            settings.max_cached_models,
            ModelMetrics().timed(lambda path: load_model(path, device=settings.device, half=settings.half,
                                                         compile=settings.torch_compile)),
        )
        self._tiling = Tiling(settings.tile_size, settings.tile_pad, settings.tile_min_pixels)
        # One model run at a time per replica: concurrent runs would only fight over the cores
        # (or GPU memory); queued requests wait here, cheaply.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="upscale")

    async def describe_model(self, model_name: str) -> Dict[str, Any]:
        model = await self._run(self._load, model_name)
        return {"model": model.name, "model_scale": model.scale,
                "architecture": model.architecture, "device": model.device}

    async def upscale_image(self, model_name: str, image: np.ndarray, target: Tuple[int, int]) -> np.ndarray:
        stop = threading.Event()
        try:
            return await self._run(self._upscale, model_name, image, target, stop)
        except asyncio.CancelledError:
            stop.set()  # the worker thread stops at its next tile
            raise

    async def upscale_frames(self, model_name: str, frames: np.ndarray, target: Tuple[int, int]) -> np.ndarray:
        """RGB frames (N, H, W, 3) in, frames at their final size out (the store carries no more)."""
        stop = threading.Event()
        try:
            return await self._run(self._upscale_frames, model_name, frames, target, stop)
        except asyncio.CancelledError:
            stop.set()
            raise

    def _load(self, model_name: str):
        return self._models.get(resolve_model_path(self._settings.weights_dir, model_name))

    def _upscale(self, model_name: str, image: np.ndarray, target, stop: threading.Event) -> np.ndarray:
        model = self._load(model_name)
        return upscale_image(model, image, target, self._tiling, should_stop=stop.is_set)

    def _upscale_frames(self, model_name: str, frames: np.ndarray, target, stop: threading.Event) -> np.ndarray:
        model = self._load(model_name)
        return upscale_frames(model, frames, target, self._tiling, should_stop=stop.is_set)

    async def _run(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)


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
