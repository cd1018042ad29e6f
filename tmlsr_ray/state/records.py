"""A task's full record as stored, and its public view."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional

from pydantic import BaseModel, Field

from tmlsr_ray.protocol import Stage, StageName, StageStatus, TaskOutput, TaskStatus, TaskView
from tmlsr_ray.urls import without_credentials

# the params that hold URLs a user may have put credentials in
URL_PARAMS = ("url", "callback_url")


def iso_utc(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_task_id() -> str:
    return uuid.uuid4().hex


def shown_params(params: Dict[str, Any]) -> Dict[str, Any]:
    """A task's params as its views show them (to anyone who can read the task, the dashboard and
    the webhook receiver): its URLs without the credentials they carry."""
    return {**params, **{name: without_credentials(params[name]) for name in URL_PARAMS
                         if isinstance(params.get(name), str)}}


def request_fingerprint(request: Dict[str, Any]) -> str:
    """What a retried request with the same idempotency key must match."""
    return hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()


class TaskRecord(BaseModel):
    """What the state actor keeps (and persists) per task; a superset of :class:`TaskView`."""

    task_id: str = Field(default_factory=new_task_id)
    status: TaskStatus = TaskStatus.pending
    created_at: float = Field(default_factory=time.time)
    updated_at: float = Field(default_factory=time.time)
    params: Dict[str, Any]
    stages: List[Stage] = Field(
        default_factory=lambda: [Stage(name=name) for name in StageName]
    )
    output: Optional[TaskOutput] = None
    error: Optional[str] = None
    started_at: Optional[float] = None
    heartbeat_at: Optional[float] = None
    cancel_requested: bool = False
    attempts: int = 0  # runs started; a run whose runner vanished is re-queued up to max_attempts
    runner: Optional[str] = None  # actor name of the runner replica of this run
    output_key: Optional[str] = None  # where storage keeps the output (its location), for retention
    # where runs stored, or began to store, an output: what the task ends without is removed then
    # (by a run that died after its upload, or a key of another UTC day), as no other record names it
    output_locations: List[str] = Field(default_factory=list)
    idempotency_key: Optional[str] = None
    request_fingerprint: Optional[str] = None  # of the params as submitted, for idempotent retries
    revision: int = 0  # bumped by every saved change: the id of the task's events, persisted so a resume works
    deadline_at: Optional[float] = None  # unix time by which it must have finished (params.deadline_s)
    stage_started_at: Optional[float] = None  # when the running stage began: a cancel gives it its duration

    def stage(self, name: StageName) -> Stage:
        return next(stage for stage in self.stages if stage.name == name)

    def close_open_stages(self, status: StageStatus) -> None:
        """When a task ends early, stages that never ran or were cut short say so (and how long
        the one cut short ran)."""
        for stage in self.stages:
            if stage.status == StageStatus.running:
                stage.status = status
                stage.detail = None
                if self.stage_started_at is not None:
                    stage.duration = round(time.time() - self.stage_started_at, 3)
            elif stage.status == StageStatus.pending:
                stage.status = StageStatus.skipped

    def to_view(self) -> TaskView:
        return TaskView(
            task_id=self.task_id,
            status=self.status,
            created_at=iso_utc(self.created_at),
            updated_at=iso_utc(self.updated_at),
            params=shown_params(self.params),
            stages=self.stages,
            output=self.output,
            error=self.error,
        )


END_EVENTS = ("completed", "failed", "canceled")


def wants_webhook(params: Dict[str, Any], event: str) -> bool:
    """Whether a task's ``callback_url`` takes ``event`` (``task.completed``, …): those of its
    ``callback_events``, by default the end events; ``callback_progress`` adds progress."""
    if not params.get("callback_url"):
        return False
    chosen = set(params.get("callback_events") or END_EVENTS)
    if params.get("callback_progress"):
        chosen.add("progress")
    return event.removeprefix("task.") in chosen
