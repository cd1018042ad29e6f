"""Finished pieces of a video task, kept where a later attempt at the task finds them (no Ray here).

A piece counts as finished once its record (``NNNNN.json``) exists: the record is written after
the piece's bytes, each through a rename, so a crash leaves either a whole piece or none. The
folder is named after the plan's fingerprint: an attempt with another plan (another input, other
settings) starts a folder of its own and never reuses pieces that do not fit.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Dict, Iterator, Tuple

from tmlsr_ray.piece import Piece


class PieceStore:
    def __init__(self, root: Path):
        self.root = root

    def finished(self) -> Dict[int, Piece]:
        pieces: Dict[int, Piece] = {}
        for record in sorted(self.root.glob("*.json")):
            try:
                piece = Piece(**json.loads(record.read_text()))
            except (ValueError, TypeError):
                continue  # unreadable record: the piece is made again
            if self.path(piece.index).exists():
                pieces[piece.index] = piece
        return pieces

    def save(self, data: bytes, piece: Piece) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        _write_atomically(self.path(piece.index), data)
        _write_atomically(self.root / f"{piece.index:05d}.json", json.dumps(asdict(piece)).encode())

    def path(self, index: int) -> Path:
        return self.root / f"{index:05d}.mp4"

    def in_order(self, pieces: Dict[int, Piece]) -> Iterator[Tuple[Path, Piece]]:
        for index in sorted(pieces):
            yield self.path(index), pieces[index]

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _write_atomically(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(partial, path)
