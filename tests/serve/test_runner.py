"""The runner's own rules, without a service."""

import asyncio
import threading
import time

from tmlsr_ray.serve.runner import finish_in_thread


def test_a_cancel_waits_for_work_in_a_thread_to_finish_before_it_goes_on():
    """A thread cannot be stopped: the join or a piece's save went on writing into the task's
    folder after a cancel's cleanup had removed it, leaving the folder (or a partial output) behind."""
    finished = threading.Event()

    def join():
        time.sleep(0.5)
        finished.set()

    async def scenario():
        work = asyncio.ensure_future(finish_in_thread(join))
        await asyncio.sleep(0.1)
        work.cancel()
        try:
            await work
        except asyncio.CancelledError:
            return finished.is_set()

    assert asyncio.run(scenario()) is True
