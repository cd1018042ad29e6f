"""Write-through SQLite persistence of task records (no Ray here)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Iterator

from tmlsr_ray.state.records import TaskRecord

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    task_id    TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    status     TEXT NOT NULL,
    record     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_created ON tasks (created_at);
"""


class TaskStore:
    """Each :meth:`save` is committed before it returns, so an acknowledged change survives a crash."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def save(self, record: TaskRecord) -> None:
        self._db.execute(
            "INSERT INTO tasks (task_id, created_at, status, record) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(task_id) DO UPDATE SET status=excluded.status, record=excluded.record",
            (record.task_id, record.created_at, record.status.value, record.model_dump_json()),
        )

    def delete(self, task_ids: list) -> None:
        self._db.executemany("DELETE FROM tasks WHERE task_id = ?", [(task_id,) for task_id in task_ids])

    def load_all(self) -> Iterator[TaskRecord]:
        for (body,) in self._db.execute("SELECT record FROM tasks ORDER BY created_at"):
            yield TaskRecord.model_validate_json(body)

    def close(self) -> None:
        self._db.close()
