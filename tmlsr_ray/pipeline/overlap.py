"""Batches of frames that overlap in time, and the cross-fade that joins their results.

SeedVR2 restores a batch of frames at once; consecutive batches are independent, so a seam can
show between them (flicker). Letting each batch start with the last ``overlap`` frames of the one
before, and cross-fading the two results over those frames, hides it.
"""

from __future__ import annotations

from typing import Iterable, Iterator, List, Tuple

import numpy as np

from tmlsr_ray.pipeline.decode import FrameBatch


def overlapping_batches(batches: Iterable[FrameBatch], size: int, overlap: int) -> Iterator[FrameBatch]:
    """Re-cuts decoded batches into batches of ``size`` frames, each (but the first) starting with
    the last ``overlap`` frames of the previous one; the last batch may be shorter."""
    if not 0 <= overlap < size:
        raise ValueError(f"overlap must be in [0, {size}), got {overlap}")
    frames: List[np.ndarray] = []
    stamps: List[int] = []
    fresh = 0  # frames not yet sent in any batch
    index = 0
    for batch in batches:
        frames.extend(batch.frames)
        stamps.extend(batch.pts)
        fresh += len(batch.pts)
        while len(frames) >= size:
            yield FrameBatch(index, np.stack(frames[:size]), stamps[:size])
            index += 1
            frames, stamps = frames[size - overlap:], stamps[size - overlap:]
            fresh = len(frames) - overlap
    if fresh > 0:
        yield FrameBatch(index, np.stack(frames), stamps)


class CrossFade:
    """Joins the results of :func:`overlapping_batches`: frames come out once each, in order, the
    overlapping ones blended linearly from the earlier batch's result to the later one's."""

    def __init__(self, overlap: int):
        self._overlap = overlap
        self._tail: Tuple[np.ndarray, List[int]] | None = None

    def push(self, frames: np.ndarray, pts: List[int]) -> Tuple[np.ndarray, List[int]]:
        """Takes one batch's result; returns the frames that are final now."""
        if self._tail is not None:
            held = len(self._tail[1])
            frames = frames.copy()
            frames[:held] = _blend(self._tail[0], frames[:held])
        keep = min(self._overlap, len(pts) - 1) if self._overlap else 0
        cut = len(pts) - keep
        self._tail = (frames[cut:], pts[cut:]) if keep else None
        return frames[:cut], pts[:cut]

    def flush(self) -> Tuple[np.ndarray, List[int]]:
        """The frames held back for the next batch, when there is none."""
        tail, self._tail = self._tail, None
        return tail if tail is not None else (np.empty((0,)), [])


def _blend(earlier: np.ndarray, later: np.ndarray) -> np.ndarray:
    count = len(earlier)
    weights = (np.arange(1, count + 1, dtype=np.float32) / (count + 1)).reshape(-1, 1, 1, 1)
    mixed = earlier.astype(np.float32) * (1 - weights) + later.astype(np.float32) * weights
    return mixed.round().astype(later.dtype)
