import asyncio
import sqlite3
import threading

import pytest

from tmlsr_ray.protocol import StageName, StageStatus, TaskStatus
from tmlsr_ray.state.board import TaskBoard
from tmlsr_ray.state.store import TaskReader, monitor_stats

PARAMS = {"url": "http://example.com/a.png", "type": "image"}


def test_a_reader_sees_each_committed_change_at_once(tmp_path):
    board = TaskBoard(tmp_path / "t.db", max_workers=1)
    reader = TaskReader(tmp_path / "t.db")
    task_id = board.create(PARAMS)
    assert reader.view(task_id) == board.get(task_id)

    async def start():
        assert await board.acquire(task_id)
        await board.set_stage(task_id, StageName.download, StageStatus.running)
    asyncio.run(start())
    view = reader.view(task_id)
    assert view.status == TaskStatus.processing and view.stages[0].status == StageStatus.running
    assert reader.view("0" * 32) is None


def test_a_reader_does_not_wait_for_a_write_in_progress(tmp_path):
    board = TaskBoard(tmp_path / "t.db", max_workers=1)
    task_id = board.create(PARAMS)
    writer = sqlite3.connect(str(tmp_path / "t.db"), isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # the writer's lock held, as during a slow commit
    writer.execute("UPDATE tasks SET status = 'failed'")
    views = []
    thread = threading.Thread(target=lambda: views.append(TaskReader(tmp_path / "t.db").view(task_id)))
    thread.start()
    thread.join(timeout=2)
    writer.execute("ROLLBACK")
    assert views and views[0].status == TaskStatus.pending  # the last committed state, at once


def test_a_reader_cannot_write(tmp_path):
    TaskBoard(tmp_path / "t.db", max_workers=1).create(PARAMS)
    reader = TaskReader(tmp_path / "t.db")
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        reader._execute("DELETE FROM tasks")


def test_closing_a_reader_closes_the_connection_of_every_thread_that_read(tmp_path):
    task_id = TaskBoard(tmp_path / "t.db", max_workers=1).create(PARAMS)
    reader = TaskReader(tmp_path / "t.db")
    read, closed, errors = threading.Barrier(4), threading.Event(), []

    def reading_thread():
        reader.view(task_id)
        read.wait()
        closed.wait()
        try:
            reader.view(task_id)
        except sqlite3.ProgrammingError as exc:  # its connection closed under it
            errors.append(exc)

    threads = [threading.Thread(target=reading_thread) for _ in range(3)]
    for thread in threads:
        thread.start()
    read.wait()
    reader.close()
    closed.set()
    for thread in threads:
        thread.join(timeout=5)
    assert len(errors) == 3 and all("closed" in str(e) for e in errors)


def test_monitor_stats_read_directly_equal_the_boards(tmp_path):
    board = TaskBoard(tmp_path / "t.db", max_workers=2, recent_limit=3)
    ids = [board.create(PARAMS) for _ in range(5)]
    asyncio.run(board.acquire(ids[0]))
    direct = monitor_stats(TaskReader(tmp_path / "t.db"), max_workers=2, recent_limit=3)
    assert direct == board.monitor()
    assert direct.system.active_workers == 1 and direct.system.queue_size == 4
    assert [t.task_id for t in direct.tasks] == ids[:1:-1]
