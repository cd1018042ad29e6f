"""Frames done, speed and time left of a frame loop."""

from tmlsr_ray.pipeline.progress import FrameProgress


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_speed_follows_the_frames_of_the_last_seconds():
    clock = Clock()
    progress = FrameProgress(100, window_s=5.0, clock=clock)
    for _ in range(4):
        clock.now += 1.0
        progress.advance(10)
    assert progress.fps == 10.0
    assert progress.snapshot() == {"frames_done": 40, "frames_total": 100, "fps": 10.0, "eta_s": 6.0}


def test_frames_a_retry_takes_back_never_make_the_speed_negative():
    clock = Clock()
    progress = FrameProgress(100, clock=clock)
    clock.now += 1.0
    progress.advance(4)
    clock.now += 1.0
    progress.advance(-8)  # a segment's frames, counted before its replica died, are taken back
    assert progress.fps == 0.0 and progress.snapshot()["eta_s"] is None
