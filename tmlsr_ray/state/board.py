"""Task records, their life cycle and the worker slots, in one asyncio object (no Ray here).

The Ray actor in ``tmlsr_ray.serve.state`` is a thin shell around a :class:`TaskBoard`.
Invariants:
- at most ``max_workers`` tasks are ``processing``; runners wait in :meth:`acquire`, first come
  first served by task creation time;
- a finished task never changes again (cancel after completion is refused);
- every change is saved to the store before the call returns, and bumps the record's
  ``revision``, which :meth:`TaskBoard.wait_change` callers (event streams) wait on.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

from tmlsr_ray.protocol import (
    MonitorStats,
    Stage,
    StageName,
    StageStatus,
    SystemStats,
    TaskOutput,
    TaskStatus,
    TaskView,
)
from tmlsr_ray.state.records import TaskRecord, request_fingerprint, wants_webhook
from tmlsr_ray.state.store import Delivery, TaskStore, monitor_stats

RUNNER_LOST_ERROR = (
    "the task runner stopped responding (no heartbeat for {seconds:.0f} s) on attempt {attempts}, "
    "the last allowed; the task can be submitted again"
)
DEADLINE_ERROR = "canceled: deadline of {seconds:g} s passed"
# params, task id, idempotency key, and the fingerprint a retry with the key is compared by (None:
# of the params; the ingress gives that of the request as sent, before the model's defaults)
Admission = Tuple[Dict[str, Any], Optional[str], Optional[str], Optional[str]]
Admitted = Tuple[Optional[str], str]  # task id, outcome


class TaskBoard:
    """Memory holds the live tasks (pending, processing) and the ``finished_cache`` most recently
    used finished ones; the store has them all, so memory stays bounded however many tasks ran."""

    def __init__(self, db_path: Path, max_workers: int, recent_limit: int = 50,
                 max_pending: Optional[int] = None, max_attempts: int = 1, finished_cache: int = 1000,
                 webhook_base_url: Optional[str] = None):
        self._store = TaskStore(db_path)
        self._webhook_base_url = webhook_base_url  # output links in webhook bodies
        self.outbox_changed = asyncio.Event()  # set when a delivery is owed
        self.strays_changed = asyncio.Event()  # set when a task ended leaving outputs to remove
        self._max_workers = max_workers
        self._recent_limit = recent_limit
        self._live: Dict[str, TaskRecord] = {}
        self._finished: "OrderedDict[str, TaskRecord]" = OrderedDict()
        self._finished_cache = finished_cache
        self._changed = asyncio.Condition()
        self._waiting: Dict[str, int] = {}  # pending task → ticket of the dispatch waiting for it
        self._watchers: Dict[str, asyncio.Event] = {}  # live task → set at its next change
        self._tickets = itertools.count(1)
        self._schedule_cache: Optional[Tuple[int, Optional[str]]] = None
        self._max_pending = max_pending
        self._max_attempts = max_attempts
        for record in self._store.load_live():
            self._live[record.task_id] = record

    # -- creation and reading ---------------------------------------------------------------

    def create(self, params: Dict[str, Any], task_id: Optional[str] = None) -> str:
        """Creates a pending task; creating an id that exists already is a no-op (retry-safe)."""
        return self.admit(params, task_id)[0]

    def admit(self, params: Dict[str, Any], task_id: Optional[str] = None,
              idempotency_key: Optional[str] = None, fingerprint: Optional[str] = None) -> Admitted:
        """Creates a pending task unless the queue is full; returns (task_id, outcome) with outcome
        ``created``, ``existing`` (same id, or same idempotency key and request), ``queue_full``
        or ``key_conflict`` (the key was used for another request)."""
        return self.admit_many([(params, task_id, idempotency_key, fingerprint)])[0]

    def admit_many(self, admissions: Sequence[Admission]) -> List[Admitted]:
        """:meth:`admit` for several tasks at once, all or none: when the pending queue cannot take
        every new one, none is created and each of them answers ``(None, "queue_full")``."""
        outcomes: List[Admitted] = []
        new: Dict[str, TaskRecord] = {}
        for params, task_id, key, fingerprint in admissions:
            fingerprint = fingerprint or request_fingerprint(params)
            existing = self._by_idempotency_key(key, new)
            if existing is not None:
                same = existing.request_fingerprint == fingerprint
                outcomes.append((existing.task_id, "existing" if same else "key_conflict"))
            elif task_id is not None and (task_id in new or self._record(task_id) is not None):
                outcomes.append((task_id, "existing"))
            else:
                record = _new_record(params, task_id, key, fingerprint)
                new[record.task_id] = record
                outcomes.append((record.task_id, "created"))
        if self._max_pending is not None and self._count(TaskStatus.pending) + len(new) > self._max_pending:
            return [(None, "queue_full") if outcome == "created" else (tid, outcome) for tid, outcome in outcomes]
        self._live.update(new)
        self._store.save_many(list(new.values()))
        return outcomes

    def _by_idempotency_key(self, key: Optional[str], admitting: Dict[str, TaskRecord]) -> Optional[TaskRecord]:
        if not key:
            return None
        same_call = next((record for record in admitting.values() if record.idempotency_key == key), None)
        return same_call or self._store.find_by_idempotency_key(key)

    def _count(self, status: TaskStatus) -> int:
        return sum(1 for r in self._live.values() if r.status == status)

    def _record(self, task_id: str) -> Optional[TaskRecord]:
        """Live tasks from memory; finished ones from the cache, else the store (then cached)."""
        record = self._live.get(task_id) or self._finished.get(task_id)
        if record is None:
            record = self._store.load(task_id)
            if record is not None:
                self._remember_finished(record)
        elif task_id in self._finished:
            self._finished.move_to_end(task_id)
        return record

    def _remember_finished(self, record: TaskRecord) -> None:
        self._live.pop(record.task_id, None)
        self._finished[record.task_id] = record
        self._finished.move_to_end(record.task_id)
        while len(self._finished) > self._finished_cache:
            self._finished.popitem(last=False)

    def get(self, task_id: str) -> Optional[TaskView]:
        record = self._record(task_id)
        return record.to_view() if record else None

    def params(self, task_id: str) -> Optional[Dict[str, Any]]:
        """The task's params as sent, credentials in its URLs included (its view hides them): what
        a run works from."""
        record = self._record(task_id)
        return dict(record.params) if record else None

    async def wait_change(self, task_id: str, after: Optional[int] = None,
                          timeout_s: float = 0.0) -> Optional[Tuple[int, TaskView]]:
        """The task's (revision, view) once its revision is not ``after``: at once when it differs
        already, when ``after`` is None, or when the task is finished (it changes no more); else at
        its next change or, unchanged, after ``timeout_s``. ``None`` for an unknown task. Event
        streams and ``Prefer: wait`` long-poll this instead of polling the store."""
        record = self._record(task_id)
        if record is not None and record.revision == after and not record.status.finished:
            changed = self._watchers.setdefault(task_id, asyncio.Event())
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(changed.wait(), timeout_s)
            record = self._record(task_id)
        return (record.revision, record.to_view()) if record else None

    def status(self, task_id: str) -> Optional[TaskStatus]:
        record = self._record(task_id)
        return record.status if record else None

    def pending_ids(self) -> List[str]:
        return [r.task_id for r in self._ordered() if r.status == TaskStatus.pending]

    def unclaimed(self, changed_before: float) -> List[str]:
        """Pending tasks no runner waits for, unchanged since ``changed_before``: the call that
        should run them was lost (a dispatch routed to a replica that had just died)."""
        return [r.task_id for r in self._ordered()
                if r.status == TaskStatus.pending and r.task_id not in self._waiting and r.updated_at < changed_before]

    def totals(self) -> Tuple[SystemStats, Dict[TaskStatus, int]]:
        """Worker slots and tasks by status; counts come from the store's index."""
        system = SystemStats(max_workers=self._max_workers, active_workers=self._count(TaskStatus.processing),
                             queue_size=self._count(TaskStatus.pending))
        return system, self._store.counts()

    def monitor(self) -> MonitorStats:
        """Totals and the recent tasks, from the store's indexes: cheap with any number of records."""
        return monitor_stats(self._store, self._max_workers, self._recent_limit)

    def memory_footprint(self) -> Dict[str, int]:
        """Records held in memory (the rest are only in the store)."""
        return {"live": len(self._live), "finished_cached": len(self._finished)}

    # -- scheduling -------------------------------------------------------------------------

    async def acquire(self, task_id: str, runner: Optional[str] = None) -> int:
        """Waits for a worker slot. Returns the attempt number (1, 2, …) when the task now
        processes, 0 if it should not run. The runner passes the attempt back with every update, so
        a runner that was given up on (and the task re-queued) cannot touch the new attempt.

        A later dispatch of a pending task supersedes the one waiting (which returns 0): the caller
        of the first may be gone (its application was restarted), and exactly one may run it.
        """
        record = self._live.get(task_id)
        if record is None or record.status != TaskStatus.pending:
            return 0
        ticket = next(self._tickets)
        self._waiting[task_id] = ticket
        self._schedule_cache = None
        try:
            async with self._changed:
                self._changed.notify_all()  # a superseded waiter leaves now
                await self._changed.wait_for(
                    lambda: self._waiting.get(task_id) != ticket or self._may_start(task_id))
                if self._waiting.get(task_id) != ticket:
                    return 0
                del self._waiting[task_id]
                self._schedule_cache = None
                # The head of the queue changes: the next waiter may fit in a slot still free.
                self._changed.notify_all()
                if record.status != TaskStatus.pending:
                    return 0
                record.status = TaskStatus.processing
                record.started_at = record.heartbeat_at = time.time()
                record.attempts += 1
                record.runner = runner
                self._save(record)
                return record.attempts
        finally:
            if self._waiting.get(task_id) == ticket:
                del self._waiting[task_id]
                self._schedule_cache = None

    def _may_start(self, task_id: str) -> bool:
        record = self._live.get(task_id)  # not live: canceled meanwhile, the waiter leaves
        if record is None or record.status != TaskStatus.pending:
            return True
        processing, head = self._schedule()
        return processing < self._max_workers and head == task_id

    def _schedule(self) -> Tuple[int, Optional[str]]:
        """(tasks processing, oldest waiting task), computed once per change: every waiter asks
        after each change, so recomputing per waiter would cost pending² per change."""
        if self._schedule_cache is None:
            processing = self._count(TaskStatus.processing)
            # A waiter whose task was canceled stays listed until it wakes: skip it.
            waiting = [tid for tid in self._waiting
                       if (record := self._live.get(tid)) is not None and record.status == TaskStatus.pending]
            head = min(waiting, key=lambda tid: self._live[tid].created_at) if waiting else None
            self._schedule_cache = (processing, head)
        return self._schedule_cache

    # -- progress ---------------------------------------------------------------------------

    def _owned(self, task_id: str, attempt: Optional[int]) -> Optional[TaskRecord]:
        """The record if it is processing (in ``attempt``, when one is given), else ``None``."""
        record = self._live.get(task_id)
        if record is None or record.status != TaskStatus.processing:
            return None
        if attempt is not None and record.attempts != attempt:
            return None
        return record

    def heartbeat(self, task_id: str, attempt: Optional[int] = None) -> bool:
        """Returns ``False`` when the task should stop (canceled, given up on, unknown)."""
        record = self._owned(task_id, attempt)
        if record is None:
            return False
        record.heartbeat_at = time.time()
        return True

    async def set_stage(
        self,
        task_id: str,
        name: StageName,
        status: StageStatus,
        duration: Optional[float] = None,
        detail: Optional[Dict[str, Any]] = None,
        attempt: Optional[int] = None,
    ) -> bool:
        record = self._owned(task_id, attempt)
        if record is None:
            return False
        stage = record.stage(name)
        if status == StageStatus.running and stage.status != StageStatus.running:
            record.stage_started_at = time.time()
        stage.status, stage.duration, stage.detail = status, duration, detail
        record.heartbeat_at = time.time()
        await self._save_and_notify(record)
        return True

    async def update_params(self, task_id: str, values: Dict[str, Any], attempt: Optional[int] = None) -> None:
        record = self._owned(task_id, attempt)
        if record is not None:
            record.params = {**record.params, **values}
            await self._save_and_notify(record)

    def note_output(self, task_id: str, location: str, attempt: Optional[int] = None) -> bool:
        """The run of ``attempt`` is about to store the task's output at ``location``; returns
        ``False`` when the run no longer owns the task (it must not store then). Recorded before
        the upload, so whatever ends the task (another attempt included) removes an output it
        ends without, even one whose run died before it could say it stored it."""
        record = self._owned(task_id, attempt)
        if record is None:
            return False
        if location not in record.output_locations:
            record.output_locations.append(location)
            self._store.save(record)  # nothing a reader sees changed: no revision, no event
        return True

    # -- endings ----------------------------------------------------------------------------

    async def complete(self, task_id: str, output: TaskOutput, output_key: Optional[str] = None,
                       attempt: Optional[int] = None) -> bool:
        record = self._owned(task_id, attempt)
        if record is None:
            self.output_left(task_id, output_key)
            return False
        record.status, record.output, record.output_key = TaskStatus.completed, output, output_key
        await self._save_and_notify(record, "task.completed")
        return True

    def output_left(self, task_id: str, location: Optional[str]) -> None:
        """A run that stored, or may have stored, its output at ``location`` ended after its task
        did (canceled during the upload, or between the upload and its record): the output is
        removed, unless it is the task's own (a completion replayed to a restarted state actor)."""
        record = self._record(task_id)
        if location and record is not None and record.status.finished and location != record.output_key:
            self._store.add_strays(task_id, [location])
            self.strays_changed.set()

    async def fail(self, task_id: str, error: str, attempt: Optional[int] = None) -> bool:
        record = self._record(task_id) if attempt is None else self._owned(task_id, attempt)
        if record is None or record.status.finished:
            return False
        record.status, record.error = TaskStatus.failed, error
        record.close_open_stages(StageStatus.failed)
        await self._save_and_notify(record, "task.failed")
        return True

    async def cancel(self, task_id: str, reason: Optional[str] = None) -> Tuple[bool, Optional[TaskStatus]]:
        """Cancel a pending or processing task (``reason``, if any, becomes its ``error``); returns
        (canceled, status before the call)."""
        record = self._record(task_id)
        if record is None:
            return False, None
        before = record.status
        if before.finished:
            return False, before
        record.status, record.cancel_requested, record.error = TaskStatus.canceled, True, reason
        record.close_open_stages(StageStatus.canceled)
        await self._save_and_notify(record, "task.canceled")
        return True, before

    async def wait_released(self, task_id: str, attempt: int) -> Optional[TaskStatus]:
        """Blocks until ``attempt`` no longer owns the task: it finished (a cancel, say) or was
        given up on and re-queued. Runners use it to stop at once."""
        async with self._changed:
            await self._changed.wait_for(lambda: self._owned(task_id, attempt) is None)
        return self.status(task_id)

    # -- recovery ---------------------------------------------------------------------------

    def grant_grace_after_restart(self) -> None:
        """After a reload, runners get a full heartbeat period to show they are still alive
        (heartbeats are not persisted, so the stored times are stale)."""
        now = time.time()
        for record in self._live.values():
            if record.status == TaskStatus.processing:
                record.heartbeat_at = now

    def runners(self) -> Set[str]:
        """The runner replicas of the processing tasks (those that said who they are)."""
        return {r.runner for r in self._live.values() if r.status == TaskStatus.processing and r.runner}

    async def sweep(self, heartbeat_timeout_s: float,
                    gone: Set[str] = frozenset()) -> Tuple[List[str], List[str]]:
        """Processing tasks whose runner went silent, or is known to be ``gone``, are re-queued
        (their input is still at its URL) while they have attempts left, else failed; returns
        (re-queued ids, failed ids)."""
        now = time.time()
        lost = [
            r
            for r in self._live.values()
            if r.status == TaskStatus.processing
            and (r.runner in gone or now - (r.heartbeat_at or r.started_at or r.updated_at) > heartbeat_timeout_s)
        ]
        requeued, failed = [], []
        for record in lost:
            if record.attempts < self._max_attempts:
                record.status, record.started_at, record.heartbeat_at = TaskStatus.pending, None, None
                record.runner = None
                record.stages = [Stage(name=name) for name in StageName]
                requeued.append(record.task_id)
                await self._save_and_notify(record)
            else:
                failed.append(record.task_id)
                await self.fail(record.task_id, RUNNER_LOST_ERROR.format(
                    seconds=heartbeat_timeout_s, attempts=record.attempts))
        return requeued, failed

    async def cancel_overdue(self, now: float) -> List[str]:
        """Cancels the live tasks whose deadline is past, saying so in ``error``; returns their ids."""
        overdue = [r for r in self._live.values() if r.deadline_at is not None and r.deadline_at <= now]
        canceled = []
        for record in overdue:
            reason = DEADLINE_ERROR.format(seconds=record.params["deadline_s"])
            if (await self.cancel(record.task_id, reason))[0]:
                canceled.append(record.task_id)
        return canceled

    def outputs_due(self, older_than: float) -> List[Tuple[str, str]]:
        """(task_id, key) of the stored outputs of tasks finished before ``older_than``: the
        caller deletes each, then marks it :meth:`expired` (one it could not delete stays due)."""
        due = []
        for stored in self._store.with_output_before(older_than):
            record = self._finished.get(stored.task_id, stored)
            if record.output is not None and not record.output.expired and record.output_key:
                due.append((record.task_id, record.output_key))
        return due

    def stray_outputs(self, settle_s: float) -> List[Tuple[str, str]]:
        """(task_id, location) of outputs stored for tasks that ended without them: the caller
        deletes each, then marks it :meth:`stray_deleted` (one it could not delete stays listed).
        Each is listed at once, and again once ``settle_s`` passed since its first delete: an
        upload cut off as the task ended may land after that delete."""
        return self._store.stray_outputs(time.time() - settle_s)

    def stray_deleted(self, location: str, tried_at: float, settle_s: float) -> None:
        """Its delete began at ``tried_at`` (a run that reports its upload after that is heard)."""
        self._store.stray_deleted(location, tried_at, time.time() - settle_s)

    def expired(self, task_id: str) -> None:
        """The task's output was deleted: its view says so and holds no URL."""
        record = self._finished.get(task_id) or self._store.load(task_id)
        if record is None or record.output is None:
            return
        record.output.expired, record.output.url = True, None
        record.output_key = None
        self._store.save(record)  # updated_at stays: it is the time the task finished

    def drop_records(self, older_than: float) -> int:
        """Removes finished task records last changed before ``older_than``."""
        old = self._store.finished_before(older_than)
        for task_id in old:
            self._finished.pop(task_id, None)
        self._store.delete(old)
        return len(old)

    # -- webhook outbox ----------------------------------------------------------------------

    def owe_progress(self, task_id: str) -> bool:
        """Owes a progress event when the task takes them and none of its deliveries is owed
        (progress is dropped, never queued, behind a slow receiver); returns whether it did."""
        record = self._live.get(task_id)
        if record is None or not wants_webhook(record.params, "task.progress") or self._store.has_delivery(task_id):
            return False
        self._store.enqueue(self._delivery(record, "task.progress"))
        self.outbox_changed.set()
        return True

    def due_deliveries(self, skip: Sequence[str] = ()) -> List[Delivery]:
        return self._store.due_deliveries(skip)

    def settle(self, delivery: Delivery) -> None:
        """The receiver took it, or refused it for good: it is owed no more."""
        self._store.settle(delivery)

    def _delivery(self, record: TaskRecord, event: str) -> Optional[Delivery]:
        if not wants_webhook(record.params, event):
            return None
        view = record.to_view().with_output_base(self._webhook_base_url)
        body = json.dumps({"event": event, **view.model_dump(mode="json")}).encode()
        return Delivery(record.task_id, event, record.params["callback_url"], body)

    # -- internals --------------------------------------------------------------------------

    def _ordered(self) -> List[TaskRecord]:
        return sorted(self._live.values(), key=lambda r: r.created_at)

    def _save(self, record: TaskRecord, event: Optional[str] = None) -> None:
        """Persists the change and, for an ``event`` its webhook takes, the delivery it owes."""
        self._schedule_cache = None
        record.updated_at = time.time()
        record.revision += 1
        delivery = self._delivery(record, event) if event else None
        strays = _take_strays(record) if record.status.finished else []
        self._store.save(record, delivery, strays)
        if delivery is not None:
            self.outbox_changed.set()
        if strays:
            self.strays_changed.set()
        if record.status.finished:
            self._remember_finished(record)
        changed = self._watchers.pop(record.task_id, None)
        if changed is not None:
            changed.set()

    async def _save_and_notify(self, record: TaskRecord, event: Optional[str] = None) -> None:
        self._save(record, event)
        async with self._changed:
            self._changed.notify_all()


def _take_strays(record: TaskRecord) -> List[str]:
    """The locations runs stored an output at that are not the task's final output: they move
    from the record to the removals due."""
    strays = [location for location in record.output_locations if location != record.output_key]
    record.output_locations = []
    return strays


def _new_record(params: Dict[str, Any], task_id: Optional[str], idempotency_key: Optional[str],
                fingerprint: str) -> TaskRecord:
    record = TaskRecord(params=params, idempotency_key=idempotency_key, request_fingerprint=fingerprint,
                        **({"task_id": task_id} if task_id else {}))
    if params.get("deadline_s"):
        record.deadline_at = record.created_at + params["deadline_s"]
    return record
