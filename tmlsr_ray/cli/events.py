"""Server-sent events as ``GET /tasks/{id}/events`` sends them: ``field: value`` lines, a blank
line ends an event, lines starting with ``:`` are comments (the heartbeats)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import List, Optional

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class Event:
    kind: str  # the ``event:`` field; "message" when the event names none
    data: str
    id: Optional[str] = None


class EventStreamParser:
    """Events out of the stream's text, fed in chunks cut anywhere (inside a line, or between the
    two halves of a CRLF)."""

    def __init__(self) -> None:
        self._buffer = ""
        self._fields: dict = {}

    def feed(self, chunk: str) -> List[Event]:
        text = self._buffer + chunk
        cut = len(text) - 1 if text.endswith("\r") else len(text)  # maybe the first half of a CRLF
        *lines, rest = _LINE_BREAK.split(text[:cut])
        self._buffer = rest + text[cut:]
        events = []
        for line in lines:
            event = self._line(line)
            if event is not None:
                events.append(event)
        return events

    def _line(self, line: str) -> Optional[Event]:
        if not line:
            fields, self._fields = self._fields, {}
            if "data" not in fields:
                return None
            return Event(kind=fields.get("event") or "message", data=fields["data"], id=fields.get("id"))
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data" and "data" in self._fields:
            value = self._fields["data"] + "\n" + value
        if name in ("data", "event", "id"):
            self._fields[name] = value
        return None
