"""Re-keyed segments: where a GOP is too long to cut at its keyframes (a screen recording, a
surveillance or broadcast capture with one keyframe a minute or an hour), its frames are decoded
once, in the order of the file, and each segment's frames are written without loss into a segment
file of its own, whose first frame is a keyframe (no Ray here).

Without it such a segment ran on to the next keyframe: one replica decoded, upscaled and encoded
the whole GOP, carried whole through the object store, and a crash restarted it from its start.
The price is a decode and a lossless encode at the input's size in the process that cuts the
video; the replica then decodes the very frames it would have decoded from the source: the same
pixels, timestamps (the source's time base) and colour tags (kept in the file's metadata, as NUT
stores none), deinterlaced already where the source is interlaced.
"""

from __future__ import annotations

import io
import threading
from collections import Counter
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Set, Tuple

import av
import av.filter
import numpy as np

from tmlsr_ray.errors import CanceledError, InputError
from tmlsr_ray.pipeline.container import demux, open_probed, open_segment_file
from tmlsr_ray.pipeline.damage import DamagedPackets, damage_told_on_one_thread, picture_packets
from tmlsr_ray.pipeline.decode import Deinterlacer, frame_to_rgb, one_filter
from tmlsr_ray.pipeline.segment_plan import Segment
from tmlsr_ray.pipeline.video_info import VideoInfo

COLOUR_KEY = "tmlsr_frame_colour"  # stream metadata: the source frames' colour tags
COLOUR_TAGS = ("color_range", "colorspace", "color_primaries", "color_trc")
CHROMA_KEY = "tmlsr_chroma_location"  # stream metadata: the source frames' chroma siting
# FFmpeg's chroma sitings: where a chroma sample sits across and down, in half luma samples
CHROMA_LOCATIONS = {"left": (0, 1), "center": (1, 1), "topleft": (0, 0), "top": (1, 0), "bottomleft": (0, 2),
                    "bottom": (1, 2)}
# Ut Video encodes and decodes several times faster than FFV1; FFV1 holds every other layout a
# long-GOP codec decodes to (10 to 16 bits, gray, alpha).
FAST_LOSSLESS = ("utvideo", frozenset({"yuv420p", "yuv422p", "yuv444p", "gbrp", "gbrap"}))
LOSSLESS = ("ffv1", frozenset(f.name for f in av.Codec("ffv1", "w").video_formats))
FFV1_OPTIONS = {"level": "3", "coder": "0", "context": "0", "slicecrc": "0"}
# The decoders' full-range ("JPEG") layouts are the same bytes as these, tagged full range.
FULL_RANGE_ALIASES = {"yuvj420p": "yuv420p", "yuvj422p": "yuv422p", "yuvj444p": "yuv444p"}
# Packed RGB and palettes (QuickTime Animation's rgb24 and argb, QuickTime Graphics' and DOS
# captures' pal8) are the same samples planar, which Ut Video holds: their long GOPs ran on whole.
# So are RGB with a padding byte (DOSBox's 32-bit ZMBV) and BGRA (a GIF), which FFV1 holds at a
# third of Ut Video's speed (1.4 against 4.8 frames/s of 1080p on 2 busy cores).
PLANAR_RGB = {"rgb24": "gbrp", "bgr24": "gbrp", "pal8": "gbrp", "bgr0": "gbrp", "rgb0": "gbrp", "0rgb": "gbrp",
              "0bgr": "gbrp", "argb": "gbrap", "rgba": "gbrap", "abgr": "gbrap", "bgra": "gbrap"}


@dataclass(frozen=True)
class LosslessLayout:
    codec: str
    pix_fmt: str


def lossless_layout(pix_fmt: str, width: int, height: int) -> Optional[LosslessLayout]:
    """How frames of this decoded layout and size are stored without loss; None: no codec here
    holds it (its long GOPs are not re-keyed)."""
    stored = FULL_RANGE_ALIASES.get(pix_fmt) or PLANAR_RGB.get(pix_fmt, pix_fmt)
    for codec, formats in (FAST_LOSSLESS, LOSSLESS):
        if stored in formats and (codec != FAST_LOSSLESS[0] or _whole_chroma_samples(stored, width, height)):
            return LosslessLayout(codec, stored)
    return None


