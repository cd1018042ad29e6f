"""Overlapping frame batches and the cross-fade that joins their results."""

import numpy as np
import pytest

from tmlsr_ray.pipeline.decode import FrameBatch
from tmlsr_ray.pipeline.overlap import CrossFade, overlapping_batches


def decoded(count: int, batch: int):
    frames = np.arange(count, dtype=np.uint8).reshape(count, 1, 1, 1).repeat(3, axis=3)
    for index, start in enumerate(range(0, count, batch)):
        yield FrameBatch(index, frames[start:start + batch], list(range(start, min(start + batch, count))))


@pytest.mark.parametrize("count,decode_batch", [(1, 4), (5, 5), (12, 3), (13, 7), (30, 4)])
@pytest.mark.parametrize("size,overlap", [(5, 0), (5, 1), (9, 4), (5, 2)])
def test_every_frame_is_sent_and_each_batch_starts_with_the_previous_tail(count, decode_batch, size, overlap):
    batches = list(overlapping_batches(decoded(count, decode_batch), size, overlap))
    assert [b.index for b in batches] == list(range(len(batches)))
    assert all(len(b.pts) <= size for b in batches)
    for earlier, later in zip(batches, batches[1:]):
        assert len(earlier.pts) == size
        assert later.pts[:overlap] == earlier.pts[size - overlap:]
        assert later.pts[overlap] == earlier.pts[-1] + 1  # and then new frames
    sent = sorted(set(p for b in batches for p in b.pts))
    assert sent == list(range(count))
    assert all(int(b.frames[i, 0, 0, 0]) == p for b in batches for i, p in enumerate(b.pts))


@pytest.mark.parametrize("count,size,overlap", [(13, 5, 1), (30, 9, 4), (5, 5, 2), (1, 5, 1), (12, 5, 0)])
def test_the_cross_fade_gives_each_frame_once_in_order(count, size, overlap):
    fade = CrossFade(overlap)
    out_pts, out_frames = [], []
    for batch in overlapping_batches(decoded(count, 4), size, overlap):
        frames, pts = fade.push(batch.frames, batch.pts)
        out_frames.extend(frames), out_pts.extend(pts)
    frames, pts = fade.flush()
    out_frames.extend(frames), out_pts.extend(pts)
    assert out_pts == list(range(count))
    # identity "restoration": blending equal frames changes nothing
    assert [int(f[0, 0, 0]) for f in out_frames] == out_pts


def test_overlapping_frames_fade_from_the_earlier_result_to_the_later():
    fade = CrossFade(2)
    first, _ = fade.push(np.zeros((5, 1, 1, 3), np.uint8), [0, 1, 2, 3, 4])
    assert len(first) == 3
    joined, pts = fade.push(np.full((5, 1, 1, 3), 90, np.uint8), [3, 4, 5, 6, 7])
    assert pts[:2] == [3, 4]
    assert [int(f[0, 0, 0]) for f in joined[:2]] == [30, 60]  # weights 1/3 and 2/3 of the later
    assert int(joined[2, 0, 0, 0]) == 90


def test_an_overlap_as_large_as_the_batch_is_refused():
    with pytest.raises(ValueError):
        list(overlapping_batches(decoded(10, 4), 5, 5))
