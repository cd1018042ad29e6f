"""The one retry loop: what it retries, how long it pauses, what it raises when the tries are spent."""

import asyncio

import pytest

from tmlsr_ray.retry import Backoff, RetriesExhausted, retry, retry_after_s

QUICK = Backoff(attempts=4, base_s=0.001)


class Flaky:
    """Fails with ``error`` the first ``failures`` times it is called, then answers ``"done"``."""

    def __init__(self, failures: int, error: Exception):
        self.calls, self._failures, self._error = 0, failures, error

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self._failures:
            raise self._error
        return "done"


def test_retryable_failures_are_tried_again_and_the_hook_hears_each_one():
    flaky, heard = Flaky(2, ConnectionError("reset")), []
    result = asyncio.run(retry(flaky, QUICK, ConnectionError, lambda n, e: heard.append((n, str(e)))))
    assert result == "done" and flaky.calls == 3 and heard == [(1, "reset"), (2, "reset")]


def test_a_failure_that_is_not_retryable_goes_straight_through():
    flaky = Flaky(1, ValueError("bad input"))
    with pytest.raises(ValueError, match="bad input"):
        asyncio.run(retry(flaky, QUICK, ConnectionError))
    assert flaky.calls == 1


def test_spent_tries_raise_retries_exhausted_with_the_last_error_as_cause():
    flaky = Flaky(10, TimeoutError("no answer"))
    with pytest.raises(RetriesExhausted, match="failed after 4 attempts: no answer") as caught:
        asyncio.run(retry(flaky, QUICK, (ConnectionError, TimeoutError)))
    assert flaky.calls == 4 and caught.value.attempts == 4 and caught.value.__cause__ is caught.value.last


def test_a_predicate_decides_what_is_retryable():
    transient = Flaky(1, OSError(503, "busy"))
    assert asyncio.run(retry(transient, QUICK, lambda e: getattr(e, "errno", None) == 503)) == "done"
    refused = Flaky(1, OSError(403, "refused"))
    with pytest.raises(OSError, match="refused"):
        asyncio.run(retry(refused, QUICK, lambda e: getattr(e, "errno", None) == 503))


def test_pauses_double_after_each_failed_try_up_to_the_cap():
    backoff = Backoff(attempts=8, base_s=1.0, cap_s=10.0)
    assert [backoff.pause_s(n) for n in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


class Busy(Exception):
    retry_after_s = 0.3


def test_a_failure_that_asks_for_a_longer_pause_gets_it_up_to_the_cap():
    import time

    start = time.monotonic()
    assert asyncio.run(retry(Flaky(1, Busy()), QUICK, Busy)) == "done"
    assert time.monotonic() - start >= 0.3
    capped = Backoff(attempts=2, base_s=0.001, cap_s=0.05)
    start = time.monotonic()
    assert asyncio.run(retry(Flaky(1, Busy()), capped, Busy)) == "done"
    assert time.monotonic() - start < 0.25


@pytest.mark.parametrize("header, pause", [("12", 12.0), (" 7 ", 7.0), ("999999999", 999999999.0),
                                           ("²", 0.0), ("１２", 0.0), ("-5", 0.0), ("1.5", 0.0), ("soon", 0.0),
                                           ("Mon, 01 Jan 99999999999 00:00:00 GMT", 0.0)])
def test_a_retry_after_is_read_as_ascii_seconds_or_else_asks_for_no_pause(header, pause):
    """A server can send anything: a digit str.isdigit() accepts but float() does not (²) raised
    ValueError out of a download and out of a webhook delivery that must never raise, and a date
    of a year past C's int an OverflowError."""
    assert retry_after_s(header) == pause
