"""The shared test builders' own behaviour, where a fault in one would hang or fool the tests using it."""

from __future__ import annotations

import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests import helpers
from tests.helpers import (PieceRewrites, cpu_seconds, eventually, frozen, process_gone, process_state,
                           stop_past_frozen)
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


def sleeper() -> subprocess.Popen:
    return subprocess.Popen(["sleep", "60"])


def test_stop_past_frozen_passes_over_a_frozen_process_reaped_between_its_check_and_its_kill(monkeypatch):
    """Serve may kill and reap a replica it gave up on during the stop: the kill of a pid seen alive
    just before raised ProcessLookupError (or could have hit another process given that pid)."""
    runner, frozen_one = sleeper(), sleeper()
    seen_gone = helpers.process_gone
    monkeypatch.setattr(helpers, "process_gone", lambda pid: pid != frozen_one.pid and seen_gone(pid))

    def stop():  # Serve's: every replica killed and reaped
        for process in (runner, frozen_one):
            process.kill()
            process.wait()

    stop_past_frozen(stop, [runner.pid], [frozen_one.pid])
    assert frozen_one.returncode == -signal.SIGKILL


def test_stop_past_frozen_kills_the_frozen_processes_once_the_runners_are_gone():
    runner, frozen_one = sleeper(), sleeper()
    try:
        stop_past_frozen(runner.kill, [runner.pid], [frozen_one.pid])
        assert frozen_one.wait(timeout=10) == -signal.SIGKILL
    finally:
        runner.wait()
        frozen_one.kill()
        frozen_one.wait()


def test_process_gone_once_a_process_has_ended_reaped_or_not():
    process = subprocess.Popen(["sleep", "60"])
    assert not process_gone(process.pid)
    process.kill()
    eventually(lambda: process_gone(process.pid), what="the killed process seen gone before its reaping")
    process.wait()
    assert process_gone(process.pid)


def test_cpu_seconds_grow_while_a_process_works_and_not_while_it_sleeps():
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    idle = sleeper()
    try:
        idle_before = cpu_seconds(idle.pid)
        eventually(lambda: cpu_seconds(busy.pid), 30, "the busy process's CPU time", until=lambda spent: spent >= 0.2)
        assert cpu_seconds(idle.pid) - idle_before < 0.05
    finally:
        for process in (busy, idle):
            process.kill()
            process.wait()


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
