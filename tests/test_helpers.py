"""The shared test builders' own behaviour, where a fault in one would hang or fool the tests using it."""

from __future__ import annotations

import select
import subprocess
from pathlib import Path

import pytest

from tests.helpers import PieceRewrites, eventually, frozen, process_gone, process_state
from tmlsr_ray.piece import Piece
from tmlsr_ray.storage.pieces import PieceStore

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc (Linux)")


def echoes(process: subprocess.Popen, timeout: float = 10) -> bool:
    """Whether a ``cat`` echoes a line within ``timeout``: a stopped one never does (its SIGSTOP,
    pending since before the line, is taken before it reads)."""
    process.stdin.write(b"ping\n")
    process.stdin.flush()
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    return bool(ready) and process.stdout.readline() == b"ping\n"


def test_frozen_lets_go_the_processes_it_stopped_when_a_later_one_is_already_gone():
    alive = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    gone = subprocess.Popen(["sleep", "60"])
    gone.kill()
    gone.wait()  # reaped: its pid names no process now
    try:
        with pytest.raises(ProcessLookupError):
            with frozen([alive.pid, gone.pid]):
                pass
        assert echoes(alive), "left stopped"
    finally:
        alive.kill()
        alive.wait()


def test_frozen_stops_the_processes_for_the_block_only():
    process = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        with frozen([process.pid]):
            eventually(lambda: process_state(process.pid) == "T", what="the process stopped")
        assert echoes(process), "left stopped"
    finally:
        process.kill()
        process.wait()


def test_eventually_returns_the_first_true_answer_of_its_condition():
    answers = iter([None, 0, {"status": "completed"}, {"status": "later"}])
    assert eventually(lambda: next(answers), timeout=5) == {"status": "completed"}


def test_eventually_times_out_naming_the_last_state_a_callable_describes():
    seen = []

    def never() -> bool:
        seen.append(len(seen))
        return False

    with pytest.raises(AssertionError, match=r"^timed out waiting for the task after (\d+) reads$") as timed_out:
        eventually(never, timeout=0.3, what=lambda: f"the task after {len(seen)} reads")
    assert timed_out.match(rf"after {len(seen)} reads")


def test_process_gone_once_a_process_has_ended_reaped_or_not():
    process = subprocess.Popen(["sleep", "60"])
    assert not process_gone(process.pid)
    process.kill()
    eventually(lambda: process_gone(process.pid), what="the killed process seen gone before its reaping")
    process.wait()
    assert process_gone(process.pid)


def test_piece_rewrites_notes_a_finished_piece_saved_again_and_only_those(tmp_path):
    store = PieceStore(tmp_path / "pieces" / "plan")
    pieces = [Piece(index, first_pts=0, frames=24, encoder="libx264") for index in range(3)]
    for piece in pieces[:2]:
        store.save(b"finished", piece)
    store.path(2).write_bytes(b"no record yet")  # cut before its record: not finished, made again
    watch = PieceRewrites(tmp_path / "pieces")
    store.save(b"made again", pieces[2])
    watch.look()
    assert len(watch.found) == 4 and not watch.rewritten
    store.save(b"remade", pieces[1])
    watch.look()
    assert watch.rewritten == {"plan/00001.json", "plan/00001.mp4"}
