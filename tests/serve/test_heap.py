"""A replica hands its freed memory back to the system when its last call ends."""

import asyncio
import os
import subprocess
import sys

import pytest

from tests.helpers import REPO
from tmlsr_ray.serve.heap import IdleRelease, return_free_heap

FRAGMENTED = """
import threading
import numpy as np
from tmlsr_ray.serve.heap import return_free_heap

def resident_mb():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20

def frames():  # 3 MB frame buffers in each thread's own heap, freed, each with a small block kept after it
    together.wait()  # all alive at once, so each has an arena: on a loaded machine a late thread took a done one's
    buffers = []
    for i in range(40):
        buffers.append(np.ones(3_000_000 // 8 + i))
        kept.append(np.ones(2000))
    together.wait()
    del buffers

np.ones(4_000_000 // 8)  # a freed 4 MB buffer makes glibc serve later ones from the heap, as in a replica
kept = []
together = threading.Barrier(4)
threads = [threading.Thread(target=frames) for _ in range(4)]
[t.start() for t in threads]
[t.join() for t in threads]
before = resident_mb()
print(before, resident_mb() if return_free_heap() else before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux") or not return_free_heap(), reason="glibc's malloc_trim")
def test_the_heap_freed_by_frame_buffers_goes_back_to_the_system():
    result = subprocess.run([sys.executable, "-c", FRAGMENTED], capture_output=True, text=True, timeout=60,
                            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    before, after = map(float, result.stdout.split())
    assert before - after > 200, (before, after)  # the 480 MB freed stayed resident


def test_the_heap_is_released_once_no_call_has_run_for_a_moment():
    released = []
    idle = IdleRelease(lambda: released.append(True), delay_s=0.2)

    async def calls():
        with idle.working():
            with idle.working():  # a second call in flight
                pass
            await asyncio.sleep(0.3)
            in_flight = len(released)  # nothing while the first still runs
        with idle.working():  # another call soon after: still nothing
            await asyncio.sleep(0.1)
        soon_after = len(released)
        for _ in range(100):  # then, 0.2 s later, once (in a thread of its own)
            await asyncio.sleep(0.05)
            if released:
                break
        return in_flight, soon_after, len(released)

    assert asyncio.run(calls()) == (0, 0, 1)


def test_the_heap_is_released_after_a_call_that_failed():
    released = []
    idle = IdleRelease(lambda: released.append(True), delay_s=0.01)

    async def failing():
        try:
            with idle.working():
                raise ValueError("the model failed")
        finally:
            await asyncio.sleep(0.2)

    with pytest.raises(ValueError):
        asyncio.run(failing())
    assert released == [True]
