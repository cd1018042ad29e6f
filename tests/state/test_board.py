import asyncio
import hashlib
import json
import time

from tmlsr_ray.protocol import StageName, StageStatus, TaskOutput, TaskStatus
from tmlsr_ray.state.board import TaskBoard

PARAMS = {"url": "http://example.com/a.png", "type": "image"}
SETTLE_S = 60.0  # how long a deleted stray output stays listed for its second delete


def run(coro):
    return asyncio.run(coro)


async def downloading(board: TaskBoard) -> str:
    """A new task, taken by a runner and in its download stage."""
    task = board.create(PARAMS)
    await board.acquire(task)
    await board.set_stage(task, StageName.download, StageStatus.running)
    return task


def test_a_new_task_is_pending_with_three_pending_stages(tmp_path):
    board = TaskBoard(tmp_path / "t.db", max_workers=1)
    view = board.get(board.create(PARAMS))
    assert view.status == TaskStatus.pending and len(view.task_id) == 32
    assert [(s.name, s.status) for s in view.stages] == [
        (StageName.download, StageStatus.pending), (StageName.process, StageStatus.pending),
        (StageName.upload, StageStatus.pending)]
    assert view.created_at.endswith("Z")


def test_records_survive_a_reload_from_sqlite(tmp_path):
    async def scenario():
        board = TaskBoard(tmp_path / "t.db", max_workers=1)
        done, pending = board.create(PARAMS), board.create(PARAMS)
        assert await board.acquire(done)
        await board.set_stage(done, StageName.download, StageStatus.success, 0.5)
        await board.complete(done, TaskOutput(url="/files/x", metadata={"width": 4}))
        return done, pending

    done, pending = run(scenario())
    reloaded = TaskBoard(tmp_path / "t.db", max_workers=1)
    assert reloaded.get(done).status == TaskStatus.completed
    assert reloaded.get(done).stages[0].duration == 0.5
    assert reloaded.get(done).output.metadata == {"width": 4}
    assert reloaded.pending_ids() == [pending]


def test_at_most_max_workers_tasks_process_and_the_rest_wait_oldest_first(tmp_path):
    async def scenario():
        board = TaskBoard(tmp_path / "t.db", max_workers=2)
        ids = [board.create(PARAMS) for _ in range(5)]
        started = []

        async def runner(task_id):
            if await board.acquire(task_id):
                started.append(task_id)

        first = [asyncio.ensure_future(runner(tid)) for tid in ids[:2]]
        await asyncio.sleep(0.01)
        waiters = [asyncio.ensure_future(runner(tid)) for tid in reversed(ids[2:])]
        await asyncio.sleep(0.05)
        assert started == ids[:2]
        stats = board.monitor().system
        assert (stats.active_workers, stats.queue_size) == (2, 3)
        await board.complete(ids[0], TaskOutput())
        await asyncio.sleep(0.05)
        assert started == ids[:3]  # the oldest waiting task, though it asked last
        await board.fail(ids[1], "boom")
        await board.cancel(ids[2])
        await asyncio.gather(*first, *waiters)
        assert started == ids

    run(scenario())


def test_a_later_dispatch_of_a_waiting_task_supersedes_the_first_and_only_one_runs(tmp_path):
    async def scenario():
        board = TaskBoard(tmp_path / "t.db", max_workers=1)
        blocker, task = board.create(PARAMS), board.create(PARAMS)
        assert await board.acquire(blocker)
        first = asyncio.ensure_future(board.acquire(task))
        await asyncio.sleep(0.01)
        second = asyncio.ensure_future(board.acquire(task))  # e.g. the ingress of a restarted app
        assert await first == 0  # its caller may be gone: it steps aside at once
        assert await board.acquire(blocker) == 0  # already processing
        await board.complete(blocker, TaskOutput())
        assert await second == 1
        assert await board.acquire(task) == 0  # processing now

    run(scenario())


