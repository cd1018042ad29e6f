"""Waiting for an event in tests: no heavy imports, so that a driver script a test starts can wait
the same way without paying for tests.helpers (torch, cv2) at its start."""

from __future__ import annotations

import time
from typing import Callable


def eventually(condition, timeout: float = 15.0, what="the condition", until: Callable = bool, every: float = 0.1):
    """``condition()``'s first answer that ``until`` holds for (by default, its first true one), asked
    ``every`` so many seconds; an AssertionError after ``timeout`` seconds naming ``what`` (or its
    answer, where a callable) and the last answer seen, so that a wait timed out says where it stood."""
    deadline = time.monotonic() + timeout
    while not until(answer := condition()):
        if time.monotonic() > deadline:
            awaited = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout} s waiting for {awaited}; last seen: {answer!r}")
        time.sleep(every)
    return answer
