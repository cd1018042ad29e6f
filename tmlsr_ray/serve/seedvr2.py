"""``SeedVR2Upscaler``: replicas holding one loaded SeedVR2 (DiT + VAE + text embedding).

A kind of replica apart from the Real-ESRGAN ``Upscaler``: SeedVR2 needs several GB of GPU memory
and restores batches of frames at a time, so it gets its own replica count and resources.
"""

from __future__ import annotations

import asyncio
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, Dict, Tuple

import numpy as np
import torch
from ray import serve

from tmlsr_ray.config import Settings
from tmlsr_ray.models.registry import ModelCache, resolve_model_path
from tmlsr_ray.models.seedvr2.pipeline import RestoreOptions, SeedVR2Files, SeedVR2Model
from tmlsr_ray.models.seedvr2.vae import VaeTiling
from tmlsr_ray.pipeline.errors import CanceledError
from tmlsr_ray.pipeline.restore import processing_resolution, restore_frames, restore_image
from tmlsr_ray.serve.metrics import ModelMetrics
from tmlsr_ray.serve.upscaler import replica_count


@serve.deployment(max_ongoing_requests=4)
class SeedVR2Upscaler:
    def __init__(self, settings: Settings):
        self._settings = settings
        torch.set_num_threads(settings.torch_threads or os.cpu_count() or 1)
        # One SeedVR2 at a time per replica: two would not fit a GPU's memory.
        self._models = ModelCache(1, ModelMetrics().timed(lambda path: SeedVR2Model.load(
            SeedVR2Files.beside(path), device=settings.device, dtype=settings.seedvr2_dtype)))
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="seedvr2")

    async def describe_model(self, model_name: str) -> Dict[str, Any]:
        """The model, and how it restores (the task adds its seed and resolution)."""
        model = await self._run(self._load, model_name)
        settings = self._settings
        options = self._base_options(0).describe()
        how = {"batch_frames": settings.seedvr2_batch_frames, "temporal_overlap": settings.seedvr2_temporal_overlap,
               "color_fix": options["color_fix"], "vae_tiling": options["vae_tiling"]}
        return {**model.describe(), "model_scale": None, "seedvr2": how}

    async def upscale_image(self, model_name: str, image: np.ndarray, target: Tuple[int, int],
                            seed: int) -> np.ndarray:
        return await self._cancellable(self._restore_image, model_name, image, target, seed)

    async def upscale_frames(self, model_name: str, frames: np.ndarray, target: Tuple[int, int],
                             seed: int) -> np.ndarray:
        """One batch of RGB frames (N, H, W, 3) in, restored frames at ``target`` out."""
        return await self._cancellable(self._restore_frames, model_name, frames, target, seed)

    def _load(self, model_name: str) -> SeedVR2Model:
        return self._models.get(resolve_model_path(self._settings.weights_dir, model_name))

    def _base_options(self, seed: int) -> RestoreOptions:
        settings = self._settings
        tiling = (VaeTiling(settings.seedvr2_vae_tile_size, settings.seedvr2_vae_tile_overlap)
                  if settings.seedvr2_vae_tile_size else None)
        return RestoreOptions(resolution=0, seed=seed, color_fix=settings.seedvr2_color_fix, vae_tiling=tiling)

    def _options(self, target: Tuple[int, int], seed: int) -> RestoreOptions:
        return replace(self._base_options(seed), resolution=processing_resolution(target))

    def _restore_image(self, model_name, image, target, seed, stop: threading.Event) -> np.ndarray:
        return restore_image(self._load(model_name), image, target, self._options(target, seed), _checker(stop))

    def _restore_frames(self, model_name, frames, target, seed, stop: threading.Event) -> np.ndarray:
        return restore_frames(self._load(model_name), frames, target, self._options(target, seed), _checker(stop))

    async def _cancellable(self, fn, *args):
        stop = threading.Event()
        try:
            return await self._run(fn, *args, stop)
        except asyncio.CancelledError:
            stop.set()  # the worker thread stops at the next stage of the batch
            raise

    async def _run(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)


def _checker(stop: threading.Event):
    def check() -> None:
        if stop.is_set():
            raise CanceledError("task canceled")
    return check


def seedvr2_options(settings: Settings) -> Dict[str, Any]:
    return {
        **replica_count(settings.seedvr2_replicas, settings.seedvr2_autoscaling),
        "ray_actor_options": {"num_cpus": settings.seedvr2_num_cpus, "num_gpus": settings.seedvr2_num_gpus},
    }