def test_a_pending_task_no_runner_waits_for_is_unclaimed_once_it_has_waited_long_enough(tmp_path):
    """Its dispatch was lost (routed to a replica that had just died): the sweeper hands it out
    again. A task some runner waits for, or one just created, is not unclaimed."""
    async def scenario():
        board = TaskBoard(tmp_path / "t.db", max_workers=1)
        blocker, waited_for, lost = board.create(PARAMS), board.create(PARAMS), board.create(PARAMS)
        assert await board.acquire(blocker)
        waiter = asyncio.ensure_future(board.acquire(waited_for))
        await asyncio.sleep(0.01)
        assert board.unclaimed(changed_before=time.time() - 60) == []
        assert board.unclaimed(changed_before=time.time() + 1) == [lost]
        await board.complete(blocker, TaskOutput())
        assert await waiter == 1
        assert board.unclaimed(changed_before=time.time() + 1) == [lost]

    run(scenario())


def test_cancel_of_a_pending_task_is_immediate_and_frees_its_waiter(tmp_path):
    async def scenario():
        board = TaskBoard(tmp_path / "t.db", max_workers=1)
        blocker, task = board.create(PARAMS), board.create(PARAMS)
        await board.acquire(blocker)
        waiting = asyncio.ensure_future(board.acquire(task))
        await asyncio.sleep(0.01)
        assert await board.cancel(task) == (True, TaskStatus.pending)
        assert await waiting == 0
        view = board.get(task)
        assert view.status == TaskStatus.canceled
        assert {s.status for s in view.stages} == {StageStatus.skipped}

    run(scenario())


def test_cancel_of_a_processing_task_marks_the_running_stage_canceled_with_how_long_it_ran(tmp_path):
    async def scenario():
        board = TaskBoard(tmp_path / "t.db", max_workers=1)
        task = await downloading(board)
        await asyncio.sleep(0.05)
        await board.set_stage(task, StageName.download, StageStatus.running, detail={"bytes": 10})  # progress
        watcher = asyncio.ensure_future(board.wait_released(task, 1))
        assert await board.cancel(task) == (True, TaskStatus.processing)
        assert await asyncio.wait_for(watcher, 1) == TaskStatus.canceled
        stages = board.get(task).stages
        assert [s.status for s in stages] == [StageStatus.canceled, StageStatus.skipped, StageStatus.skipped]
        assert 0.05 <= stages[0].duration < 5 and stages[1].duration is None
        assert await board.complete(task, TaskOutput()) is False  # a late runner cannot revive it

    run(scenario())


def test_finished_tasks_cannot_be_canceled(tmp_path):
    async def scenario():
        board = TaskBoard(tmp_path / "t.db", max_workers=1)
        task = board.create(PARAMS)
        await board.acquire(task)
        await board.complete(task, TaskOutput())
        assert await board.cancel(task) == (False, TaskStatus.completed)
        assert await board.cancel("0" * 32) == (False, None)

    run(scenario())


def test_the_sweeper_fails_processing_tasks_whose_runner_went_silent(tmp_path):
    async def scenario():
        board = TaskBoard(tmp_path / "t.db", max_workers=1)
        silent, alive = board.create(PARAMS), board.create(PARAMS)
        board._max_workers = 2
        await board.acquire(silent)
        await board.acquire(alive)
        board._live[silent].heartbeat_at = time.time() - 100
        assert await board.sweep(heartbeat_timeout_s=30) == ([], [silent])
        view = board.get(silent)
        assert view.status == TaskStatus.failed and "no heartbeat" in view.error and "attempt 1" in view.error
        assert board.get(alive).status == TaskStatus.processing

    run(scenario())


def test_monitor_lists_recent_tasks_first_and_bounded(tmp_path):
    board = TaskBoard(tmp_path / "t.db", max_workers=3, recent_limit=2)
    ids = []
    for _ in range(3):
        ids.append(board.create(PARAMS))
        time.sleep(0.01)
    stats = board.monitor()
    assert [t.task_id for t in stats.tasks] == [ids[2], ids[1]]
    assert stats.stats[TaskStatus.pending] == 3 and stats.system.max_workers == 3


