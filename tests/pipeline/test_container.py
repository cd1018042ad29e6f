"""Opening an input: how far FFmpeg's probe reads, one rule for every open."""

from __future__ import annotations

from tests.helpers import make_clip, opens_spied, with_an_empty_video_pid
from tmlsr_ray.pipeline.container import LONG_PROBE, open_container, probe_opened


def test_an_open_before_the_probe_keeps_the_usual_read_where_reading_further_learns_nothing(tmp_path, monkeypatch):
    """The timeline's open took the long probe (200 MB, 120 s) whenever a video stream had no
    picture size, where the probe kept it only where it learnt more: two rules for one question."""
    path = with_an_empty_video_pid(tmp_path / "empty-pid.ts")
    opens = opens_spied(monkeypatch)
    with open_container(path) as container:
        assert container.options.get("probesize") != LONG_PROBE["probesize"]
    assert opens == [False, True]
    container, options = probe_opened(path)
    container.close()
    assert options == {}


def test_an_open_before_the_probe_reads_further_where_that_learns_the_picture_size(tmp_path):
    rate = 12
    path = make_clip(tmp_path / "late-picture.ts", frames=24, rate=rate, container="mpegts", audio_s=10,
                     pts=[8 * rate + n for n in range(24)])
    with open_container(path) as container:
        assert container.streams.video[0].codec_context.width == 64
