"""The protocol every output store implements (no Ray, no HTTP)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Protocol


def output_key(task_id: str, name: str, now: float | None = None) -> str:
    """``YYYY/MM/DD/TASK_ID/NAME``: outputs grouped by day, one folder per task."""
    day = time.strftime("%Y/%m/%d", time.gmtime(now if now is not None else time.time()))
    return f"{day}/{task_id}/{name}"


class OutputStorage(Protocol):
    def put(self, key: str, source: Path, content_type: str) -> str:
        """Stores the file ``source`` under ``key`` (the file may be moved); returns the URL to
        hand out: absolute, or service-relative (``/…``) for stores the service itself serves."""
        ...

    def delete(self, key: str) -> None: ...
