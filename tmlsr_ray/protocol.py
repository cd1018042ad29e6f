"""The API schema: every request and response body of the REST API, as pydantic models.

Routes (``tmlsr_ray.serve.ingress``) and Python handle callers share these models.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, Dict, List, Literal, Optional, Tuple

from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, field_validator


class TaskType(str, Enum):
    video = "video"
    image = "image"


class TaskStatus(str, Enum):
    pending = "pending"
    processing = "processing"
    completed = "completed"
    failed = "failed"
    canceled = "canceled"

    @property
    def finished(self) -> bool:
        return self in (TaskStatus.completed, TaskStatus.failed, TaskStatus.canceled)


class StageName(str, Enum):
    download = "download"
    process = "process"
    upload = "upload"


class StageStatus(str, Enum):
    pending = "pending"
    running = "running"
    success = "success"
    failed = "failed"
    canceled = "canceled"
    skipped = "skipped"


class TaskRequest(BaseModel):
    """Body of ``POST /tasks``."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(..., min_length=1, description="HTTP(S) or OSS URL of the input file.")
    type: TaskType = Field(TaskType.video, description="`video` or `image`.")
    model: Optional[str] = Field(
        None, description="Model file name in the weights directory; default realesr-animevideov3.pth."
    )
    outscale: Optional[PositiveFloat] = Field(
        None, description="Scale after super-resolution; default the model's native scale."
    )
    output_magnification: Optional[PositiveFloat] = Field(
        None, description="Final size relative to the original; overrides outscale."
    )
    output_dims: Optional[Tuple[PositiveInt, PositiveInt]] = Field(
        None, description="Exact output [width, height]; overrides outscale and output_magnification."
    )
    resolution: Optional[PositiveInt] = Field(
        None, description="Target output height; only for SeedVR2 models, overrides outscale, "
        "output_magnification and output_dims (the width follows the input's aspect ratio)."
    )
    seed: Optional[int] = Field(
        None, ge=0, lt=2**63,
        description="SeedVR2 noise seed (same seed, same input → same output); default the service's.")
    hdr: Literal["keep", "sdr"] = Field(
        "keep", description="HDR video (HLG or PQ): `keep` it HDR (10-bit, same tags and mastering "
        "metadata) or tone-map it to `sdr` (BT.709, 8-bit). SDR inputs are unaffected.")
    callback_url: Optional[str] = Field(
        None, description="http(s) URL that receives a JSON POST when the task ends (the task as GET "
        "/tasks/{id} shows it, plus 'event'), signed in X-TMLSR-Signature when a webhook secret is set.")
    callback_progress: bool = Field(
        False, description="Also POST progress events (task.progress) to callback_url while processing.")

    @field_validator("callback_url")
    @classmethod
    def _http_callback(cls, url: Optional[str]) -> Optional[str]:
        if url is not None:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError("must be an http(s):// URL with a host")
        return url

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https", "oss") or not parts.netloc:
            raise ValueError("must be an http(s):// or oss:// URL with a host")
        return url


class TaskCreated(BaseModel):
    status: Literal["ok"] = "ok"
    task_id: str


class Stage(BaseModel):
    name: StageName
    status: StageStatus = StageStatus.pending
    duration: Optional[float] = Field(None, description="Seconds spent in the stage.")
    detail: Optional[Dict[str, Any]] = Field(None, description="Progress of a running stage.")


class TaskOutput(BaseModel):
    url: Optional[str] = None
    metadata: Dict[str, Any] = Field(default_factory=dict)
    expired: bool = Field(False, description="The output was removed by retention; url is then null.")


class TaskView(BaseModel):
    """Body of ``GET /tasks/{task_id}``."""

    task_id: str
    status: TaskStatus
    created_at: str = Field(..., description="ISO-8601 UTC, e.g. 2023-10-27T10:00:00Z")
    updated_at: str
    params: Dict[str, Any]
    stages: List[Stage]
    output: Optional[TaskOutput] = None
    error: Optional[str] = None

    def with_output_base(self, base: Optional[str]) -> "TaskView":
        """This view with a service-relative output link (local storage) made absolute under
        ``base``; a copy when it changes, so the original (maybe a stored record's) stays as is."""
        if not (base and self.output and self.output.url and self.output.url.startswith("/")):
            return self
        view = self.model_copy(deep=True)
        view.output.url = base.rstrip("/") + view.output.url
        return view


class CancelResult(BaseModel):
    status: Literal["canceled"] = "canceled"


class SystemStats(BaseModel):
    max_workers: int
    active_workers: int
    queue_size: int


class MonitorStats(BaseModel):
    system: SystemStats
    stats: Dict[TaskStatus, int]
    tasks: List[TaskView]


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class ErrorBody(BaseModel):
    """Every 4xx answer: ``error`` is the readable reason (``detail`` repeats it, or lists the
    validation errors for a 422); some carry more fields (``task_id`` for a 409 key conflict,
    ``task_status`` for a 409 cancel)."""

    status: Literal["error"] = "error"
    error: str
    detail: Any = None
