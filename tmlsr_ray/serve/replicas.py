"""The kinds of model replicas, each a deployment with its own settings: built in a loop by
``app.py``; the runner picks the kind a model's family declares (``ModelInfo.replica_kind``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Tuple

from ray.serve import Deployment

from tmlsr_ray.config import Settings
from tmlsr_ray.serve.seedvr2 import SeedVR2Upscaler, seedvr2_options
from tmlsr_ray.serve.upscaler import Upscaler, upscaler_options


@dataclass(frozen=True)
class ReplicaKind:
    name: str
    deployment: Deployment
    options: Callable[[Settings], Dict[str, Any]]
    parallelism: Callable[[Settings], int]  # replicas running (0: the kind is off)
    num_cpus: Callable[[Settings], float]  # CPU share per replica (its segment encoder's threads)
    batch: Callable[[Settings], Tuple[int, int]]  # frames per model call in a segment, overlap between calls

    def bind(self, settings: Settings):
        return self.deployment.options(**self.options(settings)).bind(settings)


REPLICA_KINDS: Tuple[ReplicaKind, ...] = (
    ReplicaKind("upscaler", Upscaler, upscaler_options, lambda s: s.upscaler_parallelism,
                lambda s: s.upscaler_num_cpus, lambda s: (s.video_batch_frames, 0)),
    ReplicaKind("seedvr2", SeedVR2Upscaler, seedvr2_options, lambda s: s.seedvr2_parallelism,
                lambda s: s.seedvr2_num_cpus, lambda s: (s.seedvr2_batch_frames, s.seedvr2_temporal_overlap)),
)
KIND_BY_NAME = {kind.name: kind for kind in REPLICA_KINDS}
