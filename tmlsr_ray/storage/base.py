"""The protocol every output store implements, and storing an output with retries (no Ray, no HTTP)."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import List, Protocol

from tmlsr_ray.errors import StorageError
from tmlsr_ray.retry import Backoff, RetriesExhausted, retry

logger = logging.getLogger(__name__)


def output_key(task_id: str, name: str, attempt: int = 1, now: float | None = None) -> str:
    """``YYYY/MM/DD/TASK_ID/NAME``: outputs grouped by day, one folder per task. A later attempt's
    name says which (``output-2.mp4``): a run given up on that stores after all must not overwrite,
    nor its cleanup remove, the output of the attempt that replaced it."""
    day = time.strftime("%Y/%m/%d", time.gmtime(now if now is not None else time.time()))
    if attempt > 1:
        stem, dot, suffix = name.rpartition(".")
        name = f"{stem}-{attempt}.{suffix}" if dot else f"{name}-{attempt}"
    return f"{day}/{task_id}/{name}"


class OutputStorage(Protocol):
    def put(self, key: str, source: Path, content_type: str) -> str:
        """Stores the file ``source`` under ``key`` (the file may be moved); returns the URL to
        hand out: absolute, or service-relative (``/…``) for stores the service itself serves.
        One try: a store that can fail for a while raises :class:`StorageError` with ``transient``."""
        ...

    def abandon(self, key: str, source: Path) -> None:
        """Removes whatever failed puts of ``source`` under ``key`` left behind (a partial file, an
        unfinished multipart upload, an object a timed-out request did write)."""
        ...

    def location(self, key: str) -> str:
        """Where the output of ``key`` is, as the task's record keeps it: :meth:`delete` takes it
        whatever the settings (an OSS bucket and prefix) have become since."""
        ...

    def delete(self, location: str) -> None:
        """Removes a stored output, by its :meth:`location` (or, in records of older versions, its key)."""
        ...


async def store_output(storage: OutputStorage, key: str, source: Path, content_type: str, backoff: Backoff) -> str:
    """Puts an output, asking again with back-off while the store fails transiently; when it
    fails for good, or the task is canceled, nothing of the output stays in the store."""
    puts: List[asyncio.Future] = []

    def put_once() -> asyncio.Future:
        # shielded: a cancel must not leave a put running on in its thread, unwatched, after the
        # store was cleaned (the object landed after the task said canceled)
        puts.append(asyncio.ensure_future(asyncio.to_thread(storage.put, key, source, content_type)))
        return asyncio.shield(puts[-1])

    try:
        return await retry(put_once, backoff, lambda error: isinstance(error, StorageError) and error.transient)
    except BaseException as exc:
        await asyncio.gather(*puts, return_exceptions=True)  # the put in its thread goes on until it ends
        await _abandon(storage, key, source)
        if isinstance(exc, RetriesExhausted):
            raise StorageError(f"upload {exc}") from exc
        raise


async def _abandon(storage: OutputStorage, key: str, source: Path) -> None:
    try:
        await asyncio.to_thread(storage.abandon, key, source)
    except Exception:  # the upload's own error is the one the task reports
        logger.exception("could not remove what a failed upload left under %s", key)
