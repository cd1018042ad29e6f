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
    buffers = []
    for i in range(40):
        buffers.append(np.ones(3_000_000 // 8 + i))
        kept.append(np.ones(2000))
    del buffers

np.ones(4_000_000 // 8)  # a freed 4 MB buffer makes glibc serve later ones from the heap, as in a replica
kept = []
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


def test_the_heap_is_released_once_the_last_call_in_flight_ends():
    released = []
    idle = IdleRelease(lambda: released.append(True))

    async def calls():
        first_in, second_out = asyncio.Event(), asyncio.Event()

        async def first():
            async with idle.working():
                first_in.set()
                await second_out.wait()
            return len(released)

        async def second():
            await first_in.wait()
            async with idle.working():
                pass
            ended_while_first_ran = len(released)
            second_out.set()
            return ended_while_first_ran

        return await asyncio.gather(first(), second())

    # the second call ended while the first ran: nothing released; the first ended last: released once
    assert asyncio.run(calls()) == [1, 0] and released == [True]


def test_the_heap_is_released_after_a_call_that_failed():
    released = []
    idle = IdleRelease(lambda: released.append(True))

    async def failing():
        async with idle.working():
            raise ValueError("the model failed")

    with pytest.raises(ValueError):
        asyncio.run(failing())
    assert released == [True]