def _whole_chroma_samples(pix_fmt: str, width: int, height: int) -> bool:
    """Whether the picture spans a whole number of chroma samples each way: Ut Video refuses an
    odd width of 4:2:0 or 4:2:2 and an odd height of 4:2:0, which VP9 and AV1 decode to."""
    layout = av.VideoFormat(pix_fmt)
    return width % (16 // layout.chroma_width(16)) == 0 and height % (16 // layout.chroma_height(16)) == 0


def raw_frame_bytes(info: VideoInfo) -> int:
    """A decoded frame's size, all planes: a re-keyed segment file holds at most about this per frame."""
    layout = av.VideoFormat(info.pix_fmt, info.coded_width, info.coded_height)
    return sum(c.width * c.height * ((c.bits + 7) // 8) for c in layout.components)


class ChromaSiting:
    """Where the source's chroma sits, as its decoder tags its frames: the tag steers the
    conversion to RGB, and neither PyAV shows it nor NUT keeps it. It is found as the tag that
    gives a frame the conversion its own tag gives; frames that cannot tell the candidates apart
    (flat colour, stripes) leave them open, and the next frames are asked."""

    def __init__(self, pix_fmt: str):
        layout = av.VideoFormat(pix_fmt, 16, 16)
        across = any(c.is_chroma and c.width != 16 for c in layout.components)
        down = any(c.is_chroma and c.height != 16 for c in layout.components)
        # Sitings apart only along a full-size axis (left, top left and bottom left in 4:2:2)
        # convert alike on every frame: one of each is asked, or none would ever be told apart.
        distinct: Dict[Tuple[int, int], str] = {}
        for location, (x, y) in CHROMA_LOCATIONS.items():
            distinct.setdefault((x * across, y * down), location)
        self._candidates = list(distinct.values()) if across or down else []
        self._rgb_format = "rgb48le" if max(c.bits for c in layout.components) > 8 else "rgb24"
        self._graphs: Dict[Tuple[str, int, int, str], av.filter.Graph] = {}

    @property
    def known(self) -> bool:
        return len(self._candidates) <= 1

    @property
    def location(self) -> Optional[str]:
        """The tag to give the file's frames: None where none is needed (no subsampled chroma) or
        no tag converts as the source's does (an unspecified one)."""
        return self._candidates[0] if self._candidates else None

    def observe(self, frame) -> None:
        if self.known or _flat_chroma(frame):  # a black or grey frame: every siting converts it alike
            return
        reference = frame_to_rgb(frame, self._rgb_format, 0)
        self._candidates = [location for location in self._candidates
                            if np.array_equal(frame_to_rgb(self._tagged(frame, location), self._rgb_format, 0), reference)]

    def _tagged(self, frame, location: str):
        key = (location, frame.width, frame.height, frame.format.name)
        graph = self._graphs.get(key)
        if graph is None:
            graph = self._graphs[key] = one_filter("setparams", f"chroma_location={location}", width=frame.width,
                                                   height=frame.height, format=frame.format.name,
                                                   time_base=Fraction(1, 1))
        graph.vpush(frame)
        return graph.vpull()


def _flat_chroma(frame) -> bool:
    """Whether each subsampled chroma plane holds one value throughout: then no siting converts
    the frame otherwise, and asking (up to seven conversions to RGB) is skipped. A recording that
    opens on minutes of black asked on every frame."""
    shared = Counter(c.plane for c in frame.format.components if c.is_chroma)  # NV12's U and V share one
    sample_type = np.uint16 if frame.format.components[0].bits > 8 else np.uint8
    for index, components in shared.items():
        plane = frame.planes[index]
        samples = np.frombuffer(memoryview(plane), sample_type)
        rows = samples.reshape(-1, plane.line_size // samples.itemsize)
        values = rows[:plane.height, :plane.width * components]
        if values.min() != values.max():
            return False
    return True


class RekeyedFile:
    """One re-keyed segment's frames, written without loss into a segment file as they decode.
    Its packets are held until the source's chroma siting is known: the file's header says it."""

    def __init__(self, segment: Segment, stream, layout: LosslessLayout, size: Tuple[int, int],
                 siting: ChromaSiting):
        self.segment = segment
        self.written = 0
        self._layout = layout
        self._size = size
        self._siting = siting
        self._held: Optional[List[av.Packet]] = []
        self._buffer = io.BytesIO()
        self._out = open_segment_file(self._buffer)
        self._stream = self._out.add_stream(layout.codec)
        self._stream.width, self._stream.height = size
        self._stream.pix_fmt = layout.pix_fmt
        self._time_base = stream.time_base  # the muxer may give its stream another
        self._stream.codec_context.time_base = self._stream.time_base = stream.time_base
        self._stream.codec_context.thread_count = 0
        if layout.codec == "ffv1":
            self._stream.options = dict(FFV1_OPTIONS)

    def add(self, frame) -> None:
        if not self.written:
            self._stream.metadata[COLOUR_KEY] = ",".join(str(int(getattr(frame, tag) or 0)) for tag in COLOUR_TAGS)
        self._siting.observe(frame)
        stored = self._stored(frame)
        stored.pts = frame.pts + self.segment.shift
        stored.time_base = self._time_base
        self._mux(self._stream.encode(stored))
        self.written += 1

    @property
    def complete(self) -> bool:
        return self.written >= len(self.segment.pts)

    def close(self) -> bytes:
        self._mux(self._stream.encode(None), last=True)
        self._out.close()
        return self._buffer.getvalue()

    def _mux(self, packets, last: bool = False) -> None:
        if self._held is not None:
            self._held.extend(packets)
            if not (self._siting.known or last):
                return
            if self._siting.location:  # frames no candidate told apart convert alike under any of them
                self._stream.metadata[CHROMA_KEY] = self._siting.location
            packets, self._held = self._held, None
        for packet in packets:
            self._out.mux(packet)

    def _stored(self, frame):
        """The frame in the file's layout: the same bytes under a full-range alias's name; a
        frame whose size or layout changed mid-GOP (no codec does that without a keyframe) is
        converted."""
        name = frame.format.name
        if (frame.width, frame.height) != self._size or FULL_RANGE_ALIASES.get(name, name) != self._layout.pix_fmt:
            return frame.reformat(*self._size, format=self._layout.pix_fmt)
        if name == self._layout.pix_fmt:
            return frame
        return _relabelled(frame, self._layout.pix_fmt)


def _relabelled(frame, pix_fmt: str):
    copy = av.VideoFrame(frame.width, frame.height, pix_fmt)
    for source, target in zip(frame.planes, copy.planes):
        rows = np.frombuffer(memoryview(source), np.uint8).reshape(-1, source.line_size)
        into = np.frombuffer(memoryview(target), np.uint8).reshape(-1, target.line_size)
        width = min(source.line_size, target.line_size)
        into[:, :width] = rows[:into.shape[0], :width]
    for tag in COLOUR_TAGS:
        setattr(copy, tag, getattr(frame, tag))
    return copy


def source_tags(stream):
    """Has the decoder of a re-keyed file tag its frames as the source's decoder did: the chroma
    siting through the decoder's option (before it opens), the colour tags (Ut Video's decoder
    sets its own matrix) by the function returned, to call on each frame; None for other files."""
    stored = stream.metadata.get(COLOUR_KEY)
    if not stored:
        return None
    if stream.metadata.get(CHROMA_KEY):
        stream.codec_context.options = {"chroma_sample_location": stream.metadata[CHROMA_KEY]}
    values = dict(zip(COLOUR_TAGS, (int(v) for v in stored.split(","))))

    def retag(frame) -> None:
        for tag, value in values.items():
            setattr(frame, tag, value)
    return retag


@dataclass
class _Stretch:
    """Packets decoded without a break: from the keyframe the first of its segments decodes from
    to the last packet any of them needs."""

    first_packet: int
    last_packet: int
    segments: List[Segment]


def _stretches(segments: Sequence[Segment]) -> List[_Stretch]:
    stretches: List[_Stretch] = []
    for segment in sorted(segments, key=lambda s: s.first_packet):
        if stretches and segment.first_packet <= stretches[-1].last_packet + 1:
            stretches[-1].last_packet = max(stretches[-1].last_packet, segment.last_packet)
            stretches[-1].segments.append(segment)
        else:
            stretches.append(_Stretch(segment.first_packet, segment.last_packet, [segment]))
    return stretches


class Rekeyer:
    """Feeds the packets the re-keyed segments need to the stream's decoder (of the file at
    ``path``), as the cutting pass reads them, and hands each segment's file out once its last
    frame is in. A stretch that came short of its frames, or had damage, is decoded again on one
    thread from the file, to tell its damage where it is: frame threads report it late, or not at
    all among the last packets they drain."""

    def __init__(self, path: Path, stream, info: VideoInfo, segments: Sequence[Segment],
                 stop: Optional[threading.Event] = None, damaged: Optional[DamagedPackets] = None):
        self._path = path
        self._stream = stream
        self._damaged = damaged if damaged is not None else DamagedPackets()
        self._damaged_before = 0  # as the stretch started
        self._damaged_by_segment: Counter = Counter()  # segment index: its frames' packets left out
        self._palette = None  # the one in force as the stretch started
        self._info = info
        self._stop = stop
        self._layout = lossless_layout(info.pix_fmt, info.coded_width, info.coded_height)
        self._stretches = _stretches(segments)
        self._owner: Dict[int, Segment] = {}
        self._files: Dict[int, RekeyedFile] = {}
        self._deinterlacer: Optional[Deinterlacer] = None
        self._decoding = False
        self._handed_out: Set[int] = set()
        self._siting = ChromaSiting(self._layout.pix_fmt) if self._layout else None
        stream.thread_type = "AUTO"

    @property
    def pending(self) -> bool:
        return bool(self._stretches or self._decoding)

    def feed(self, index: int, packet, palette=None) -> Iterator[Tuple[Segment, bytes]]:
        """The packet at ``index`` (decode order); the segment files it completes. ``palette``: the
        one in force (a pal8 codec's, sent with the stream's first packet only), which a stretch
        from a later keyframe decodes with (its frames came out black)."""
        if not self._decoding and self._stretches and self._stretches[0].first_packet == index:
            self._start(self._stretches[0], palette)
            _with_palette(packet, palette)
        if not self._decoding:
            return
        self._check_stop()
        yield from self._route(self._decode(packet))
        if index == self._stretches[0].last_packet:
            yield from self._finish()

    def close(self) -> Iterator[Tuple[Segment, bytes]]:
        """At the end of the file: what the decoder still holds, and every file still open."""
        if self._decoding:
            yield from self._finish()

    def _check_stop(self) -> None:
        if self._stop is not None and self._stop.is_set():
            raise CanceledError("task canceled")

    def _start(self, stretch: _Stretch, palette) -> None:
        self._decoding = True
        self._damaged_before = self._damaged.damaged
        self._palette = palette
        self._owner = {pts: segment for segment in stretch.segments for pts in segment.pts}
        self._deinterlacer = Deinterlacer(self._stream, self._info.interlaced)

    def _decode(self, packet) -> List["av.VideoFrame"]:
        """The packet's frames; a damaged one (see :class:`DamagedPackets`) fails the task, or
        with ``repeat`` is left out, counted once the stretch is in (:meth:`_damage_told`)."""
        try:
            return self._damaged.decode(packet)
        except InputError:
            # frame threads tell it a few packets late, on a neighbour's frame, or as the decoder
            # drains, where no packet says when: one thread tells where it is, failing there
            self._damage_told(self._stretches[0])
            raise

    def _finish(self) -> Iterator[Tuple[Segment, bytes]]:
        flush = av.Packet()
        flush.stream = self._stream
        stretch = self._stretches[0]
        yield from self._route(self._decode(flush), last=True)
        self._stream.codec_context.flush_buffers()  # the next stretch starts at a keyframe, afresh
        self._decoding = False
        self._stretches.pop(0)
        if self._damaged.damaged > self._damaged_before or any(s.index not in self._handed_out
                                                                 for s in stretch.segments):
            self._damaged_by_segment = self._damage_told(stretch)
        for segment in stretch.segments:
            if segment.index in self._files:  # frames the decoder never gave: the file ends short
                yield self._hand_out(segment)
            elif segment.index not in self._handed_out:  # as a replica says of a segment file
                raise InputError(f"segment {segment.index} of the video holds no decodable frame")
        self._handed_out.clear()

    def _damage_told(self, stretch: _Stretch) -> Counter:
        """Each segment's damaged packets, the stretch decoded again on one thread. A segment
        handed out already gave every frame, so none of its own was damaged."""
        with open_probed(self._path, self._info) as container:
            stream = container.streams[self._stream.index]
            told = damage_told_on_one_thread(stream, self._stretch_packets(container, stream, stretch), self._damaged)
        return Counter(self._owner[pts].index for pts in told.stamps if pts in self._owner)  # the stretch's, from _start

    def _stretch_packets(self, container, stream, stretch: _Stretch) -> Iterator["av.Packet"]:
        """The stretch's packets read again, numbered as the cutting pass numbers them, a flush last."""
        packets = picture_packets(demux(container, stream))
        for index, packet in enumerate(packets):
            if index >= stretch.first_packet:
                self._check_stop()
                if index == stretch.first_packet:
                    _with_palette(packet, self._palette)
                yield packet
            if index == stretch.last_packet:
                break
        flush = av.Packet()
        flush.stream = stream
        yield flush

    def _route(self, frames, last: bool = False) -> Iterator[Tuple[Segment, bytes]]:
        shown = list(frames)
        if self._deinterlacer is not None:
            shown = [out for frame in shown for out in self._deinterlacer.frames(frame)]
            if last:
                shown += self._deinterlacer.frames(None)
        for frame in shown:
            segment = self._owner.pop(frame.pts, None)
            if segment is None:
                continue  # a frame of a segment cut at a keyframe, or one decoded only as a reference
            file = self._files.get(segment.index)
            if file is None:
                file = self._files[segment.index] = RekeyedFile(segment, self._stream, self._layout,
                                                                (frame.width, frame.height), self._siting)
            file.add(frame)
            if file.complete:
                self._handed_out.add(segment.index)
                yield self._hand_out(segment)

    def _hand_out(self, segment: Segment) -> Tuple[Segment, bytes]:
        damaged = self._damaged_by_segment.pop(segment.index, 0)
        return replace(segment, damaged_packets=damaged), self._files.pop(segment.index).close()


def _with_palette(packet, palette) -> None:
    """A stretch's first packet with the palette in force (a pal8 codec's, sent with the stream's
    first packet only): a stretch from a later keyframe decoded without it came out black."""
    if palette is not None and not packet.has_sidedata("palette"):
        packet.set_sidedata(palette)