def test_an_output_due_for_deletion_stays_due_until_marked_deleted(tmp_path):
    """A delete that failed (OSS answering 503) is tried again on the next round: marking every
    output expired before deleting left the objects of a failed round in the bucket for good."""
    async def scenario():
        board = TaskBoard(tmp_path / "t.db", max_workers=1)
        task = board.create(PARAMS)
        await board.acquire(task)
        await board.complete(task, TaskOutput(url="/files/k.png", metadata={"width": 4}), "2026/01/01/k.png")
        assert board.outputs_due(older_than=time.time() - 60) == []  # too young
        assert board.outputs_due(older_than=time.time() + 1) == [(task, "2026/01/01/k.png")]
        assert board.outputs_due(older_than=time.time() + 1) == [(task, "2026/01/01/k.png")]  # not deleted yet
        assert not board.get(task).output.expired and board.get(task).output.url == "/files/k.png"
        board.expired(task)
        assert board.outputs_due(older_than=time.time() + 1) == []
        output = board.get(task).output
        assert output.expired and output.url is None and output.metadata == {"width": 4}
        assert TaskBoard(tmp_path / "t.db", max_workers=1).get(task).output.expired  # persisted

    run(scenario())


def test_old_finished_records_are_dropped_but_live_ones_stay(tmp_path):
    async def scenario():
        board = TaskBoard(tmp_path / "t.db", max_workers=1)
        done, pending = board.create(PARAMS), board.create(PARAMS)
        await board.acquire(done)
        await board.fail(done, "boom")
        assert board.drop_records(older_than=time.time() + 1) == 1
        assert board.get(done) is None and board.get(pending) is not None
        assert TaskBoard(tmp_path / "t.db", max_workers=1).get(done) is None

    run(scenario())


def test_admission_refuses_new_tasks_when_the_pending_queue_is_full(tmp_path):
    board = TaskBoard(tmp_path / "t.db", max_workers=1, max_pending=2)
    assert board.admit(PARAMS)[1] == "created" and board.admit(PARAMS)[1] == "created"
    assert board.admit(PARAMS) == (None, "queue_full")
    assert board.monitor().system.queue_size == 2


def test_an_idempotency_key_returns_the_same_task_and_survives_a_reload(tmp_path):
    board = TaskBoard(tmp_path / "t.db", max_workers=1)
    task_id, outcome = board.admit(PARAMS, idempotency_key="order-17")
    assert outcome == "created"
    assert board.admit(PARAMS, idempotency_key="order-17") == (task_id, "existing")
    assert board.admit({**PARAMS, "outscale": 2}, idempotency_key="order-17") == (task_id, "key_conflict")
    reloaded = TaskBoard(tmp_path / "t.db", max_workers=1)
    assert reloaded.admit(PARAMS, idempotency_key="order-17") == (task_id, "existing")
    assert len(reloaded.pending_ids()) == 1


def test_a_task_whose_runner_vanished_is_requeued_and_the_old_run_cannot_touch_it(tmp_path):
    async def scenario():
        board = TaskBoard(tmp_path / "t.db", max_workers=1, max_attempts=2)
        task = board.create(PARAMS)
        first = await board.acquire(task)
        await board.set_stage(task, StageName.download, StageStatus.running, attempt=first)
        released = asyncio.ensure_future(board.wait_released(task, first))
        board._live[task].heartbeat_at = time.time() - 100
        assert await board.sweep(heartbeat_timeout_s=30) == ([task], [])
        assert await asyncio.wait_for(released, 1) == TaskStatus.pending  # the old run is told to stop
        view = board.get(task)
        assert view.status == TaskStatus.pending and {s.status for s in view.stages} == {StageStatus.pending}
        second = await board.acquire(task)
        assert second == 2
        assert await board.complete(task, TaskOutput(url="/old"), attempt=first) is False
        assert board.heartbeat(task, attempt=first) is False
        assert await board.complete(task, TaskOutput(url="/new"), attempt=second) is True
        assert board.get(task).output.url == "/new"

    run(scenario())


