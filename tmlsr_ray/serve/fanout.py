"""Fan a video's segments out across the model replicas with a bounded window, and retry calls
whose replica died or stalled.

Memory stays flat whatever the video's length: at most ``window`` segments are in flight, each as
compressed packets one way and a compressed piece the other, and the packet reader runs at most
``window`` segments ahead.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from typing import Any, AsyncIterator, Awaitable, Callable, Iterator, List, Tuple

from ray.exceptions import RayActorError

from tmlsr_ray.piece import Piece
from tmlsr_ray.errors import TaskError
from tmlsr_ray.pipeline.render import SegmentJob
from tmlsr_ray.retry import Backoff, RetriesExhausted, retry

logger = logging.getLogger("ray.serve")
_DONE = object()


async def iterate_in_thread(make_iterator: Callable[[], Iterator[Any]], maxsize: int,
                            stop: threading.Event) -> AsyncIterator[Any]:
    """Runs a blocking iterator (the decoder) in its own thread, at most ``maxsize`` items ahead."""
    items: "queue.Queue[Any]" = queue.Queue(maxsize)

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in make_iterator():
                if not put(item):
                    return
            put(_DONE)
        except BaseException as exc:  # handed to the consumer, raised there
            put(exc)

    def get() -> Any:
        while True:
            try:
                return items.get(timeout=0.1)
            except queue.Empty:
                if stop.is_set():
                    return _DONE

    threading.Thread(target=produce, name="decode", daemon=True).start()
    try:
        while True:
            item = await asyncio.to_thread(get)
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()  # the consumer is gone: the producer thread ends at its next step


class SegmentFanout:
    """Runs a video's segments on the model replicas, at most ``window`` at once (so N replicas
    work on N segments or more, and several tasks share them: each task holds its own window).

    A segment whose replica dies or stalls runs again from its start, on whichever replica Serve
    picks; the frames it had reported are taken back from the progress."""

    def __init__(self, start: Callable[[SegmentJob, bytes], Any], window: int, timeout_s: float, attempts: int,
                 on_retry: Callable[[], None] = lambda: None):
        self._start = start  # (job, packets) -> DeploymentResponseGenerator of render_segment
        self._window = window
        self._timeout_s = timeout_s
        self._attempts = attempts
        self._on_retry = on_retry
        self.retries = 0
        # Compressed bytes through the object store: packets out (once per try), pieces back.
        self.transfer_bytes = {"to_replicas": 0, "from_replicas": 0}

    @property
    def window(self) -> int:
        return self._window

    async def run(self, work: AsyncIterator[Tuple[SegmentJob, bytes]],
                  on_frames: Callable[[int], Awaitable[None]],
                  on_piece: Callable[[bytes, Piece], Awaitable[None]]) -> None:
        slots = asyncio.Semaphore(self._window)
        running: List[asyncio.Future] = []
        try:
            async for job, data in work:
                await slots.acquire()
                _raise_first_error(running)
                task = asyncio.ensure_future(self._segment(job, data, on_frames, on_piece))
                task.add_done_callback(lambda _: slots.release())
                running.append(task)
            await asyncio.gather(*running)
        finally:
            for task in running:  # a cancel or an error: nothing more is needed from these
                task.cancel()
            if running:
                await asyncio.gather(*running, return_exceptions=True)

    async def _segment(self, job: SegmentJob, data: bytes, on_frames, on_piece) -> None:
        async def attempt():
            return await self._stream(job, data, on_frames)
        try:
            encoded, piece = await with_retries(attempt, self._attempts, self._count_retry)
        except ReplicaFailure as exc:
            raise TaskError(f"segment {job.segment.index} of the video failed: {exc}") from exc
        await on_piece(encoded, piece)

    async def _stream(self, job: SegmentJob, data: bytes, on_frames) -> Tuple[bytes, Piece]:
        responses = self._start(job, data)
        self.transfer_bytes["to_replicas"] += len(data)
        reported = 0
        try:
            while True:
                try:
                    item = await asyncio.wait_for(responses.__anext__(), self._timeout_s)
                except StopAsyncIteration:
                    raise TaskError(f"segment {job.segment.index} ended without its piece") from None
                if isinstance(item, int):
                    reported += item
                    await on_frames(item)
                else:
                    self.transfer_bytes["from_replicas"] += len(item[0])
                    return item
        except BaseException:
            responses.cancel()
            if reported:
                await on_frames(-reported)
            raise

    def _count_retry(self) -> None:
        self.retries += 1
        self._on_retry()


def _raise_first_error(tasks: List[asyncio.Future]) -> None:
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise task.exception()


class ReplicaFailure(TaskError):
    pass


REPLICA_FAULTS = (RayActorError, asyncio.TimeoutError)  # a dead replica, a stalled one


async def with_retries(attempt: Callable[[], Awaitable[Any]], attempts: int,
                       on_retry: Callable[[], None] = lambda: None, backoff_s: float = 1.0) -> Any:
    """Serve does not retry a request whose replica died, nor one that hangs: retry it here, after a
    pause that lets the controller replace the replica (measured: about 2 s)."""
    def retrying(number: int, error: BaseException) -> None:
        logger.warning("model replica call failed on attempt %d (%s)", number, type(error).__name__)
        on_retry()
    try:
        return await retry(attempt, Backoff(attempts, backoff_s, cap_s=10.0), REPLICA_FAULTS, retrying)
    except RetriesExhausted as exc:
        raise ReplicaFailure(f"the model replicas failed {attempts} times ({type(exc.last).__name__})") from exc


async def call_with_retry(make_call: Callable[[], Any], attempts: int, timeout_s: float,
                          on_retry: Callable[[], None] = lambda: None, backoff_s: float = 1.0) -> Any:
    """One replica call (an image, a model description), retried as :func:`with_retries` says."""
    async def attempt():
        response = make_call()
        try:
            return await asyncio.wait_for(_awaited(response), timeout_s)
        except BaseException:
            response.cancel()
            raise
    return await with_retries(attempt, attempts, on_retry, backoff_s)


async def _awaited(response: Any) -> Any:
    return await response
