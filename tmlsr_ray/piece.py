"""The record of a finished piece of a video, beside its bytes: written by the media code that
encodes it, kept by the piece stores, joined by the runner (a leaf module all of them import)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Piece:
    """What a finished piece is, beside its bytes: the first presentation time it encodes (an MP4's
    edit list can shift what a demuxer reports; :func:`assemble` puts it back), its frame count
    and the encoder that made it."""

    index: int
    first_pts: int
    frames: int
    encoder: str
