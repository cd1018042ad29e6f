"""``TaskState``: the named, detached actor that owns task records (a shell around TaskBoard)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import shutil
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, List, Optional, Set, Tuple

import ray
from ray.exceptions import RayActorError

import tmlsr_ray
from tmlsr_ray.config import Settings
from tmlsr_ray.retry import Backoff, RetriesExhausted, retry
from tmlsr_ray.webhooks import WebhookPolicy, deliver
from tmlsr_ray.protocol import MonitorStats, StageName, StageStatus, TaskOutput, TaskStatus, TaskView
from tmlsr_ray.serve.metrics import StateMetrics, status_counts
from tmlsr_ray.serve.placement import control_plane_resources
from tmlsr_ray.state.board import Admission, Admitted, TaskBoard
from tmlsr_ray.state.store import task_db_path
from tmlsr_ray.storage.base import OutputStorage
from tmlsr_ray.storage.factory import make_storage
from tmlsr_ray.urls import without_credentials

STATE_ACTOR_NAME = Settings.model_fields["state_actor_name"].default
STATE_NAMESPACE = "tmlsr"
logger = logging.getLogger("ray.serve")


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1, max_concurrency=10_000)
class TaskState:
    """Every public method is safe to retry: Ray replays calls that were in flight when it died."""

    async def __init__(self, settings: Settings, fingerprint: str = ""):
        self._settings = settings
        self._fingerprint = fingerprint
        self._board = TaskBoard(task_db_path(settings.data_dir), settings.max_workers,
                                settings.recent_tasks_limit, settings.max_pending_tasks, settings.max_attempts,
                                webhook_base_url=settings.public_base_url)
        self._metrics = StateMetrics()
        self._webhooks = WebhookPolicy(
            secret=settings.webhook_secret, attempts=settings.webhook_attempts, backoff_s=settings.webhook_backoff_s,
            timeout_s=settings.webhook_timeout_s,
            addresses=settings.fetch_policy())
        self._progress_sent: Dict[str, float] = {}
        self._runner_app: Optional[str] = None  # learnt from the runners, to hand re-queued tasks back
        self._redispatched: Dict[str, float] = {}  # unclaimed pending tasks handed out again, and when
        self._models_held: Dict[str, Tuple[float, List[str]]] = {}  # replica → (reported at, model names)
        self._storage: Optional[OutputStorage] = None  # made at the first delete (a bad OSS setting fails that)
        self._board.grant_grace_after_restart()
        loop = asyncio.get_running_loop()
        self._background = [loop.create_task(self._sweep_forever()), loop.create_task(self._retain_forever()),
                            loop.create_task(self._enforce_deadlines_forever()), loop.create_task(self._send_outbox_forever()),
                            loop.create_task(self._remove_strays_forever())]

    async def _sweep_forever(self) -> None:
        timeout = self._settings.heartbeat_timeout_s
        while True:
            await asyncio.sleep(max(0.5, min(timeout / 4, self._settings.runner_check_interval_s)))
            try:
                await self._sweep_once(timeout)
            except Exception:  # the sweeper must outlive any one failure, or lost tasks stay lost
                logger.exception("sweep failed; trying again")

    async def _sweep_once(self, timeout: float) -> None:
        requeued, failed = await self._board.sweep(timeout, await self._gone_runners())
        self._export_metrics()
        for task_id in failed:
            self._ended(task_id)
        if failed:
            logger.warning("failed %d task(s) whose runner stopped, out of attempts: %s", len(failed), failed)
        if requeued:
            logger.warning("re-queued %d task(s) whose runner stopped: %s", len(requeued), requeued)
            self._dispatch(requeued)
        self._dispatch_unclaimed(timeout)

    def _dispatch_unclaimed(self, timeout: float) -> None:
        """Hands out again the pending tasks whose dispatch was lost, at most once per ``timeout``
        each (Serve does not retry a call whose replica died; a duplicate that does arrive
        supersedes the waiting one, so exactly one runs)."""
        now = time.time()
        unclaimed = [t for t in self._board.unclaimed(now - timeout) if now - self._redispatched.get(t, 0) > timeout]
        self._redispatched = {t: at for t, at in self._redispatched.items() if now - at <= timeout}
        if unclaimed:
            logger.warning("dispatching again %d pending task(s) no runner waits for: %s", len(unclaimed), unclaimed)
            self._redispatched.update(dict.fromkeys(unclaimed, now))
            self._dispatch(unclaimed)

    async def _gone_runners(self) -> Set[str]:
        runners = self._board.runners()
        if not runners:
            return set()
        try:
            return runners - await asyncio.to_thread(_live_actor_names)
        except Exception:  # the cluster cannot say now: the heartbeats still catch a lost runner
            logger.warning("could not list the live actors", exc_info=True)
            return set()

    async def _enforce_deadlines_forever(self) -> None:
        """Deadlines live in the records, so a task past its deadline while this actor was down
        is canceled on the first round after the restart."""
        while True:
            await asyncio.sleep(self._settings.deadline_check_interval_s)
            try:
                for task_id in await self._board.cancel_overdue(time.time()):
                    self._ended(task_id)
            except Exception:  # a deadline missed once must still be enforced on the next round
                logger.exception("deadline check failed; trying again")

    def _export_metrics(self) -> None:
        try:
            system, counts = self._board.totals()
            self._metrics.update(status_counts(counts), system.queue_size, system.active_workers)
        except Exception:  # metrics must never stop the sweeper
            logger.exception("metrics export failed")

    async def _send_outbox_forever(self) -> None:
        """Sends every owed webhook delivery: a task's one after another (in order), different
        tasks' at once. What is owed is in SQLite, so a restart of this actor resumes sending."""
        sending: Dict[str, asyncio.Task] = {}
        while True:
            self._board.outbox_changed.clear()
            try:
                for delivery in self._board.due_deliveries(skip=list(sending)):
                    sending[delivery.task_id] = asyncio.get_running_loop().create_task(self._send(delivery))
                    sending[delivery.task_id].add_done_callback(
                        lambda _, task_id=delivery.task_id: self._sent(sending, task_id))
            except Exception:  # a failed read of the outbox must not stop the sending for good
                logger.exception("reading the webhook outbox failed; trying again")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._board.outbox_changed.wait(), timeout=1.0)

    async def _send(self, delivery) -> None:
        try:
            await deliver(delivery.url, delivery.event, delivery.body, self._webhooks, delivery.delivery_id)
        except Exception:  # a delivery left unsettled would be sent again at once, without end
            logger.exception("webhook %s of task %s to %s failed unexpectedly; not sent",
                             delivery.event, delivery.task_id, without_credentials(delivery.url))
        self._board.settle(delivery)  # taken, or refused for good (4xx, or every attempt spent)

    def _sent(self, sending: Dict[str, asyncio.Task], task_id: str) -> None:
        sending.pop(task_id, None)
        self._board.outbox_changed.set()  # the task's next delivery may go now

    def _notify_progress(self, task_id: str) -> None:
        now = time.monotonic()
        if now - self._progress_sent.get(task_id, 0.0) >= self._settings.webhook_progress_interval_s:
            if self._board.owe_progress(task_id):
                self._progress_sent[task_id] = now

    def _ended(self, task_id: str) -> None:
        """Its webhook delivery was owed in the transaction that ended it; the metrics count it."""
        self._progress_sent.pop(task_id, None)
        view = self._board.get(task_id)
        if view is not None:
            self._metrics.tasks_finished.inc(tags={"status": view.status.value})

    def _dispatch(self, task_ids: List[str]) -> None:
        from ray import serve

        try:
            self._runner_app = self._runner_app or _runner_app_name()  # looked up once: it blocks this loop
            runner = serve.get_deployment_handle("TaskRunner", app_name=self._runner_app)
        except Exception as exc:  # the application is not deployed now: its next ingress re-dispatches
            logger.warning("no TaskRunner to hand %d re-queued task(s) to (%s); they stay pending",
                           len(task_ids), exc)
            return
        for task_id in task_ids:
            runner.run_task.remote(task_id)

    async def _retain_forever(self) -> None:
        while True:
            try:
                await self.apply_retention()
            except Exception:  # a storage hiccup must not stop retention for good
                logger.exception("retention failed; trying again later")
            await asyncio.sleep(self._settings.retention_interval_s)

    async def apply_retention(self, now: Optional[float] = None) -> Dict[str, int]:
        """Deletes expired outputs (marking their tasks) and drops old records."""
        now = time.time() if now is None else now
        settings, expired, dropped = self._settings, [], 0
        if settings.output_retention_s:
            for task_id, _ in await self._delete_outputs(self._board.outputs_due(now - settings.output_retention_s)):
                self._board.expired(task_id)
                expired.append(task_id)
        if settings.record_retention_s:
            dropped = self._board.drop_records(now - settings.record_retention_s)
        orphans = await asyncio.to_thread(self._remove_orphaned_work)
        return {"outputs_expired": len(expired), "records_dropped": dropped, "work_removed": orphans}

    async def _remove_strays_forever(self) -> None:
        """Outputs stored for tasks that ended without them go as soon as their task ends, and
        are deleted once more a ``retention_interval_s`` later (or tried again, if a delete failed)."""
        while True:
            self._board.strays_changed.clear()
            try:
                await self.remove_stray_outputs()
            except Exception:  # a storage hiccup must not stop the removals for good
                logger.exception("removing stray outputs failed; trying again later")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._board.strays_changed.wait(), self._settings.retention_interval_s)

    async def remove_stray_outputs(self) -> int:
        """Deletes the outputs stored for tasks that ended without them; returns how many."""
        settle_s, started = self._settings.retention_interval_s, time.time()
        removed = await self._delete_outputs(self._board.stray_outputs(settle_s))
        for _, location in removed:
            self._board.stray_deleted(location, started, settle_s)
        return len(removed)

    async def _delete_outputs(self, outputs: List[Tuple[str, str]]) -> List[Tuple[str, str]]:
        """Deletes (task_id, location) pairs from storage; returns those deleted (the others stay
        due, for the next round)."""
        if outputs and self._storage is None:
            self._storage = make_storage(self._settings)
        storage, deleted, failed = self._storage, [], []
        for task_id, location in outputs:
            try:
                await asyncio.to_thread(storage.delete, location)
            except Exception as exc:
                failed.append((task_id, location, exc))
                continue
            deleted.append((task_id, location))
        if failed:  # one line a round: with the store down, one per output would flood the log
            task_id, location, exc = failed[0]
            logger.warning("could not delete %d output(s); trying again later. The first, %s of task %s: %s",
                           len(failed), location, task_id, exc, exc_info=exc)
        return deleted

    def _remove_orphaned_work(self) -> int:
        """Folders of tasks that ended while no runner held them (canceled while re-queued, failed
        by the sweeper): a running task removes its own folder when it ends."""
        removed = 0
        for folder in (self._settings.data_dir / "work").glob("*"):
            view = self._board.get(folder.name)
            if view is None or view.status in (TaskStatus.completed, TaskStatus.failed, TaskStatus.canceled):
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
        return removed

    async def fingerprint(self) -> str:
        """What this actor was built from (code and settings): a deploy of other ones replaces it."""
        return self._fingerprint

    async def node_id(self) -> str:
        """The node whose disk holds the task database (readers elsewhere must ask this actor)."""
        return ray.get_runtime_context().get_node_id()

    async def admit(self, task_id: str, params: Dict[str, Any], idempotency_key: Optional[str] = None,
                    fingerprint: Optional[str] = None) -> Tuple[Optional[str], str]:
        return self._board.admit(params, task_id, idempotency_key, fingerprint)

    async def admit_many(self, admissions: List[Admission]) -> List[Admitted]:
        return self._board.admit_many(admissions)

    async def get(self, task_id: str) -> Optional[TaskView]:
        return self._board.get(task_id)

    async def params(self, task_id: str) -> Optional[Dict[str, Any]]:
        return self._board.params(task_id)

    async def wait_change(self, task_id: str, after: Optional[int] = None,
                          timeout_s: float = 0.0) -> Optional[Tuple[int, TaskView]]:
        return await self._board.wait_change(task_id, after, timeout_s)

    async def pending_ids(self) -> List[str]:
        return self._board.pending_ids()

    async def monitor(self) -> MonitorStats:
        return self._board.monitor()

    async def acquire(self, task_id: str, runner_app: Optional[str] = None, runner: Optional[str] = None) -> int:
        """``runner``: the actor name of the calling replica, so that a run whose replica is gone
        (stopped, killed) is re-queued at once instead of after the heartbeat timeout."""
        if runner_app:
            self._runner_app = runner_app
        return await self._board.acquire(task_id, runner)

    async def heartbeat(self, task_id: str, attempt: Optional[int] = None) -> bool:
        return self._board.heartbeat(task_id, attempt)

    async def set_stage(self, task_id: str, name: StageName, status: StageStatus,
                        duration: Optional[float] = None, detail: Optional[Dict[str, Any]] = None,
                        attempt: Optional[int] = None) -> bool:
        changed = await self._board.set_stage(task_id, name, status, duration, detail, attempt)
        if changed and detail:
            self._notify_progress(task_id)
        return changed

    async def update_params(self, task_id: str, values: Dict[str, Any], attempt: Optional[int] = None) -> None:
        await self._board.update_params(task_id, values, attempt)

    async def note_output(self, task_id: str, location: str, attempt: Optional[int] = None) -> bool:
        return self._board.note_output(task_id, location, attempt)

    async def output_left(self, task_id: str, location: str) -> None:
        self._board.output_left(task_id, location)

    async def complete(self, task_id: str, output: TaskOutput, output_key: Optional[str] = None,
                       attempt: Optional[int] = None) -> bool:
        done = await self._board.complete(task_id, output, output_key, attempt)
        if done:
            self._ended(task_id)
        return done

    async def fail(self, task_id: str, error: str, attempt: Optional[int] = None) -> bool:
        done = await self._board.fail(task_id, error, attempt)
        if done:
            self._ended(task_id)
        return done

    async def cancel(self, task_id: str) -> Tuple[bool, Optional[TaskStatus]]:
        canceled, before = await self._board.cancel(task_id)
        if canceled:
            self._ended(task_id)
        return canceled, before

    async def wait_released(self, task_id: str, attempt: int) -> Optional[TaskStatus]:
        return await self._board.wait_released(task_id, attempt)

    # -- which model replicas hold which models (for GET /models), kept in memory only --------

    async def report_models(self, replica: str, names: List[str]) -> None:
        self._models_held[replica] = (time.monotonic(), list(names))

    async def models_held(self) -> List[str]:
        """Models some replica reported holding within ``model_report_ttl_s`` (a killed replica
        stops reporting, so its models drop out)."""
        oldest = time.monotonic() - self._settings.model_report_ttl_s
        fresh = {replica: held for replica, held in self._models_held.items() if held[0] >= oldest}
        self._models_held = fresh
        return sorted({name for _, names in fresh.values() for name in names})


