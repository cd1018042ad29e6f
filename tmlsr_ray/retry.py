"""Trying a flaky call again, with exponential back-off (no Ray, no HTTP): the one loop behind
downloads, webhooks, model replica calls and output uploads. The caller says which failures are
worth another try; any other failure, and a cancel, goes straight through."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Awaitable, Callable, Optional, Tuple, Type, TypeVar, Union

T = TypeVar("T")
Retryable = Union[Type[BaseException], Tuple[Type[BaseException], ...], Callable[[BaseException], bool]]


@dataclass(frozen=True)
class Backoff:
    """``attempts`` tries in all; the pause after failed try ``n`` is ``base_s × 2^(n-1)``, at most ``cap_s``."""

    attempts: int
    base_s: float = 1.0
    cap_s: float = 60.0

    def pause_s(self, failed: int) -> float:
        return min(self.base_s * 2 ** (failed - 1), self.cap_s)

    def pause_after(self, failed: int, error: BaseException) -> float:
        """The back-off's pause, or the longer one the failure asks for (a server's Retry-After,
        as ``error.retry_after_s``), at most ``cap_s``."""
        asked = min(getattr(error, "retry_after_s", 0.0), self.cap_s)
        return max(self.pause_s(failed), asked)


class TryAgain(Exception):
    """A failure worth another try; ``retry_after_s`` is the pause its server asked for."""

    def __init__(self, message: str, retry_after_s: float = 0.0):
        super().__init__(message)
        self.retry_after_s = retry_after_s


def retry_after_s(value: Optional[str]) -> float:
    """A Retry-After header's pause (seconds, or an HTTP date); 0 when absent or unreadable."""
    if not value:
        return 0.0
    seconds = value.strip()
    if seconds.isascii() and seconds.isdigit():  # str.isdigit() alone takes ², which float() refuses
        return float(seconds)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: a year past C's int
        return 0.0
    when = when if when.tzinfo else when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


class RetriesExhausted(Exception):
    """Every try failed with a retryable error; ``last`` is the last one (also the ``__cause__``)."""

    def __init__(self, attempts: int, last: BaseException):
        super().__init__(attempts, last)  # every value in args: it pickles across processes
        self.attempts = attempts
        self.last = last

    def __str__(self) -> str:
        return f"failed after {self.attempts} attempts: {self.last}"


def _never(number: int, error: BaseException) -> None:
    pass


async def retry(attempt: Callable[[], Awaitable[T]], backoff: Backoff, retryable: Retryable,
                on_retry: Callable[[int, BaseException], None] = _never) -> T:
    """Awaits ``attempt()`` until it succeeds, a failure is not ``retryable`` (raised as it is), or
    ``backoff.attempts`` tries failed (:class:`RetriesExhausted`). ``on_retry(n, error)`` runs
    after failed try ``n`` when another follows; the pause before it is :meth:`Backoff.pause_after`."""
    worth_retrying = _as_predicate(retryable)
    for number in range(1, backoff.attempts + 1):
        try:
            return await attempt()
        except Exception as error:
            if not worth_retrying(error):
                raise
            if number == backoff.attempts:
                raise RetriesExhausted(number, error) from error
            on_retry(number, error)
            await asyncio.sleep(backoff.pause_after(number, error))
    raise ValueError(f"a back-off needs at least one attempt, not {backoff.attempts}")


def _as_predicate(retryable: Retryable) -> Callable[[BaseException], bool]:
    if isinstance(retryable, type) or isinstance(retryable, tuple):
        return lambda error: isinstance(error, retryable)
    return retryable
