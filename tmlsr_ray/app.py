"""The Ray Serve deployment graph of TMLSR-Ray, in one place.

    Ingress ──run_task (fired)──▶ TaskRunner ──segments──▶ Upscaler (Real-ESRGAN, spandrel models; GPU each)
       │                              └──────segments──▶ SeedVR2Upscaler (DiT + VAE, GPU each)
       └──────── records ──────▶ TaskState (named detached actor, SQLite) ◀── progress ──┘

A segment goes out as compressed packets and comes back as an encoded piece; the runner only
plans the cuts and joins the pieces.
"""

from __future__ import annotations

from typing import Any, Mapping

from ray.serve import Application

from tmlsr_ray.config import Settings
from tmlsr_ray.serve.ingress import Ingress
from tmlsr_ray.serve.placement import control_plane_resources
from tmlsr_ray.serve.runner import TaskRunner
from tmlsr_ray.serve.replicas import REPLICA_KINDS

APP_NAME = "tmlsr"


def build_app(args: Mapping[str, Any] | Settings | None = None) -> Application:
    """Application builder for ``serve run`` / ``serve deploy`` (``import_path: tmlsr_ray.app:build_app``).

    ``args`` are validated as :class:`Settings`; ``TMLSR_*`` environment variables override them.
    """
    settings = Settings.load(args)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    replicas = {kind.name: kind.bind(settings) for kind in REPLICA_KINDS if kind.parallelism(settings)}
    runner = TaskRunner.options(
        num_replicas=settings.runner_replicas,
        graceful_shutdown_timeout_s=settings.graceful_shutdown_timeout_s,
        ray_actor_options={"num_cpus": 0, "resources": control_plane_resources(settings)},
    ).bind(settings, replicas)
    return Ingress.options(
        num_replicas=settings.ingress_replicas,
        ray_actor_options={"num_cpus": 0, "resources": control_plane_resources(settings)},
    ).bind(settings, runner)
