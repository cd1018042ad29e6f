"""A replica's freed memory handed back to the system when the replica goes idle.

glibc keeps what large frame buffers freed in each thread's heap for the next allocation, so an
Upscaler replica stayed near its peak after a job (1.4 GB resident after two 640x360 -> 1280x720
videos, 1.0 GB with this; about 0.6 GB idle), memory the node's other replicas and the object
store could have used.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import functools
from typing import Callable, Iterator, Optional


@functools.lru_cache(maxsize=1)
def _malloc_trim() -> Optional[Callable[[int], int]]:
    """glibc's ``malloc_trim``; None where the C library has none (musl, macOS)."""
    name = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
    except OSError:
        return None


def return_free_heap() -> bool:
    """Hands the free pages of every thread's heap back to the system; True where it could."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


class IdleRelease:
    """Counts the calls a replica has in flight; once none has run for ``delay_s``, the free heap
    goes back. Off the calls' path (a trim of 2 GB takes about 70 ms), and not between calls that
    follow each other, which would only fault the same memory in again."""

    def __init__(self, release: Callable[[], object] = return_free_heap, delay_s: float = 2.0):
        self._busy = 0
        self._release = release
        self._delay_s = delay_s
        self._timer: Optional[asyncio.TimerHandle] = None

    @contextlib.contextmanager
    def working(self) -> Iterator[None]:
        """Wraps one call; runs in the replica's event loop."""
        self._busy += 1
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        try:
            yield
        finally:
            self._busy -= 1
            if not self._busy:
                self._timer = asyncio.get_running_loop().call_later(self._delay_s, self._release_now)

    def _release_now(self) -> None:
        self._timer = None
        asyncio.get_running_loop().run_in_executor(None, self._release)