def test_a_task_out_of_attempts_fails_with_the_reason(tmp_path):
    async def scenario():
        board = TaskBoard(tmp_path / "t.db", max_workers=1, max_attempts=2)
        task = board.create(PARAMS)
        for expected in ([task], []), ([], [task]):
            await board.acquire(task)
            board._live[task].heartbeat_at = time.time() - 100
            assert await board.sweep(heartbeat_timeout_s=30) == expected
        view = board.get(task)
        assert view.status == TaskStatus.failed and "attempt 2, the last allowed" in view.error

    run(scenario())


def test_finished_tasks_leave_memory_but_stay_readable_from_the_store(tmp_path):
    async def scenario():
        board = TaskBoard(tmp_path / "t.db", max_workers=1, finished_cache=5)
        ids = [board.create(PARAMS) for _ in range(30)]
        for task_id in ids:
            assert await board.acquire(task_id)
            await board.complete(task_id, TaskOutput(url="http://x/o.png"))
        assert board.memory_footprint() == {"live": 0, "finished_cached": 5}
        assert board.get(ids[0]).status == TaskStatus.completed  # read back from SQLite
        assert await board.cancel(ids[0]) == (False, TaskStatus.completed)
        assert board.memory_footprint()["finished_cached"] == 5
        stats = board.monitor()
        assert stats.stats[TaskStatus.completed] == 30 and stats.tasks[0].task_id == ids[-1]

    run(scenario())


def test_a_large_store_opens_with_only_live_tasks_in_memory(tmp_path):
    from tmlsr_ray.state.records import TaskRecord
    from tmlsr_ray.state.store import TaskStore

    store = TaskStore(tmp_path / "t.db")
    old = [TaskRecord(params=PARAMS, status=TaskStatus.completed, created_at=i, updated_at=i) for i in range(5000)]
    store.save_many(old + [TaskRecord(params=PARAMS)])
    store.close()
    board = TaskBoard(tmp_path / "t.db", max_workers=1, recent_limit=3)
    assert board.memory_footprint() == {"live": 1, "finished_cached": 0}
    stats = board.monitor()
    assert stats.stats[TaskStatus.completed] == 5000 and stats.system.queue_size == 1
    assert [t.status for t in stats.tasks] == [TaskStatus.pending, TaskStatus.completed, TaskStatus.completed]
    assert board.drop_records(older_than=100) == 100
    assert board.monitor().stats[TaskStatus.completed] == 4900


def test_a_database_from_before_the_indexed_columns_is_migrated(tmp_path):
    import sqlite3

    from tmlsr_ray.state.records import TaskRecord

    fingerprint = hashlib.sha256(json.dumps(PARAMS, sort_keys=True).encode()).hexdigest()
    record = TaskRecord(params=PARAMS, status=TaskStatus.completed, idempotency_key="k1", output_key="a/o.png",
                        output=TaskOutput(url="http://x/o.png"), updated_at=10.0, request_fingerprint=fingerprint)
    db = sqlite3.connect(str(tmp_path / "t.db"))
    db.execute("CREATE TABLE tasks (task_id TEXT PRIMARY KEY, created_at REAL NOT NULL, status TEXT NOT NULL, "
               "record TEXT NOT NULL)")
    db.execute("INSERT INTO tasks VALUES (?, ?, ?, ?)",
               (record.task_id, record.created_at, record.status.value, record.model_dump_json()))
    db.commit()
    db.close()
    board = TaskBoard(tmp_path / "t.db", max_workers=1)
    assert board.admit(PARAMS, idempotency_key="k1") == (record.task_id, "existing")
    assert board.outputs_due(older_than=20.0) == [(record.task_id, "a/o.png")]


def test_canceling_a_waiting_task_does_not_stall_the_waiters_behind_it(tmp_path):
    async def scenario():
        board = TaskBoard(tmp_path / "t.db", max_workers=1)
        running, first, second = board.create(PARAMS), board.create(PARAMS), board.create(PARAMS)
        assert await board.acquire(running)
        waiters = [asyncio.ensure_future(board.acquire(task)) for task in (first, second)]
        await asyncio.sleep(0.01)
        await board.cancel(first)
        await board.complete(running, TaskOutput())
        assert await asyncio.wait_for(asyncio.gather(*waiters), 5) == [0, 1]

    run(scenario())


