"""The shared test builders' own behaviour, where a fault in one would hang or fool the tests using it."""

from __future__ import annotations

import select
import subprocess
from pathlib import Path

import pytest

from tests.helpers import eventually, frozen

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc (Linux)")


def process_state(pid: int) -> str:
    """The state letter of /proc/<pid>/stat: T for a stopped process."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


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
