"""Waiting for an event in tests: what a wait returns, what a timed-out one says, what importing costs."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers import REPO
from tests.waiting import eventually


def test_eventually_returns_the_first_true_answer_of_its_condition():
    answers = iter([None, 0, {"status": "completed"}, {"status": "later"}])
    assert eventually(lambda: next(answers), timeout=5) == {"status": "completed"}


def test_eventually_times_out_naming_the_last_state_a_callable_describes():
    seen = []

    def never() -> bool:
        seen.append(len(seen))
        return False

    with pytest.raises(AssertionError, match=r"^timed out after 0.3 s waiting for the task after (\d+) reads;") as timed_out:
        eventually(never, timeout=0.3, what=lambda: f"the task after {len(seen)} reads")
    assert timed_out.match(rf"after {len(seen)} reads; last seen: False$")


def test_eventually_returns_the_first_answer_its_until_holds_for_and_times_out_saying_the_last():
    answers = iter([{"status": "pending"}, {"status": "processing"}, {"status": "completed"}])
    assert eventually(lambda: next(answers), 5, until=lambda task: task["status"] != "pending") == {
        "status": "processing"}
    with pytest.raises(AssertionError, match=r"waiting for the task ended; last seen: \{'status': 'processing'\}$"):
        eventually(lambda: {"status": "processing"}, 0.3, "the task ended", until=lambda task: task["status"] == "ended")


def test_the_waiting_module_loads_no_torch_for_the_driver_scripts_that_import_it():
    loaded = subprocess.run([sys.executable, "-c", "import sys, tests.waiting; print('torch' in sys.modules)"],
                            capture_output=True, text=True, cwd=REPO, check=True)
    assert loaded.stdout.strip() == "False"
