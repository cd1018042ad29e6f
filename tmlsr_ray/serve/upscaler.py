"""``Upscaler``: replicas that hold loaded models and upscale images and whole video segments."""

from __future__ import annotations

import asyncio
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, AsyncIterator, Dict, List, Optional, Tuple

import numpy as np
import ray
import torch
from ray import serve

from tmlsr_ray.config import Settings
from tmlsr_ray.models.base import LoadOptions
from tmlsr_ray.models.registry import ModelCache, ModelCatalog, load_model, resolve_model_path
from tmlsr_ray.pipeline.render import Rendered, SegmentJob, render_segment
from tmlsr_ray.pipeline.upscale import Tiling, takes_planes, upscale_frames, upscale_image
from tmlsr_ray.serve.fanout import iterate_in_thread
from tmlsr_ray.serve.heap import IdleRelease
from tmlsr_ray.serve.metrics import ModelMetrics
from tmlsr_ray.serve.state import StateClient


class ModelThread:
    """Where a model replica runs its models: one run at a time, off the event loop (concurrent
    runs would only fight over the cores or GPU memory; queued requests wait here, cheaply)."""

    def __init__(self, settings: Settings, name: str):
        # Ray caps OMP threads at the replica's CPU share (1 by default); on a CPU-only machine
        # the model should use the cores, but for one left to the HTTP proxy and the ingress
        # (with every core taken, GET /tasks waited behind the model).
        torch.set_num_threads(settings.model_threads(available_cores()))
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    async def run(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def call(self, fn, *args):
        """From another thread (a segment's renderer): runs ``fn`` here and waits for it."""
        return self._executor.submit(fn, *args).result()

    async def run_stoppable(self, fn, *args):
        """``fn(*args, should_stop)``; a canceled request makes ``should_stop()`` true, so the run
        ends at its next check (a tile, a stage) and frees the replica."""
        stop = threading.Event()
        try:
            return await self.run(fn, *args, stop.is_set)
        except asyncio.CancelledError:
            stop.set()
            raise


def available_cores() -> int:
    """The cores this process may run on (a container's or a taskset's share, not the machine's)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class ModelHolder:
    """The models a replica holds: found by name, recognised by contents, loaded once, the last
    ``capacity`` kept; the state actor hears which (GET /models shows them as loaded)."""

    def __init__(self, settings: Settings, capacity: int, options: LoadOptions):
        self._weights_dir = settings.weights_dir
        self._catalog = ModelCatalog(settings.weights_dir)
        self._options = options
        self._cache = ModelCache(capacity, ModelMetrics().timed(self._load_file), on_change=self._report)
        self._state = StateClient(settings)

    def get(self, model_name: str, denoise: Optional[float] = None):
        return self._cache.get(resolve_model_path(self._weights_dir, model_name), denoise)

    def _load_file(self, path: Path, denoise: Optional[float]):
        options = self._options if denoise is None else replace(self._options, denoise=denoise)
        return load_model(path, self._catalog.info(path.name), options)

    def report(self) -> None:
        self._report(self._cache.names())

    def _report(self, names: List[str]) -> None:
        try:  # fire and forget: a restarting state actor hears it at the next health check
            self._state.tell("report_models", serve.get_replica_context().replica_id.unique_id, names)
        except Exception:
            pass


def load_options(settings: Settings, node_cpus: Optional[float] = None) -> LoadOptions:
    """How the Upscaler loads its models: ``model_dtype`` auto = each model's fastest safe type;
    ``node_cpus``: Ray's CPUs of the replica's machine (None: unknown)."""
    return LoadOptions(settings.device, settings.model_dtype, settings.torch_compile,
                       replicas_per_host=settings.upscaler_host_sharers(node_cpus),
                       gpu_share=settings.upscaler_gpu_share)


def node_cpus() -> Optional[float]:
    """Ray's CPUs of the machine this process runs on, by which it places replicas there."""
    here = ray.get_runtime_context().get_node_id()
    return next((node["Resources"].get("CPU") for node in ray.nodes() if node["NodeID"] == here), None)


@serve.deployment(max_ongoing_requests=4)
class Upscaler:
    def __init__(self, settings: Settings):
        self._settings = settings
        self._thread = ModelThread(settings, "upscale")
        self._models = ModelHolder(settings, settings.max_cached_models, load_options(settings, node_cpus()))
        self._tiling = Tiling(settings.tile_size, settings.tile_pad, settings.tile_min_pixels)
        self._idle = IdleRelease()

    def check_health(self) -> None:
        self._models.report()

    async def describe_model(self, model_name: str, denoise: Optional[float] = None) -> Dict[str, Any]:
        """``denoise``: a denoise strength, for a model with a weak-denoise twin (see realesrgan)."""
        model = await self._thread.run(self._load, model_name, denoise)
        described = {"model": model.name, "model_scale": model.scale, "architecture": model.architecture,
                     "device": model.device, "dtype": model.dtype}
        return described if denoise is None else {**described, "denoise_strength": denoise}

    async def upscale_image(self, model_name: str, image: np.ndarray, target: Tuple[int, int],
                            denoise: Optional[float] = None) -> np.ndarray:
        with self._idle.working():
            return await self._thread.run_stoppable(self._upscale, model_name, denoise, image, target)

    async def render_segment(self, model_name: str, job: SegmentJob, data: bytes) -> AsyncIterator[Rendered]:
        """A segment's packets in, its encoded piece out (streamed: frame counts, then the piece)."""
        planes_in = await self._thread.run(self._takes_planes, model_name, job.denoise, job.info.height,
                                           job.info.width)
        job = replace(job, planes_in=planes_in)

        def upscale(batch, stop):
            return self._thread.call(self._upscale_frames, model_name, job.denoise, batch.frames, job.target,
                                     stop.is_set, job.yuv420)
        with self._idle.working():
            async for item in stream_segment(job, data, upscale):
                yield item

    def _load(self, model_name: str, denoise: Optional[float] = None):
        return self._models.get(model_name, denoise)

    def _takes_planes(self, model_name: str, denoise: Optional[float], height: int, width: int) -> bool:
        return takes_planes(self._load(model_name, denoise), height, width)

    def _upscale(self, model_name: str, denoise: Optional[float], image: np.ndarray, target,
                 should_stop) -> np.ndarray:
        return upscale_image(self._load(model_name, denoise), image, target, self._tiling, should_stop)

    def _upscale_frames(self, model_name: str, denoise: Optional[float], frames: np.ndarray, target, should_stop,
                        yuv) -> np.ndarray:
        return upscale_frames(self._load(model_name, denoise), frames, target, self._tiling, should_stop, yuv)


async def stream_segment(job: SegmentJob, data: bytes, upscale) -> AsyncIterator[Rendered]:
    """Runs :func:`render_segment` in a thread of its own (the model work goes to the replica's
    model thread, so one segment's decode and encode overlap another's model work); a canceled
    request stops it at its next batch."""
    stop = threading.Event()
    async for item in iterate_in_thread(lambda: render_segment(job, data, lambda b: upscale(b, stop), stop),
                                        maxsize=2, stop=stop):
        yield item


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
