"""Progress of a frame loop: frames done, total, current speed and time left (no Ray here)."""

from __future__ import annotations

import time
from collections import deque
from typing import Any, Callable, Deque, Dict, Mapping, Optional, Tuple


class FrameProgress:
    """Speed is measured over the last ``window_s`` seconds, so it follows the current pace."""

    def __init__(self, total: int, window_s: float = 5.0, clock: Callable[[], float] = time.monotonic,
                 done: int = 0):
        self.total = total
        self.done = done  # frames an earlier attempt finished count as done, not as speed
        self._clock = clock
        self._window_s = window_s
        self._samples: Deque[Tuple[float, int]] = deque([(clock(), done)])

    def advance(self, frames: int) -> None:
        self.done += frames
        now = self._clock()
        self._samples.append((now, self.done))
        while len(self._samples) > 2 and now - self._samples[1][0] > self._window_s:
            self._samples.popleft()

    @property
    def fps(self) -> float:
        """Frames gained per second; never below 0, though a retried segment takes frames back."""
        (t0, f0), (t1, f1) = self._samples[0], self._samples[-1]
        return max(0.0, (f1 - f0) / (t1 - t0)) if t1 > t0 else 0.0

    def snapshot(self) -> Dict[str, Optional[float]]:
        total = max(self.total, self.done)  # the container's count is a hint, decoding is the truth
        fps = self.fps
        eta = (total - self.done) / fps if fps > 0 else None
        return {"frames_done": self.done, "frames_total": total, "fps": round(fps, 2),
                "eta_s": round(eta, 1) if eta is not None else None}


class SegmentProgress(FrameProgress):
    """Frames and segments of a video cut into segments; pieces an earlier attempt finished are
    done from the start (``reused``)."""

    def __init__(self, plan, finished: Mapping[int, Any], **kwargs):
        reused_frames = sum(piece.frames for piece in finished.values())
        super().__init__(plan.frames, done=reused_frames, **kwargs)
        self.segments_total = len(plan.segments)
        self.segments_done = self.reused = len(finished)

    def finish_segment(self) -> None:
        self.segments_done += 1

    @property
    def finished(self) -> bool:
        return self.segments_done >= self.segments_total

    def snapshot(self) -> Dict[str, Optional[float]]:
        return {**super().snapshot(), "segments_done": self.segments_done, "segments_total": self.segments_total}