def test_a_task_whose_runner_is_gone_is_requeued_at_once_and_others_keep_running(tmp_path):
    async def scenario():
        board = TaskBoard(tmp_path / "t.db", max_workers=2, max_attempts=2)
        lost, kept = board.create(PARAMS), board.create(PARAMS)
        assert await board.acquire(lost, "runner-a")
        assert await board.acquire(kept, "runner-b")
        assert board.runners() == {"runner-a", "runner-b"}
        requeued, failed = await board.sweep(heartbeat_timeout_s=3600, gone={"runner-a"})
        return board, lost, kept, requeued, failed

    board, lost, kept, requeued, failed = run(scenario())
    assert requeued == [lost] and failed == []
    assert board.get(lost).status == TaskStatus.pending and board.get(kept).status == TaskStatus.processing
    assert board.runners() == {"runner-b"}


# -- changes, batches, deadlines -------------------------------------------------------------


def test_wait_change_answers_at_the_next_change_at_once_when_behind_or_finished_else_after_its_timeout(tmp_path):
    async def scenario():
        board = TaskBoard(tmp_path / "t.db", max_workers=1)
        task = board.create(PARAMS)
        revision, view = await board.wait_change(task)
        assert view.status == TaskStatus.pending
        assert (await board.wait_change(task, revision, timeout_s=0.05))[0] == revision  # unchanged
        waiter = asyncio.ensure_future(board.wait_change(task, revision, timeout_s=10))
        await asyncio.sleep(0.01)
        assert not waiter.done()
        await board.acquire(task)
        changed, view = await asyncio.wait_for(waiter, 1)
        assert changed > revision and view.status == TaskStatus.processing
        await board.set_stage(task, StageName.download, StageStatus.running)
        assert (await board.wait_change(task, revision, timeout_s=10))[0] > changed  # behind: at once
        await board.cancel(task)
        final, view = await board.wait_change(task)
        assert view.status == TaskStatus.canceled  # and it changes no more: no wait
        assert await asyncio.wait_for(board.wait_change(task, final, timeout_s=60), 1) == (final, view)
        assert await board.wait_change("no-such-task") is None

    run(scenario())


def test_the_revision_survives_a_reload(tmp_path):
    async def scenario():
        board = TaskBoard(tmp_path / "t.db", max_workers=1)
        task = await downloading(board)
        return task, (await board.wait_change(task))[0]

    task, revision = run(scenario())
    assert run(TaskBoard(tmp_path / "t.db", max_workers=1).wait_change(task))[0] == revision == 2


def test_a_batch_is_admitted_whole_or_not_at_all(tmp_path):
    board = TaskBoard(tmp_path / "t.db", max_workers=1, max_pending=3)
    board.admit(PARAMS)
    assert board.admit_many([(PARAMS, None, None, None)] * 3) == [(None, "queue_full")] * 3
    assert board.monitor().system.queue_size == 1  # nothing of the refused batch was created
    outcomes = board.admit_many([(PARAMS, None, None, None)] * 2)
    assert [outcome for _, outcome in outcomes] == ["created"] * 2
    assert board.pending_ids()[1:] == [task_id for task_id, _ in outcomes]
    assert TaskBoard(tmp_path / "t.db", max_workers=1).monitor().system.queue_size == 3


def test_a_batch_answers_known_keys_and_ids_without_counting_them_against_the_queue(tmp_path):
    board = TaskBoard(tmp_path / "t.db", max_workers=1, max_pending=2)
    first, _ = board.admit(PARAMS, idempotency_key="b/0")
    outcomes = board.admit_many([(PARAMS, None, "b/0", None), ({**PARAMS, "outscale": 2}, None, "b/0", None),
                                 (PARAMS, first, None, None), (PARAMS, "new-id", "b/1", None),
                                 (PARAMS, None, "b/1", None)])
    assert outcomes == [(first, "existing"), (first, "key_conflict"), (first, "existing"),
                        ("new-id", "created"), ("new-id", "existing")]  # the same key twice in one call
    assert board.monitor().system.queue_size == 2


