"""Write-through SQLite persistence of task records (no Ray here).

The store holds every record; the board keeps only live tasks (and a few recently finished ones)
in memory, and asks the store for the rest: counts, recent tasks, lookups by id or idempotency key,
and the candidates of retention, each through an index.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from tmlsr_ray.protocol import MonitorStats, SystemStats, TaskStatus, TaskView
from tmlsr_ray.state.records import TaskRecord

DB_NAME = "tasks.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    task_id    TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    status     TEXT NOT NULL,
    record     TEXT NOT NULL
);
"""
# Columns added after the first release; filled from the JSON record when an old database opens.
_COLUMNS = {"updated_at": "REAL", "idempotency_key": "TEXT", "output_key": "TEXT"}
# Webhook deliveries not yet acknowledged: written in the transaction of the change that causes
# them, removed when the receiver took them or refused them for good.
_OUTBOX = """
CREATE TABLE IF NOT EXISTS outbox (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id     TEXT NOT NULL,
    delivery_id TEXT NOT NULL,
    event       TEXT NOT NULL,
    url         TEXT NOT NULL,
    body        BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_task ON outbox (task_id, id);
"""
# Outputs stored for a task that ended without them (see TaskRecord.output_locations): written when
# the task ends; deleted from storage at once, and once more a while after that first delete (an
# upload cut off as the task ended may land after it), then forgotten.
_STRAYS = """
CREATE TABLE IF NOT EXISTS stray_outputs (
    location   TEXT PRIMARY KEY,
    task_id    TEXT NOT NULL,
    added_at   REAL NOT NULL DEFAULT 0,
    deleted_at REAL
);
"""
# Columns of stray_outputs its first versions had not.
_STRAY_COLUMNS = {"added_at": "REAL NOT NULL DEFAULT 0", "deleted_at": "REAL"}
_INDEXES = """
CREATE INDEX IF NOT EXISTS tasks_created ON tasks (created_at);
CREATE INDEX IF NOT EXISTS tasks_status ON tasks (status);
CREATE INDEX IF NOT EXISTS tasks_updated ON tasks (updated_at);
CREATE INDEX IF NOT EXISTS tasks_idempotency ON tasks (idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS tasks_output ON tasks (updated_at) WHERE output_key IS NOT NULL;
"""
_LIVE = (TaskStatus.pending.value, TaskStatus.processing.value)
_FINISHED = tuple(status.value for status in TaskStatus if status.finished)


@dataclass(frozen=True)
class Delivery:
    """One webhook event to send; ``delivery_id`` is the same on every try, across restarts."""

    task_id: str
    event: str
    url: str
    body: bytes
    delivery_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    id: Optional[int] = None  # its row in the outbox, once written


class _Reads:
    """The queries both the writer and the readers run, over ``_execute``."""

    def _execute(self, query: str, args: tuple = ()) -> sqlite3.Cursor:
        raise NotImplementedError

    def load(self, task_id: str) -> Optional[TaskRecord]:
        return self._one("SELECT record FROM tasks WHERE task_id = ?", (task_id,))

    def counts(self) -> Dict[TaskStatus, int]:
        rows = self._execute("SELECT status, COUNT(*) FROM tasks GROUP BY status")
        counts = {status: 0 for status in TaskStatus}
        counts.update({TaskStatus(status): count for status, count in rows})
        return counts

    def recent(self, limit: int) -> List[TaskRecord]:
        return list(self._many("SELECT record FROM tasks ORDER BY created_at DESC LIMIT ?", (limit,)))

    def _one(self, query: str, args: tuple) -> Optional[TaskRecord]:
        row = self._execute(query, args).fetchone()
        return TaskRecord.model_validate_json(row[0]) if row else None

    def _many(self, query: str, args: tuple) -> Iterator[TaskRecord]:
        for (body,) in self._execute(query, args).fetchall():
            yield TaskRecord.model_validate_json(body)


