"""The request headers the task routes read, as plain values; a bad value is an
``InvalidRequest`` that names the header."""

from __future__ import annotations

import re
from typing import Optional

from tmlsr_ray.errors import InvalidRequest
from tmlsr_ray.protocol import MAX_DEADLINE_S, MAX_PREFER_WAIT_S

_SECONDS = re.compile(r"[0-9]{1,9}(\.[0-9]{1,9})?")
_DURATION = re.compile(r"([0-9]{1,9}(\.[0-9]{1,9})?[hms])+")
_TERM = re.compile(r"([0-9.]+)([hms])")
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0}
_WHOLE = re.compile(r"[0-9]{1,18}")
_DIGITS = re.compile(r"[0-9]+")


def cancel_after_s(value: Optional[str]) -> Optional[float]:
    """``Cancel-After: 30s`` (or ``5m``, ``1h``, ``1h30m``, plain seconds ``90``) in seconds."""
    if value is None:
        return None
    text = value.strip().lower()
    if _SECONDS.fullmatch(text):
        seconds = float(text)
    elif _DURATION.fullmatch(text):
        seconds = sum(float(number) * _UNIT_S[unit] for number, unit in _TERM.findall(text))
    else:
        raise InvalidRequest(f"Cancel-After: {value[:40]!r} is not a duration (30s, 5m, 1h, or seconds)")
    if not 0 < seconds <= MAX_DEADLINE_S:
        raise InvalidRequest(f"Cancel-After: must be more than 0 and at most {MAX_DEADLINE_S:g} seconds")
    return seconds


def prefer_wait_s(value: Optional[str]) -> Optional[int]:
    """The ``wait`` preference of a ``Prefer`` header (RFC 7240, e.g. ``respond-async, wait=10``)
    in seconds, at most ``MAX_PREFER_WAIT_S`` (a longer wait is shortened to it, as the RFC lets a
    server honour a preference in part); ``None`` without one. Other preferences are ignored."""
    for preference in (value or "").split(","):
        name, _, raw = preference.split(";")[0].partition("=")
        if name.strip().lower() == "wait":
            raw = raw.strip().strip('"')
            if not _DIGITS.fullmatch(raw):
                raise InvalidRequest(f"Prefer: wait={raw[:40]!r} is not a whole number of seconds")
            return MAX_PREFER_WAIT_S if len(raw.lstrip("0")) > 9 else min(int(raw), MAX_PREFER_WAIT_S)
    return None


def last_event_id(value: Optional[str]) -> Optional[int]:
    """The revision a reconnecting event stream saw last."""
    if value is None:
        return None
    if not _WHOLE.fullmatch(value.strip()):
        raise InvalidRequest(f"Last-Event-ID: {value[:40]!r} is not an id this stream sent (an integer)")
    return int(value)