def test_a_task_past_its_deadline_is_canceled_with_the_reason_even_after_a_reload(tmp_path):
    async def scenario():
        board = TaskBoard(tmp_path / "t.db", max_workers=1)
        soon, later, never = (board.create({**PARAMS, "deadline_s": 30}), board.create({**PARAMS, "deadline_s": 90}),
                              board.create(PARAMS))
        await board.acquire(soon)
        reloaded = TaskBoard(tmp_path / "t.db", max_workers=1)
        assert await reloaded.cancel_overdue(time.time() + 10) == []
        assert await reloaded.cancel_overdue(time.time() + 60) == [soon]
        view = reloaded.get(soon)
        assert view.status == TaskStatus.canceled and view.error == "canceled: deadline of 30 s passed"
        assert reloaded.get(later).status == reloaded.get(never).status == TaskStatus.pending
        assert await reloaded.cancel_overdue(time.time() + 10**6) == [later]

    run(scenario())


# -- webhook outbox --------------------------------------------------------------------------

HOOKED = {**PARAMS, "callback_url": "http://hooks.example.com/sr", "callback_progress": True}


def test_an_end_event_is_owed_in_the_change_that_ends_the_task_and_survives_a_reload(tmp_path):
    async def scenario():
        board = TaskBoard(tmp_path / "t.db", max_workers=1, webhook_base_url="https://sr.example.com")
        task = board.create(HOOKED)
        assert await board.acquire(task)
        assert board.due_deliveries() == []  # a start is no webhook event
        await board.complete(task, TaskOutput(url="/files/x.png", metadata={}))
        return task

    task = run(scenario())
    reloaded = TaskBoard(tmp_path / "t.db", max_workers=1)
    (owed,) = reloaded.due_deliveries()
    body = json.loads(owed.body)
    assert owed.task_id == task and owed.event == "task.completed" and owed.url == HOOKED["callback_url"]
    assert body["event"] == "task.completed" and body["output"]["url"] == "https://sr.example.com/files/x.png"
    reloaded.settle(owed)
    assert TaskBoard(tmp_path / "t.db", max_workers=1).due_deliveries() == []


def test_a_tasks_deliveries_are_due_one_at_a_time_in_order_and_progress_is_dropped_behind_them(tmp_path):
    async def scenario():
        board = TaskBoard(tmp_path / "t.db", max_workers=2)
        task, other = board.create(HOOKED), board.create(HOOKED)
        for one in (task, other):
            assert await board.acquire(one)
        assert board.owe_progress(task)
        assert not board.owe_progress(task)  # one owed already: dropped, not queued
        await board.fail(task, "broken input")
        await board.cancel(other)
        return board, task, other

    board, task, other = run(scenario())
    first = board.due_deliveries()
    assert [(d.task_id, d.event) for d in first] == [(task, "task.progress"), (other, "task.canceled")]
    assert board.due_deliveries(skip=[task]) == [first[1]]
    board.settle(first[0])
    assert [(d.task_id, d.event) for d in board.due_deliveries()] == [(task, "task.failed"), (other, "task.canceled")]
    assert len({d.delivery_id for d in board.due_deliveries()}) == 2


def test_a_task_without_a_callback_owes_nothing(tmp_path):
    async def scenario():
        board = TaskBoard(tmp_path / "t.db", max_workers=1)
        task = board.create(PARAMS)
        await board.acquire(task)
        assert not board.owe_progress(task)
        await board.complete(task, TaskOutput(url="/files/x.png", metadata={}))
        return board

    assert run(scenario()).due_deliveries() == []