class TaskStore(_Reads):
    """Each :meth:`save` is committed before it returns, so an acknowledged change survives a crash."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: an acknowledged change survives a power loss too, not only a process crash.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._add_missing_columns("tasks", _COLUMNS, from_record=True)
        self._db.executescript(_INDEXES)
        self._db.executescript(_OUTBOX)
        self._db.executescript(_STRAYS)
        self._add_missing_columns("stray_outputs", _STRAY_COLUMNS)

    def _add_missing_columns(self, table: str, columns: Dict[str, str], from_record: bool = False) -> None:
        """Columns added after a table's first version; ``from_record``: filled from the JSON record."""
        present = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
        for name, kind in columns.items():
            if name not in present:
                with self._db:  # the column and its values, or neither (SQLite DDL is transactional)
                    self._db.execute("BEGIN")
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
                    if from_record:
                        self._db.execute(f"UPDATE {table} SET {name} = json_extract(record, '$.{name}')")

    def save(self, record: TaskRecord, delivery: Optional[Delivery] = None, strays: Sequence[str] = ()) -> None:
        """The record, the webhook delivery its change causes and the outputs it leaves to remove,
        in one transaction: a change acknowledged is a delivery owed and a removal due, whatever
        stops the process afterwards."""
        if delivery is None and not strays:
            return self._upsert(record)
        with self._db:
            self._db.execute("BEGIN")
            self._upsert(record)
            if delivery is not None:
                self.enqueue(delivery)
            self.add_strays(record.task_id, strays)

    def add_strays(self, task_id: str, locations: Sequence[str]) -> None:
        now = time.time()
        self._db.executemany("INSERT INTO stray_outputs (location, task_id, added_at) VALUES (?, ?, ?) "
                             "ON CONFLICT(location) DO UPDATE SET added_at=excluded.added_at, deleted_at=NULL",
                             [(location, task_id, now) for location in locations])

    def enqueue(self, delivery: Delivery) -> None:
        self._db.execute("INSERT INTO outbox (task_id, delivery_id, event, url, body) VALUES (?, ?, ?, ?, ?)",
                         (delivery.task_id, delivery.delivery_id, delivery.event, delivery.url, delivery.body))

    def due_deliveries(self, skip: Sequence[str] = (), limit: int = 64) -> List[Delivery]:
        """The oldest owed delivery of each task (a task's events go in order), but for ``skip``."""
        rows = self._db.execute(
            "SELECT id, task_id, delivery_id, event, url, body FROM outbox WHERE id IN "
            "(SELECT MIN(id) FROM outbox GROUP BY task_id) ORDER BY id LIMIT ?", (limit + len(skip),))
        skipped = set(skip)
        return [Delivery(task_id, event, url, body, delivery_id, row_id)
                for row_id, task_id, delivery_id, event, url, body in rows if task_id not in skipped][:limit]

    def has_delivery(self, task_id: str) -> bool:
        return self._db.execute("SELECT 1 FROM outbox WHERE task_id = ? LIMIT 1", (task_id,)).fetchone() is not None

    def settle(self, delivery: Delivery) -> None:
        self._db.execute("DELETE FROM outbox WHERE id = ?", (delivery.id,))

    def stray_outputs(self, settled_before: float, limit: int = 256) -> List[Tuple[str, str]]:
        """(task_id, location) of outputs to delete: those not deleted yet, and those last deleted
        before ``settled_before``; the newest first, so that old ones whose delete keeps failing
        do not hold up the others."""
        return list(self._db.execute(
            "SELECT task_id, location FROM stray_outputs WHERE deleted_at IS NULL OR deleted_at < ? "
            "ORDER BY rowid DESC LIMIT ?", (settled_before, limit)))

    def stray_deleted(self, location: str, tried_at: float, settled_before: float) -> None:
        """Its delete began at ``tried_at``: forgotten after its second delete (the first before
        ``settled_before``), else due again once its first delete is that old. Added again since
        ``tried_at`` (its upload landed after that delete), it is due again at once."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM stray_outputs WHERE location = ? AND deleted_at < ? AND added_at <= ?",
                             (location, settled_before, tried_at))
            self._db.execute("UPDATE stray_outputs SET deleted_at = ? "
                             "WHERE location = ? AND deleted_at IS NULL AND added_at <= ?",
                             (tried_at, location, tried_at))

    def _upsert(self, record: TaskRecord) -> None:
        self._db.execute(
            "INSERT INTO tasks (task_id, created_at, status, record, updated_at, idempotency_key, output_key) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(task_id) DO UPDATE SET status=excluded.status, "
            "record=excluded.record, updated_at=excluded.updated_at, output_key=excluded.output_key",
            (record.task_id, record.created_at, record.status.value, record.model_dump_json(),
             record.updated_at, record.idempotency_key, record.output_key),
        )

    def save_many(self, records: Sequence[TaskRecord]) -> None:
        """One transaction for many records (a batch of tasks, all or none; bulk imports)."""
        with self._db:
            self._db.execute("BEGIN")
            for record in records:
                self._upsert(record)

    def delete(self, task_ids: Sequence[str]) -> None:
        self._db.executemany("DELETE FROM tasks WHERE task_id = ?", [(task_id,) for task_id in task_ids])

    def find_by_idempotency_key(self, key: str) -> Optional[TaskRecord]:
        return self._one("SELECT record FROM tasks WHERE idempotency_key = ?", (key,))

    def load_live(self) -> Iterator[TaskRecord]:
        """Pending and processing tasks, oldest first."""
        yield from self._many("SELECT record FROM tasks WHERE status IN (?, ?) ORDER BY created_at", _LIVE)

    def with_output_before(self, older_than: float) -> List[TaskRecord]:
        """Finished tasks whose stored output was last touched before ``older_than``."""
        return list(self._many("SELECT record FROM tasks WHERE output_key IS NOT NULL AND updated_at < ?",
                               (older_than,)))

    def finished_before(self, older_than: float) -> List[str]:
        marks = ",".join("?" * len(_FINISHED))
        rows = self._db.execute(f"SELECT task_id FROM tasks WHERE status IN ({marks}) AND updated_at < ?",
                                (*_FINISHED, older_than))
        return [task_id for (task_id,) in rows]

    def _execute(self, query: str, args: tuple = ()) -> sqlite3.Cursor:
        return self._db.execute(query, args)

    def close(self) -> None:
        self._db.close()


def task_db_path(data_dir: Path) -> Path:
    return data_dir / DB_NAME


def monitor_stats(store: "TaskStore | TaskReader", max_workers: int, recent_limit: int) -> MonitorStats:
    """Worker slots, tasks by status and the recent tasks, from the store's indexes (every live
    task is in the store: processing ones hold the slots, pending ones are the queue)."""
    counts = store.counts()
    system = SystemStats(max_workers=max_workers, active_workers=counts[TaskStatus.processing],
                         queue_size=counts[TaskStatus.pending])
    return MonitorStats(system=system, stats=counts, tasks=[r.to_view() for r in store.recent(recent_limit)])


class TaskReader(_Reads):
    """Reads of the task database beside its one writer (the state actor): SQLite's WAL lets readers
    see every committed change without waiting for the writer, so status reads need not queue behind
    the actor's writes. One read-only connection per thread (a connection is not for sharing),
    all closed by :meth:`close`."""

    def __init__(self, path: Path):
        self._uri = f"file:{path}?mode=ro"
        self._local = threading.local()
        self._opened: List[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def view(self, task_id: str) -> Optional[TaskView]:
        record = self.load(task_id)
        return record.to_view() if record else None

    def _execute(self, query: str, args: tuple = ()) -> sqlite3.Cursor:
        db = getattr(self._local, "db", None)
        if db is None:
            # check_same_thread off only so that close() may close it from another thread.
            db = self._local.db = sqlite3.connect(self._uri, uri=True, isolation_level=None, check_same_thread=False)
            with self._lock:
                self._opened.append(db)
        return db.execute(query, args)

    def close(self) -> None:
        """Closes every thread's connection; a read afterwards raises ``sqlite3.ProgrammingError``."""
        with self._lock:
            for db in self._opened:
                db.close()
            self._opened.clear()
