"""The request headers of the task routes: Cancel-After, Prefer: wait, Last-Event-ID."""

import pytest

from tmlsr_ray.errors import InvalidRequest
from tmlsr_ray.serve.headers import cancel_after_s, last_event_id, prefer_wait_s


@pytest.mark.parametrize("value,seconds", [("30s", 30), ("5m", 300), ("1h", 3600), ("1h30m", 5400),
                                           ("90", 90), ("2.5", 2.5), (" 10S ", 10), ("0.5m", 30)])
def test_cancel_after_takes_units_or_plain_seconds(value, seconds):
    assert cancel_after_s(value) == seconds


@pytest.mark.parametrize("value", ["", "soon", "-5s", "0", "0s", "5d", "1e3", "5 m", "31000000", "inf"])
def test_cancel_after_refuses_what_is_not_a_positive_duration_naming_the_header(value):
    with pytest.raises(InvalidRequest, match="^Cancel-After: "):
        cancel_after_s(value)


@pytest.mark.parametrize("value,seconds", [(None, None), ("wait=5", 5), ("respond-async, wait=10", 10),
                                           ("WAIT = 3", 3), ('wait="7"', 7), ("wait=0", 0), ("wait=3600", 60),
                                           ("return=minimal", None), ("wait=5; x=y", 5),
                                           ("wait=" + "9" * 40, 60), ("wait=" + "0" * 19 + "1", 1)])
def test_prefer_wait_is_read_among_other_preferences_and_clamped_to_sixty(value, seconds):
    assert prefer_wait_s(value) == seconds


@pytest.mark.parametrize("value", ["wait=", "wait=-1", "wait=1.5", "wait=soon", "wait=1e3"])
def test_prefer_wait_refuses_a_wait_that_is_not_whole_seconds(value):
    with pytest.raises(InvalidRequest, match="^Prefer: "):
        prefer_wait_s(value)


def test_last_event_id_is_the_integer_a_stream_sent():
    assert last_event_id(None) is None and last_event_id("17") == 17
    with pytest.raises(InvalidRequest, match="^Last-Event-ID: "):
        last_event_id("seventeen")