def test_an_output_a_retried_task_ends_without_is_due_for_removal_until_removed(tmp_path):
    """A run given up on after its upload stored a file no record named: retention never found it."""
    async def scenario():
        board = TaskBoard(tmp_path / "t.db", max_workers=1, max_attempts=2)
        task = board.create(PARAMS)
        first = await board.acquire(task)
        assert board.note_output(task, "d/t/output.png", first)
        board._live[task].heartbeat_at = time.time() - 100
        assert await board.sweep(heartbeat_timeout_s=30) == ([task], [])
        second = await board.acquire(task)
        assert board.note_output(task, "d/t/output-2.png", second)
        assert board.stray_outputs(SETTLE_S) == [] and not board.strays_changed.is_set()
        await board.complete(task, TaskOutput(url="/files/d/t/output-2.png"), "d/t/output-2.png", second)
        assert board.strays_changed.is_set()
        assert board.stray_outputs(SETTLE_S) == [(task, "d/t/output.png")]
        reloaded = TaskBoard(tmp_path / "t.db", max_workers=1)
        assert reloaded.stray_outputs(SETTLE_S) == [(task, "d/t/output.png")]  # survives a restart until deleted
        reloaded.stray_deleted("d/t/output.png", time.time(), SETTLE_S)
        assert reloaded.stray_outputs(SETTLE_S) == [] and reloaded.get(task).output.url == "/files/d/t/output-2.png"

    run(scenario())


def test_a_deleted_stray_output_is_deleted_once_more_after_it_settled_then_forgotten(tmp_path):
    """An upload cut off as its task ended (an OSS PUT that timed out on our side) can land after
    the first delete."""
    async def scenario():
        board = TaskBoard(tmp_path / "t.db", max_workers=1)
        task = board.create(PARAMS)
        attempt = await board.acquire(task)
        board.note_output(task, "d/t/output.png", attempt)
        await board.cancel(task)
        assert board.stray_outputs(SETTLE_S) == [(task, "d/t/output.png")]
        board.stray_deleted("d/t/output.png", time.time(), SETTLE_S)
        assert board.stray_outputs(SETTLE_S) == []  # deleted once, not settled yet
        time.sleep(0.01)
        assert board.stray_outputs(settle_s=0) == [(task, "d/t/output.png")]  # once it has
        board.stray_deleted("d/t/output.png", time.time(), settle_s=0)
        assert board.stray_outputs(settle_s=0) == []  # deleted twice: forgotten

    run(scenario())


def test_every_output_noted_for_a_task_that_fails_or_is_canceled_is_due_for_removal(tmp_path):
    async def scenario():
        board = TaskBoard(tmp_path / "t.db", max_workers=3, max_attempts=1)
        failed, canceled, lost = board.create(PARAMS), board.create(PARAMS), board.create(PARAMS)
        for task in (failed, canceled, lost):
            attempt = await board.acquire(task)
            assert board.note_output(task, f"d/{task}/output.png", attempt)
            assert board.note_output(task, f"d/{task}/output.png", attempt)  # a replayed call notes it once
        await board.fail(failed, "boom")
        await board.cancel(canceled)
        board._live[lost].heartbeat_at = time.time() - 100
        assert await board.sweep(heartbeat_timeout_s=30) == ([], [lost])  # out of attempts
        assert sorted(board.stray_outputs(SETTLE_S)) == sorted((t, f"d/{t}/output.png") for t in (failed, canceled, lost))

    run(scenario())


def test_an_upload_that_lands_after_its_first_delete_is_due_again_when_the_run_reports_it(tmp_path):
    """Canceled during the upload: the stray is deleted before the file landed, then the run's
    refused completion says it is there now."""
    async def scenario():
        board = TaskBoard(tmp_path / "t.db", max_workers=1)
        task = board.create(PARAMS)
        attempt = await board.acquire(task)
        assert board.note_output(task, "d/t/output.png", attempt)
        await board.cancel(task)
        board.stray_deleted("d/t/output.png", time.time(), SETTLE_S)  # nothing there yet
        assert board.stray_outputs(SETTLE_S) == []
        assert await board.complete(task, TaskOutput(url="/t"), "d/t/output.png", attempt) is False
        assert board.stray_outputs(SETTLE_S) == [(task, "d/t/output.png")]
        # reported while a delete was under way (begun before the file landed): due again at once
        tried_at = time.time()
        time.sleep(0.01)
        assert await board.complete(task, TaskOutput(url="/t"), "d/t/output.png", attempt) is False
        board.stray_deleted("d/t/output.png", tried_at, SETTLE_S)
        assert board.stray_outputs(SETTLE_S) == [(task, "d/t/output.png")]
        board.stray_deleted("d/t/output.png", time.time(), settle_s=0)  # a delete after it: deleted once
        assert board.stray_outputs(SETTLE_S) == []

    run(scenario())