def _runner_app_name() -> str:
    """The application whose TaskRunner runs the tasks (before any runner has spoken to this actor:
    one restarted, or none had a task yet)."""
    from ray import serve

    for name, app in serve.status().applications.items():
        if "TaskRunner" in app.deployments:
            return name
    raise LookupError("no application with a TaskRunner is deployed")


def _live_actor_names() -> Set[str]:
    """Names of the live named actors of the cluster: a dead actor's name is released (and Serve
    replicas do not restart), so a runner replica missing here is gone."""
    import ray

    return {actor["name"] for actor in ray.util.list_named_actors(all_namespaces=True)}


def state_fingerprint(settings: Settings) -> str:
    """The code and the settings a state actor runs with: a detached actor outlives deploys, so
    one built from others is outdated."""
    digest = hashlib.sha256(_code_digest().encode())
    digest.update(settings.model_dump_json().encode())
    return digest.hexdigest()[:16]


@functools.lru_cache(maxsize=1)
def _code_digest() -> str:
    """The package's version and its source: a redeploy of changed code counts as a new version
    even when nobody raised the version number."""
    try:
        version = metadata.version("tmlsr-ray")
    except metadata.PackageNotFoundError:  # run from a source tree that was not installed
        version = "source"
    root = Path(tmlsr_ray.__file__).parent
    digest = hashlib.sha256(version.encode())
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


