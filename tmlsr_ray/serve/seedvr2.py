"""``SeedVR2Upscaler``: replicas holding one loaded SeedVR2 (DiT + VAE + text embedding).

A kind of replica apart from the Real-ESRGAN ``Upscaler``: SeedVR2 needs several GB of GPU memory
and restores batches of frames at a time, so it gets its own replica count and resources.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, AsyncIterator, Dict, Tuple

import numpy as np
from ray import serve

from tmlsr_ray.config import Settings
from tmlsr_ray.models.base import LoadOptions
from tmlsr_ray.models.seedvr2.pipeline import RestoreOptions, SeedVR2Model
from tmlsr_ray.models.seedvr2.vae import VaeTiling
from tmlsr_ray.pipeline.render import Rendered, SegmentJob
from tmlsr_ray.pipeline.restore import restore_frames, restore_image
from tmlsr_ray.pipeline.upscale import processing_resolution
from tmlsr_ray.serve.heap import IdleRelease
from tmlsr_ray.serve.upscaler import ModelHolder, ModelThread, replica_count, stream_segment


@serve.deployment(max_ongoing_requests=4)
class SeedVR2Upscaler:
    def __init__(self, settings: Settings):
        self._settings = settings
        self._thread = ModelThread(settings, "seedvr2")
        # One SeedVR2 at a time per replica: two would not fit a GPU's memory.
        self._models = ModelHolder(settings, 1, LoadOptions(settings.device, settings.seedvr2_dtype))
        self._tiling = (VaeTiling(settings.seedvr2_vae_tile_size, settings.seedvr2_vae_tile_overlap)
                        if settings.seedvr2_vae_tile_size else None)
        self._idle = IdleRelease()

    def check_health(self) -> None:
        self._models.report()

    async def describe_model(self, model_name: str) -> Dict[str, Any]:
        """The model, and how it restores (the task adds its seed and resolution)."""
        model = await self._thread.run(self._load, model_name)
        settings = self._settings
        how = {"batch_frames": settings.seedvr2_batch_frames, "temporal_overlap": settings.seedvr2_temporal_overlap,
               "color_fix": settings.seedvr2_color_fix, "vae_tiling": asdict(self._tiling) if self._tiling else None}
        return {**model.describe(), "model_scale": None, "seedvr2": how}

    async def upscale_image(self, model_name: str, image: np.ndarray, target: Tuple[int, int],
                            seed: int) -> np.ndarray:
        with self._idle.working():
            return await self._thread.run_stoppable(self._restore, restore_image, model_name, image, target, seed)

    async def render_segment(self, model_name: str, job: SegmentJob, data: bytes) -> AsyncIterator[Rendered]:
        """A segment restored in batches of ``job.batch_frames`` (overlapping by ``job.overlap``)."""
        def restore(batch, stop):
            return self._thread.call(self._restore, restore_frames, model_name, batch.frames, job.target,
                                     job.batch_seed(batch), stop.is_set)
        with self._idle.working():
            async for item in stream_segment(job, data, restore):
                yield item

    def _load(self, model_name: str) -> SeedVR2Model:
        return self._models.get(model_name)

    def _restore(self, restore, model_name: str, pixels: np.ndarray, target: Tuple[int, int], seed: int,
                 should_stop) -> np.ndarray:
        options = RestoreOptions(processing_resolution(target), seed, self._settings.seedvr2_color_fix, self._tiling)
        return restore(self._load(model_name), pixels, target, options, should_stop)


def seedvr2_options(settings: Settings) -> Dict[str, Any]:
    return {
        **replica_count(settings.seedvr2_replicas, settings.seedvr2_autoscaling),
        "ray_actor_options": {"num_cpus": settings.seedvr2_num_cpus, "num_gpus": settings.seedvr2_num_gpus},
    }
