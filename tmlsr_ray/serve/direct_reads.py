"""The ingress's reads of the task database on its own node, when the database is there."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from typing import Optional

import ray
from ray.exceptions import RayActorError

from tmlsr_ray.config import Settings
from tmlsr_ray.serve.state import StateClient
from tmlsr_ray.state.store import TaskReader, task_db_path

# How often the ingress asks where the state actor runs: it moves only when restarted elsewhere.
PLACEMENT_CHECK_S = 5.0
logger = logging.getLogger("ray.serve")


class DirectReads:
    """A reader of the task database for as long as the state actor, its one writer, runs on this
    node. A file of that name is not proof: on another node it is a stale copy, and on a disk every
    node mounts SQLite's WAL (shared memory of one machine) does not hold."""

    def __init__(self, settings: Settings, state: StateClient, check_every_s: float = PLACEMENT_CHECK_S):
        self._enabled = settings.direct_reads
        self._path = task_db_path(settings.data_dir)
        self._state = state
        self._check_every_s = check_every_s
        self._here = False
        self._reader: Optional[TaskReader] = None
        self._watch: Optional[asyncio.Task] = None

    async def reader(self) -> Optional[TaskReader]:
        """The reader to use now, or ``None``: ask the state actor instead."""
        if not self._enabled:
            return None
        if self._watch is None:
            # its own context: not a child of the request that happened to start it
            self._watch = asyncio.create_task(self._watch_placement(), context=contextvars.Context())
            await self._check_placement()
        if self._here and self._reader is None and self._path.exists():
            self._reader = TaskReader(self._path)
        return self._reader if self._here else None

    def close(self) -> None:
        if self._watch is not None:
            with contextlib.suppress(RuntimeError):  # the replica's loop has already stopped
                self._watch.cancel()
        self._drop_reader()

    def _drop_reader(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    async def _watch_placement(self) -> None:
        """Asks in the background, so that no read waits for an actor that is restarting."""
        while True:
            await asyncio.sleep(self._check_every_s)
            try:
                await self._check_placement()
            except Exception as exc:  # noqa: BLE001 - the watch must outlive any one failed question
                logger.warning("could not ask the state actor where it runs (%s); asking again in %.0f s",
                               exc, self._check_every_s)

    async def _check_placement(self) -> None:
        try:
            actor_node = await self._state.node_id()
        except (RayActorError, ValueError):  # the actor restarts: keep the last answer
            return
        self._here = actor_node == ray.get_runtime_context().get_node_id()
        if not self._here:
            self._drop_reader()
