"""The record of a finished piece of a video, beside its bytes: written by the media code that
encodes it, kept by the piece stores, joined by the runner (a leaf module all of them import)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Piece:
    """What a finished piece is, beside its bytes: the first presentation time it encodes (an MP4's
    edit list can shift what a demuxer reports; :func:`assemble` puts it back), its frame count,
    the encoder that made it, the source's packets its decoder could not read (left out) and the
    frames that show the frame before in place of one it did not give."""

    index: int
    first_pts: int
    frames: int
    encoder: str
    damaged_packets: int = 0
    repeated_frames: int = 0