def test_a_database_whose_stray_outputs_table_predates_its_delete_times_opens_with_them(tmp_path):
    import sqlite3
    with sqlite3.connect(tmp_path / "t.db") as db:
        db.execute("CREATE TABLE stray_outputs (location TEXT PRIMARY KEY, task_id TEXT NOT NULL)")
        db.execute("INSERT INTO stray_outputs VALUES ('d/t/output.png', 't')")
    board = TaskBoard(tmp_path / "t.db", max_workers=1)
    assert board.stray_outputs(SETTLE_S) == [("t", "d/t/output.png")]
    board.stray_deleted("d/t/output.png", time.time(), SETTLE_S)
    assert board.stray_outputs(SETTLE_S) == []


def test_a_completion_replayed_to_a_restarted_state_actor_leaves_the_output_alone(tmp_path):
    async def scenario():
        board = TaskBoard(tmp_path / "t.db", max_workers=1)
        task = board.create(PARAMS)
        attempt = await board.acquire(task)
        assert board.note_output(task, "d/t/output.png", attempt)
        assert await board.complete(task, TaskOutput(url="/t"), "d/t/output.png", attempt)
        assert await board.complete(task, TaskOutput(url="/t"), "d/t/output.png", attempt) is False
        assert board.stray_outputs(SETTLE_S) == [] and not board.strays_changed.is_set()
        assert board.note_output(task, "d/t/output.png", attempt) is False  # a replayed note neither

    run(scenario())


def test_a_run_that_ends_after_its_canceled_task_has_its_upload_deleted_again(tmp_path):
    """Canceled just after the put returned: the run stopped before its completion could say the
    file had landed after the state actor's delete; it says so when it ends."""
    async def scenario():
        board = TaskBoard(tmp_path / "t.db", max_workers=2)
        canceled, completed = board.create(PARAMS), board.create(PARAMS)
        attempt = await board.acquire(canceled)
        assert board.note_output(canceled, "d/c/output.png", attempt)
        await board.cancel(canceled)
        board.stray_deleted("d/c/output.png", time.time(), SETTLE_S)
        time.sleep(0.01)
        board.output_left(canceled, "d/c/output.png")
        assert board.stray_outputs(SETTLE_S) == [(canceled, "d/c/output.png")]
        attempt = await board.acquire(completed)
        await board.complete(completed, TaskOutput(url="/d"), "d/d/output.png", attempt)
        board.output_left(completed, "d/d/output.png")  # its own output stays
        assert board.stray_outputs(SETTLE_S) == [(canceled, "d/c/output.png")]

    run(scenario())


def test_views_hide_the_credentials_in_a_tasks_urls_and_a_run_gets_them_as_sent(tmp_path):
    """A password or token in the input's or the webhook's URL showed in GET /tasks/{id}, in
    /monitor/stats (the dashboard) and in every webhook body."""
    sent = {**HOOKED, "url": "https://user:s3cret@media.example.com/a.png?sig=x%2Fy",
            "callback_url": "https://TOKEN@hooks.example.com/sr"}

    async def scenario():
        board = TaskBoard(tmp_path / "t.db", max_workers=1)
        task = board.create(sent)
        assert await board.acquire(task)
        await board.fail(task, "broken")
        return board, task

    board, task = run(scenario())
    shown = {"url": "https://user:***@media.example.com/a.png?sig=x%2Fy", "callback_url": "https://***@hooks.example.com/sr"}
    views = [board.get(task), *board.monitor().tasks, TaskBoard(tmp_path / "t.db", max_workers=1).get(task)]
    assert [{name: view.params[name] for name in shown} for view in views] == [shown] * 3
    (owed,) = board.due_deliveries()
    assert {name: json.loads(owed.body)["params"][name] for name in shown} == shown
    assert owed.url == sent["callback_url"] and board.params(task) == sent
    assert "s3cret" not in board.get(task).model_dump_json() and "TOKEN" not in owed.body.decode()