# A call that finds the actor gone for good (replaced, killed) looks it up again this long (~30 s):
# a replacement takes a second; beyond that the caller hears the actor's error.
FIND_AGAIN = Backoff(attempts=10, base_s=0.1, cap_s=8.0)
CREATE_AFTER_TRIES = 4  # ~1.5 s without an actor under the name: nobody is replacing it, make one


class StateClient:
    """The service's handle on its state actor, which outlives the actor: a call that finds it
    gone for good (a newer deploy replaced it, someone killed it) finds the one now under the name
    and is sent again. ``await client.get(task_id)`` calls ``TaskState.get``; every public method
    of the actor is safe to send twice.

    A crash of the actor's process needs none of this: Ray restarts it and replays the calls."""

    def __init__(self, settings: Settings, handle: Optional["ray.actor.ActorHandle"] = None):
        self._settings = settings
        self._fingerprint = state_fingerprint(settings)
        self._handle = handle

    @classmethod
    async def connect(cls, settings: Settings) -> "StateClient":
        """Finds the state actor, or creates it; one built from other code or settings (an
        earlier deploy's) is replaced. Its records are in SQLite, so the new one has them all."""
        client = cls(settings)
        for _ in range(FIND_AGAIN.attempts):
            handle = await asyncio.to_thread(client._find, True)
            try:
                found = await handle.fingerprint.remote()
            except RayActorError:  # a killed actor still held the name a moment
                await asyncio.sleep(0.2)
                continue
            except AttributeError:  # from a version that had no fingerprint
                found = None
            if found == client._fingerprint:
                client._handle = handle
                return client
            logger.warning("replacing the state actor %r: it runs other code or settings (fingerprint %s, "
                           "this deploy's %s)", settings.state_actor_name, found, client._fingerprint)
            ray.kill(handle, no_restart=True)
            await asyncio.to_thread(client._wait_name_released)
        raise RuntimeError(f"could not start the state actor {settings.state_actor_name!r}: another deploy "
                           "with other settings keeps replacing it (give each application its own "
                           "state_actor_name)")

    def __getattr__(self, method: str) -> Callable[..., Awaitable[Any]]:
        if method.startswith("_"):
            raise AttributeError(method)
        return functools.partial(self._call, method)

    def tell(self, method: str, *args: Any) -> None:
        """Sends without waiting for an answer, or for an actor that is gone."""
        if self._handle is None:
            self._handle = self._find(create=False)
        getattr(self._handle, method).remote(*args)

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        tries = 0

        async def send() -> Any:
            nonlocal tries
            tries += 1
            if self._handle is None:
                self._handle = await asyncio.to_thread(self._find, tries > CREATE_AFTER_TRIES)
            return await getattr(self._handle, method).remote(*args, **kwargs)

        try:
            return await retry(send, FIND_AGAIN, (RayActorError, ValueError), on_retry=self._forget)
        except RetriesExhausted as exhausted:
            raise exhausted.last from None  # callers handle the actor's own error

    def _forget(self, number: int, error: BaseException) -> None:
        self._handle = None

    def _find(self, create: bool) -> "ray.actor.ActorHandle":
        """The actor under the name; ``ValueError`` if there is none and ``create`` is off."""
        if not create:
            return ray.get_actor(self._settings.state_actor_name, namespace=STATE_NAMESPACE)
        return TaskState.options(
            name=self._settings.state_actor_name, namespace=STATE_NAMESPACE, lifetime="detached",
            get_if_exists=True, resources=control_plane_resources(self._settings),
        ).remote(self._settings, self._fingerprint)

    def _wait_name_released(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                ray.get_actor(self._settings.state_actor_name, namespace=STATE_NAMESPACE)
            except ValueError:
                return
            time.sleep(0.05)


async def get_state_actor(settings: Settings) -> StateClient:
    """The one TaskState of this service, up to date with this deploy's code and settings."""
    return await StateClient.connect(settings)
