"""Fan batches of frames out across the Upscaler replicas with a bounded window, results in order.

Memory stays flat whatever the video's length: at most ``window`` batches are in flight, the
decoder thread runs at most ``window`` batches ahead, and each result goes to the encoder as soon as
it is next in order.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections import deque
from typing import Any, AsyncIterator, Awaitable, Callable, Deque, Iterator, List, Tuple

import numpy as np
from ray.exceptions import RayActorError

from tmlsr_ray.pipeline.decode import FrameBatch
from tmlsr_ray.pipeline.errors import TaskError

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


class FrameFanout:
    def __init__(self, submit: Callable[[FrameBatch], Any], window: int, timeout_s: float, attempts: int,
                 on_retry: Callable[[], None] = lambda: None):
        self._submit = submit  # batch -> DeploymentResponse of its upscaled frames
        self._window = window
        self._timeout_s = timeout_s
        self._attempts = attempts
        self._on_retry = on_retry
        self.retries = 0

    async def run(self, batches: AsyncIterator[FrameBatch],
                  sink: Callable[[np.ndarray, List[int]], Awaitable[None]]) -> None:
        in_flight: Deque[Tuple[FrameBatch, asyncio.Future]] = deque()
        try:
            async for batch in batches:
                in_flight.append((batch, asyncio.ensure_future(self._upscale(batch))))
                if len(in_flight) >= self._window:
                    await self._deliver_oldest(in_flight, sink)
            while in_flight:
                await self._deliver_oldest(in_flight, sink)
        finally:
            for _, future in in_flight:  # a cancel or an error: nothing more is needed from these
                future.cancel()
            if in_flight:
                await asyncio.gather(*(f for _, f in in_flight), return_exceptions=True)

    async def _deliver_oldest(self, in_flight, sink) -> None:
        batch, future = in_flight[0]
        frames = await future
        in_flight.popleft()
        await sink(frames, batch.pts)

    async def _upscale(self, batch: FrameBatch) -> np.ndarray:
        try:
            return await call_with_retry(lambda: self._submit(batch), self._attempts, self._timeout_s,
                                         on_retry=self._count_retry)
        except ReplicaFailure as exc:
            raise TaskError(f"batch {batch.index} of frames failed: {exc}") from exc

    def _count_retry(self) -> None:
        self.retries += 1
        self._on_retry()


class ReplicaFailure(TaskError):
    pass


async def call_with_retry(make_call: Callable[[], Any], attempts: int, timeout_s: float,
                          on_retry: Callable[[], None] = lambda: None, backoff_s: float = 1.0) -> Any:
    """Serve does not retry a request whose replica died, nor one that hangs: retry it here, after a
    pause that lets the controller replace the replica (measured: about 2 s)."""
    last_error: Exception | None = None
    for attempt in range(attempts):
        if attempt:
            on_retry()
            await asyncio.sleep(min(backoff_s * 2 ** (attempt - 1), 10.0))
        response = make_call()
        try:
            return await asyncio.wait_for(_awaited(response), timeout_s)
        except asyncio.CancelledError:
            response.cancel()
            raise
        except (RayActorError, asyncio.TimeoutError) as exc:
            response.cancel()
            last_error = exc
            logger.warning("upscaler call failed on attempt %d (%s)", attempt + 1, type(exc).__name__)
    raise ReplicaFailure(f"the upscaler replicas failed {attempts} times ({type(last_error).__name__})")


async def _awaited(response: Any) -> Any:
    return await response
