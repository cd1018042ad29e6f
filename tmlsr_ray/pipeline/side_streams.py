"""The source's audio and subtitle streams beside the video (no Ray here): audio copied packet for
packet where the container can hold the codec, re-encoded to AAC where it cannot, dropped with a
reason where nothing places it; subtitles copied where the container holds them, text ones
converted to its text form otherwise (:mod:`.transcode`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Set, Tuple

import av

from tmlsr_ray.pipeline.audio_line import in_line
from tmlsr_ray.pipeline.container import demux, open_probed
from tmlsr_ray.pipeline.output_formats import MP4, QUICKTIME_MP3_MIN_RATE, TEXT_SUBTITLES, ContainerFormat
from tmlsr_ray.pipeline.timeline import JUMP_FORWARD_S
from tmlsr_ray.pipeline.transcode import AacTranscoder, TextSubtitleTranscoder, as_source
from tmlsr_ray.pipeline.video_info import VideoInfo


@dataclass
class SideStreamsReport:
    """What became of the source's audio and subtitle streams, for the task's metadata (the
    output's :class:`~tmlsr_ray.pipeline.mux.MuxReport` is one)."""

    audio_copied: List[Dict] = field(default_factory=list)
    audio_reencoded: List[Dict] = field(default_factory=list)
    audio_dropped: List[Dict] = field(default_factory=list)
    subtitles_copied: List[Dict] = field(default_factory=list)
    subtitles_dropped: List[Dict] = field(default_factory=list)


class SideStreams:
    """Audio and subtitle streams of the source, muxed in time order next to the video."""

    def __init__(self, source, info: VideoInfo, report: SideStreamsReport, into: ContainerFormat = MP4,
                 unplaced: Optional[Dict[int, str]] = None):
        self._source = source
        self._report = report
        self._into = into
        self._plan = [(audio, _audio_plan(audio, into, unplaced or {})) for audio in info.audio]
        self._plan += [(sub, _subtitle_plan(sub.codec, into)) for sub in info.subtitles]
        self._map: Dict[int, object] = {}
        self._entries: Dict[int, Dict] = {}  # by stream: what the report says of it
        self._transcoders: Dict[int, "AacTranscoder | TextSubtitleTranscoder"] = {}
        self._preroll: Dict[int, object] = {}  # by stream: the last hidden packet not muxed
        self._held: Dict[int, object] = {}  # by stream: a copied audio packet without a duration
        self._clock: Dict[int, Tuple[int, int, int]] = {}  # by stream: (offset, last time, its end)
        self._packets: Iterator = iter(())
        self._pending = None

    def starts(self) -> List[Fraction]:
        """Where each kept stream starts, in seconds (those that say): known before ``open``,
        since the output's offset comes from them."""
        streams = [self._source.streams[side.index] for side, plan in self._plan if plan in ("copy", "aac", "text")]
        return [Fraction(s.start_time) * s.time_base for s in streams if s.start_time is not None and s.time_base]

    def open(self, out) -> None:
        """Adds the output's streams (after the video's) and starts reading the source's packets."""
        for side, plan in self._plan:
            self._add(out, side, plan, self._source.streams[side.index])
        self._out = out
        wanted = [self._source.streams[i] for i in list(self._map) + list(self._transcoders)]
        self._packets = in_line(demux(self._source, wanted), wanted) if wanted else iter(())

    def _add(self, out, side, plan: str, in_stream) -> None:
        entry = self._entries[side.index] = {"index": side.index, "codec": side.codec, "language": side.language}
        is_audio = in_stream.type == "audio"
        report = self._report
        if plan == "copy":
            self._map[side.index] = as_source(out.add_stream_from_template(in_stream), in_stream, side.language)
            (report.audio_copied if is_audio else report.subtitles_copied).append(entry)
        elif plan == "aac":
            self._transcoders[side.index] = AacTranscoder(in_stream, out, side.language)
            report.audio_reencoded.append({**entry, "to": "aac"})
        elif plan == "text":
            self._transcoders[side.index] = TextSubtitleTranscoder(in_stream, out, self._into.text_subtitles)
            report.subtitles_copied.append({**entry, "to": self._into.text_subtitles})
        elif is_audio:
            report.audio_dropped.append({**entry, "reason": AUDIO_DROPPED[plan]})
        else:  # bitmap subtitles (PGS, DVB, VobSub) have no MP4 form
            report.subtitles_dropped.append(
                {**entry, "reason": f"{self._into.name.upper()} cannot hold {side.codec} subtitles"})

    def mux_until(self, seconds: Optional[float]) -> None:
        """Muxes every side packet up to ``seconds`` (all of them when ``None``)."""
        while True:
            fresh = self._pending is None
            packet = self._pending or next(self._packets, None)
            self._pending = None
            if packet is None:
                break
            if packet.dts is None and packet.pts is None:
                continue  # a demuxer flush marker
            if not packet.size:
                # Side data only (FLAC's closing STREAMINFO in NUT): taken as the next packet, it
                # let the one held before it go with no duration, which MP4's edit list leaves out.
                continue
            if fresh:
                self._run_on(packet)
            stamp = packet.dts if packet.dts is not None else packet.pts
            if seconds is not None and float(stamp * packet.time_base) > seconds:
                self._pending = packet
                return
            self._mux(packet)
        if seconds is None:
            for index, packet in list(self._held.items()):
                self._write(index, self._with_duration(index, packet))
            for transcoder in self._transcoders.values():
                transcoder.flush()

    def _run_on(self, packet) -> None:
        """A stream whose times go back runs on from where it was, as the video's frames do
        (:func:`~tmlsr_ray.pipeline.decode.iter_batches` restamps them): the muxer refuses times
        that go back. Recordings joined end to end whose jumps no copy closed (a format other than
        MPEG-TS, or a copy that failed: :mod:`~tmlsr_ray.pipeline.timeline`) start at the same
        time twice. Subtitle events may share a time (a sign and a line of dialogue)."""
        stamp = packet.dts if packet.dts is not None else packet.pts
        index = packet.stream.index
        offset, last, end = self._clock.get(index, (0, None, None))
        if last is not None and (stamp + offset < last or stamp + offset == last and packet.stream.type != "subtitle"):
            offset = max(end, last + 1) - stamp
        packet.pts = None if packet.pts is None else packet.pts + offset
        packet.dts = None if packet.dts is None else packet.dts + offset
        stamp += offset
        self._clock[index] = (offset, stamp, stamp + (packet.duration or 0))

    def _mux(self, packet) -> None:
        """A packet its decoder or the muxer refuses as invalid data (a damaged one: a bit error in
        a recording, a TS packet lost) is left out, as FFmpeg's command line leaves it, and counted
        in the report: it failed the whole task at the join, after every segment's model work."""
        index = packet.stream.index
        try:
            self._mux_packet(index, packet)
        except av.error.InvalidDataError:
            entry = self._entries[index]
            entry["damaged_packets_dropped"] = entry.get("damaged_packets_dropped", 0) + 1

    def _mux_packet(self, index: int, packet) -> None:
        if index in self._transcoders:
            self._transcoders[index].feed(packet)
            return
        if packet.is_discard and not self._into.edit_lists:
            # What the source's edit list hides (audio before a lossless cut) would play in a
            # container without one; the last such packet goes along as the decoder's pre-roll.
            self._preroll[index] = packet
            return
        for ready in (self._preroll.pop(index, None), packet):
            if ready is not None:
                self._write(index, ready)

    def _write(self, index: int, packet) -> None:
        """A copied audio packet that states no duration (ALAC in Matroska) waits for the next one
        of its stream: MP4 ends a track where its last packet ends, and the last one was cut off."""
        held = self._held.pop(index, None)
        if held is not None:
            self._out.mux(held)
        if packet is held:
            return
        packet.stream = self._map[index]
        if packet.duration or packet.stream.type != "audio":
            self._out.mux(packet)
        else:
            self._held[index] = packet

    def _with_duration(self, index: int, packet):
        """The last packet of a stream, stating how long it plays: its samples, decoded."""
        context = self._source.streams[index].codec_context
        try:
            samples = sum(frame.samples for frame in context.decode(packet))
        except (av.error.FFmpegError, ValueError):
            samples = 0
        if samples and context.sample_rate and packet.time_base:
            packet.duration = max(1, round(Fraction(samples, context.sample_rate) / Fraction(packet.time_base)))
        return packet


def audio_unplaced(source_path: Path, info: VideoInfo, video: Tuple[Fraction, Fraction]) -> Dict[int, str]:
    """The audio streams whose packets cannot go beside the ``video`` (where its first frame starts
    and its last ends, in seconds), by index, with why (a key of AUDIO_DROPPED). "empty": one that
    holds no packet, a track a recorder declared and never wrote to (a microphone that was off):
    MP4 leaves such a track out and Matroska writes it empty, while the report listed it as kept.
    "apart": one whose times are damaged so that it lies over 10 s from the picture, its first
    packet after the last frame (every tfdt of a fragmented MP4, an AVI index's first chunk size:
    the output lasted until it, 81,091 s of a frozen frame), or every packet ending before the
    first frame (a capture's audio PES all 3 hours early: the picture came 3 hours into the
    output). Read until every stream has shown a packet, and one that starts early one that ends
    near the picture: at once in a usual file, to the end where a stream never does."""
    waiting = {side.index for side in info.audio}  # no packet seen yet
    early: Set[int] = set()  # every packet so far ends over 10 s before the first frame
    unplaced: Dict[int, str] = {}
    if waiting:
        with open_probed(source_path, info) as source:
            for packet in demux(source, [source.streams[index] for index in waiting]):
                index = packet.stream.index
                if not packet.size or index not in waiting | early:
                    continue
                start, end = _packet_span(packet)
                if index in waiting:
                    waiting.discard(index)
                    if start is not None and start > video[1] + JUMP_FORWARD_S:
                        unplaced[index] = "apart"
                    elif end is not None and end < video[0] - JUMP_FORWARD_S:
                        early.add(index)
                elif end is None or end >= video[0] - JUMP_FORWARD_S:
                    early.discard(index)
                if not waiting and not early:
                    break
    return {**unplaced, **{index: "apart" for index in early}, **{index: "empty" for index in waiting}}


def _packet_span(packet) -> Tuple[Optional[Fraction], Optional[Fraction]]:
    """Where a packet starts and ends, in seconds (None: it states no time)."""
    stamp = packet.pts if packet.pts is not None else packet.dts
    if stamp is None or not packet.time_base:
        return None, None
    return stamp * Fraction(packet.time_base), (stamp + (packet.duration or 0)) * Fraction(packet.time_base)


AUDIO_DROPPED = {"empty": "the source's track holds no audio packets",
                 "apart": "its times start over 10 s after the video's last frame, or end over 10 s before its "
                          "first (damaged timestamps: nothing places it beside the picture)",
                 "unknown": "FFmpeg does not know the track's codec",
                 "unread": "FFmpeg's probe read none of the track's parameters (it starts mid-file, as a "
                           "transport stream's programme on new PIDs does)"}


def _audio_plan(audio, into: ContainerFormat, unplaced: Dict[int, str]) -> str:
    """copy, aac (re-encoded), or why the track is dropped (a key of AUDIO_DROPPED): one of a codec
    FFmpeg does not know can be neither decoded nor copied (it failed the probe, so the task), nor
    one whose sample rate the probe never read (the muxer refused the output after the upscaling)."""
    if audio.index in unplaced:
        return unplaced[audio.index]
    if audio.codec == "unknown":
        return "unknown"
    if not audio.sample_rate:
        return "unread"
    if audio.codec == "mp3" and into.quicktime and audio.sample_rate < QUICKTIME_MP3_MIN_RATE:
        return "aac"
    return "copy" if audio.codec in into.audio_copy else "aac"


def _subtitle_plan(codec: str, into: ContainerFormat) -> str:
    if codec in into.subtitle_copy:
        return "copy"
    return "text" if codec in TEXT_SUBTITLES else "drop"
