"""A task's changes as server-sent events (``GET /tasks/{id}/events``), built on the state actor's
change long-poll: each event is the whole task view, so an event coalesced away (a burst of
progress) or missed while disconnected loses nothing but intermediate states."""

from __future__ import annotations

from typing import AsyncIterator, Awaitable, Callable, Optional, Tuple

from tmlsr_ray.protocol import TaskEventKind, TaskView

Change = Tuple[int, TaskView]  # revision, view
WaitChange = Callable[[int, float], Awaitable[Change]]  # (after revision, timeout) → the next change
HEARTBEAT = ": keep-alive\n\n"


def change_kind(before: TaskView, after: TaskView) -> TaskEventKind:
    """What changed from ``before`` to ``after``, the most telling first."""
    if after.output != before.output:
        return TaskEventKind.output
    if after.error != before.error:
        return TaskEventKind.error
    if after.status != before.status:
        return TaskEventKind.status
    if [(s.status, s.duration) for s in after.stages] != [(s.status, s.duration) for s in before.stages]:
        return TaskEventKind.stage
    if [s.detail for s in after.stages] != [s.detail for s in before.stages]:
        return TaskEventKind.progress
    return TaskEventKind.status


def sse_event(revision: int, kind: TaskEventKind, view: TaskView) -> str:
    return f"id: {revision}\nevent: {kind.value}\ndata: {view.model_dump_json()}\n\n"


async def event_stream(wait_change: WaitChange, current: Change, resumed_from: Optional[int],
                       heartbeat_s: float, present: Callable[[TaskView], TaskView]) -> AsyncIterator[str]:
    """The events from ``current`` on: a ``status`` snapshot first (left out when the client
    resumes at this very revision), one event per change seen, a heartbeat comment when nothing
    changed for ``heartbeat_s``, and ``end`` with the final view. ``present`` makes a view fit to
    send (absolute output links)."""
    revision, view = current
    if revision != resumed_from:
        yield sse_event(revision, TaskEventKind.status, present(view))
    while not view.status.finished:
        next_revision, next_view = await wait_change(revision, heartbeat_s)
        if next_revision == revision:
            yield HEARTBEAT
            continue
        kind = change_kind(view, next_view)
        revision, view = next_revision, next_view
        yield sse_event(revision, kind, present(view))
    yield sse_event(revision, TaskEventKind.end, present(view))
