"""Local storage: files under the data directory, served by the ingress at ``/files/KEY``."""

from __future__ import annotations

import contextlib
import mimetypes
import os
import shutil
from pathlib import Path
from typing import Optional

from tmlsr_ray.errors import StorageError

FILES_ROUTE = "/files"
# Outputs whose type the system's table may lack (a slim image has no /etc/mime.types, and
# Python's own table has no .mkv): served as text/plain, a browser would not play them.
OUTPUT_MEDIA_TYPES = {".mkv": "video/x-matroska", ".mp4": "video/mp4", ".png": "image/png", ".jpg": "image/jpeg",
                      ".jpeg": "image/jpeg", ".webp": "image/webp"}


def media_type(path: Path) -> str:
    """The Content-Type a stored output is served with."""
    return OUTPUT_MEDIA_TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"


class LocalStorage:
    def __init__(self, root: Path):
        self.root = root.resolve()

    def put(self, key: str, source: Path, content_type: str) -> str:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = _partial(path)
        shutil.move(str(source), partial)  # a rename when both are on one disk, else a copy
        os.replace(partial, path)  # a reader never sees half a file
        return f"{FILES_ROUTE}/{key}"

    def abandon(self, key: str, source: Path) -> None:
        self.delete(key)  # a copy cut short (the disk full), or a put that ended after the cancel

    def location(self, key: str) -> str:
        return key  # below the root, which moves only with the data directory that holds the records

    def delete(self, location: str) -> None:
        if "://" in location:  # stored while the service used OSS: deleting nothing here is no success
            raise StorageError(f"{location} is not in local storage (storage was switched since it was stored)")
        path = self._path(location)
        path.unlink(missing_ok=True)
        _partial(path).unlink(missing_ok=True)  # a copy cut short with its run
        # The task's own folder (YYYY/MM/DD/TASK_ID) goes with its last file: one per task adds up.
        # The day folders stay, since another task may be storing into one right now.
        if path.parent != self.root:
            with contextlib.suppress(OSError):  # not empty, or already gone
                path.parent.rmdir()

    def open_path(self, key: str) -> Optional[Path]:
        """The file for a key taken from a request, or ``None`` if it escapes the root or is missing."""
        try:
            path = self._path(key)
        except ValueError:
            return None
        return path if path.is_file() and not path.name.endswith(".partial") else None

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root) or path == self.root:
            raise ValueError(f"storage key escapes the storage root: {key!r}")
        return path


def _partial(path: Path) -> Path:
    return path.with_name(path.name + ".partial")
