"""One segment, start to end, where the model is: decode → upscale in batches → encode a piece
(no Ray here: a model replica runs it, and so does ``bench/frames.py`` without Ray).

The model is a callable (a batch of frames in, frames at the final size out) so that any backend
fits; SeedVR2's overlapping batches and their cross-fade stay inside the segment: a segment is
independent of its neighbours, so consecutive segments meet at a plain cut.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from tmlsr_ray.models.yuv import Yuv420
from tmlsr_ray.piece import Piece
from tmlsr_ray.pipeline.colour import SDR_BT709, ToneMap, written_colour
from tmlsr_ray.pipeline.damage import DamagedPackets
from tmlsr_ray.pipeline.decode import FrameBatch, planar_layout
from tmlsr_ray.pipeline.encode import EncodeOptions, PieceWriter, gpu_planes
from tmlsr_ray.pipeline.overlap import CrossFade, overlapping_batches
from tmlsr_ray.pipeline.segment_plan import Segment
from tmlsr_ray.pipeline.segments import decode_segment
from tmlsr_ray.pipeline.video_info import VideoInfo

SEED_STRIDE = 1 << 20  # seeds of a segment's batches: seed + segment × stride + batch


@dataclass(frozen=True)
class SegmentJob:
    segment: Segment
    info: VideoInfo
    target: Tuple[int, int]
    options: EncodeOptions
    batch_frames: int
    overlap: int = 0  # frames shared by consecutive batches (SeedVR2), cross-faded
    seed: Optional[int] = None  # SeedVR2: the task's seed; each batch gets its own from it
    tone_map: bool = False  # HDR in, SDR (BT.709, 8-bit) out: mapped before the model sees the frames
    planes_in: bool = False  # the model takes the decoder's 4:2:0 planes (a GPU replica sets it)
    repeat_damaged: bool = False  # frames the decoder cannot read: the frame before in their place (else: fail)
    denoise: Optional[float] = None  # the model's denoise strength (a Real-ESRGAN model with a weak-denoise twin)

    @property
    def output_color(self) -> Dict[str, int]:
        return SDR_BT709 if self.tone_map else written_colour(self.info)

    @property
    def yuv420(self) -> Optional[Yuv420]:
        """See :func:`~tmlsr_ray.pipeline.encode.gpu_planes`."""
        return gpu_planes(self.output_color, self.options)

    @property
    def input_planes(self) -> Optional[Yuv420]:
        """The layout the decoder hands its planes over in, where the model takes them and nothing
        reads the RGB on the way (a tone-map, a cross-fade)."""
        if not self.planes_in or self.tone_map or self.overlap:
            return None
        return planar_layout(self.info)

    def batch_seed(self, batch: FrameBatch) -> Optional[int]:
        """The same noise for a batch on whichever replica runs it, and on a retry."""
        if self.seed is None:
            return None
        return self.seed + self.segment.index * SEED_STRIDE + batch.index


Upscale = Callable[[FrameBatch], np.ndarray]  # RGB frames, or planes in the job's yuv420 layout
Rendered = Union[int, Tuple[bytes, Piece]]


def render_segment(job: SegmentJob, data: bytes, upscale: Upscale,
                   stop: Optional[threading.Event] = None) -> Iterator[Rendered]:
    """Yields the number of frames encoded after each batch, then ``(piece bytes, piece)``."""
    writer = PieceWriter(job.segment.index, job.info, job.target, job.options, job.output_color)
    try:
        damaged = DamagedPackets(repeat=job.repeat_damaged, limit_share=False)  # the task's share: see the runner
        missing = MissingFrames(job.segment.pts if job.repeat_damaged else ())
        batches = decode_segment(data, job.info, job.segment, job.batch_frames, stop, job.input_planes, damaged)
        if job.tone_map:
            to_sdr = ToneMap.for_stream(job.info.color, job.info.mastering)
            batches = (replace(b, frames=to_sdr(b.frames)) for b in batches)
        if job.overlap:
            batches = overlapping_batches(batches, job.batch_frames, job.overlap)
        fade = CrossFade(job.overlap)
        for batch in batches:
            frames, pts = missing.fill(*fade.push(upscale(batch), batch.pts))
            if pts:
                writer.write(frames, pts)
                yield len(pts)
        for frames, pts in (missing.fill(*fade.flush()), missing.flush()):
            if pts:
                writer.write(frames, pts)
                yield len(pts)
        encoded, piece = writer.close()
        dropped = damaged.dropped + job.segment.damaged_packets  # a re-keyed segment's, by its cut
        repeated = missing.repeated + damaged.repeated  # a whole stream's, as it decodes
        yield encoded, replace(piece, damaged_packets=dropped, repeated_frames=repeated)
    except BaseException:
        writer.abort()
        raise


class MissingFrames:
    """The frames a segment planned that its decoder did not give (packets left out as damaged,
    and frames a frame-threaded decoder lost beside them): the frame before in each one's place,
    as a player shows it (at the segment's start, the frame shown before it where the decoder gave
    that, else the first frame it gave), so the output keeps the input's frame count and every
    frame's time. Planned nothing (a whole stream, or damage not repeated): frames pass as they are."""

    def __init__(self, planned: Sequence[int]):
        self._planned = planned
        self._next = 0  # the first planned frame not written yet
        self._last: Optional[np.ndarray] = None  # the last frame written, (1, ...)
        self._written: Optional[int] = None  # its time
        self.repeated = 0

    def fill(self, frames: np.ndarray, pts: List[int]) -> Tuple[np.ndarray, List[int]]:
        if not pts or not self._planned:
            return frames, pts
        picks, stamps = [], []
        # places in the pool: 0 the last frame written before (at the start: the first one given)
        shown = 0
        for place, stamp in enumerate(pts, start=1):
            if self._written is not None and stamp <= self._written:
                # given late (a decoder's reorder buffer, upset by a damaged keyframe, gave a frame
                # after later ones): its place shows the frame before already
                continue
            if stamp < self._planned[0]:  # the frame shown before the segment's (see Segment.gop_before)
                shown = place
                continue
            while self._next < len(self._planned) and self._planned[self._next] < stamp:
                picks.append(shown)
                stamps.append(self._planned[self._next])
                self._next += 1
                self.repeated += 1
            picks.append(place)
            stamps.append(stamp)
            shown, self._written = place, stamp
            if self._next < len(self._planned) and self._planned[self._next] == stamp:
                self._next += 1
        previous = self._last
        if picks == list(range(1, len(pts) + 1)):
            self._last = frames[-1:].copy()
            return frames, pts
        pool = np.concatenate([previous if previous is not None else frames[:1], frames])
        self._last = pool[shown:shown + 1].copy()
        return pool[picks], stamps

    def flush(self) -> Tuple[np.ndarray, List[int]]:
        """The last frame again for each planned one after it."""
        rest = list(self._planned[self._next:])
        self._next = len(self._planned)
        if not rest or self._last is None:
            return np.empty((0,)), []
        self.repeated += len(rest)
        return np.repeat(self._last, len(rest), axis=0), rest

