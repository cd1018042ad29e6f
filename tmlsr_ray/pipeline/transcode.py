"""What the output's container cannot hold as it is, re-encoded (no Ray here): audio to AAC (any
rate, layout or count of channels), text subtitles to the container's text form (mov_text's one
line of time for events that overlap)."""

from __future__ import annotations

import functools
import re
from fractions import Fraction
from typing import Iterator, List, Optional, Tuple

import av
import numpy as np

from tmlsr_ray.pipeline.audio_line import gap_slack

def as_source(stream, source, language: Optional[str]):
    """A stream made from a template keeps neither metadata nor disposition: the language, the
    title (what a player's track menu shows: "Director's commentary"; FFmpeg reads an MP4 track's
    as ``name``) and which track is the default (players pick that one) go along by hand."""
    if language:
        stream.metadata["language"] = language
    title = source.metadata.get("title") or source.metadata.get("name")
    if title:
        stream.metadata["title"] = title
    stream.disposition = source.disposition
    return stream


class AacTranscoder:
    """Audio MP4 cannot hold as it is, to AAC. The samples are stamped on a clock of their own
    from where the stream starts: a source time base coarser than a sample (AVI's MP3 counts
    1152-sample frames) stamped two 1024-sample AAC frames alike, which the muxer refused. Where
    a frame starts later than the clock by more than :attr:`_slack` (a dropout in a recording),
    the clock moves on to it, so the sound after a gap keeps its time, as copied audio does; one
    packet whose time alone is wrong never gets here (:class:`.audio_line.AudioLine`)."""

    def __init__(self, in_stream, out, language: Optional[str] = None):
        ctx = in_stream.codec_context
        rate = aac_rate(ctx.sample_rate)
        self._out = out
        self._stream = as_source(out.add_stream("aac", rate=rate), in_stream, language)
        self._stream.layout = aac_layout(ctx.layout, ctx.channels)
        self._discrete = _DiscreteChannels(ctx.layout) if _discrete(ctx.layout, ctx.channels) else None
        self._resampler = self._new_resampler()
        self._fed: Optional[Tuple[str, str, int]] = None  # the format, layout and rate of the frames fed to it
        self._clock = Fraction(1, rate)
        self._next_sample: Optional[int] = None  # set by the first decoded frame
        self._slack = round(gap_slack(in_stream.time_base) / self._clock)

    def feed(self, packet) -> None:
        for frame in packet.decode():
            if frame.pts is not None and frame.time_base:
                start = round(frame.pts * frame.time_base / self._clock)
                if self._next_sample is None or start - self._next_sample > self._slack:
                    self._next_sample = start
            elif self._next_sample is None:
                self._next_sample = 0
            for resampled in self._resampled(frame):
                self._encode(resampled)

    def _new_resampler(self) -> "av.AudioResampler":
        stream = self._stream
        if self._discrete:
            return self._discrete.resampler(stream.rate)
        return av.AudioResampler(format="fltp", layout=stream.layout, rate=stream.rate)

    def _resampled(self, frame) -> Iterator:
        """A stream whose layout or rate changes on the way (a broadcast's stereo programme and its
        5.1 film, a damaged MP2 header) gets a resampler for the new frames: PyAV's takes frames of
        one kind, and refused the next with ValueError ('Frame does not match AudioResampler
        setup'), which failed the task at the join."""
        fed = (frame.format.name, frame.layout.name, frame.sample_rate)
        if self._fed not in (None, fed):
            yield from self._resampler.resample(None)
            self._resampler = self._new_resampler()
        self._fed = fed
        yield from self._resampler.resample(frame)

    def flush(self) -> None:
        for resampled in self._resampler.resample(None):
            self._encode(resampled)
        self._out.mux(self._stream.encode(None))

    def _encode(self, frame) -> None:
        if self._discrete:
            frame = self._discrete.fit(frame)
        # Only fed frames come out of the resampler, so the clock has been set.
        frame.pts, frame.time_base = self._next_sample, self._clock
        self._next_sample += frame.samples
        self._out.mux(self._stream.encode(frame))


# The sample rates AAC's encoder takes (MPEG-4's table), lowest first
AAC_RATES = (7350, 8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000)


def aac_rate(rate: int) -> int:
    """The rate the sound is encoded at: its own, else the next AAC takes (an FLV's 5,512 Hz sound
    goes up to 7,350 Hz), else AAC's highest; the encoder refused to open at any other."""
    return next((r for r in AAC_RATES if r >= rate), AAC_RATES[-1])


# The layout AAC's encoder is given for a count of channels with no layout, or one it refuses
AAC_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1", 16: "hexadecagonal"}


def aac_layout(layout, channels: int) -> str:
    """A named layout for the AAC encoder, which refuses an unspecified one ("2 channels", as AVI,
    Matroska and MXF give PCM) and those with height channels (7.1.4, 5.1.2): the default layout
    of that many channels, 16 too (a broadcast master's discrete channels were mixed into one
    stereo pair); 16 for more than 8 unnamed ones (:class:`_DiscreteChannels`); else that of the
    most channels below it (a named layout is mixed down by its channels' names; a refused one
    failed the task)."""
    if not _unnamed(layout) and aac_encodes(layout.name):
        return layout.name
    if _discrete(layout, channels):
        return AAC_LAYOUTS[AAC_MAX_DISCRETE]
    return AAC_LAYOUTS.get(channels) or AAC_LAYOUTS[max((n for n in AAC_LAYOUTS if n < channels), default=2)]


AAC_MAX_NAMED, AAC_MAX_DISCRETE = 8, 16


def _unnamed(layout) -> bool:
    return layout is None or layout.name.endswith("channels")


def _discrete(layout, channels: int) -> bool:
    """More unnamed channels than a named AAC layout holds: each goes to its place in AAC's 16."""
    return _unnamed(layout) and channels > AAC_MAX_NAMED


class _DiscreteChannels:
    """More than 8 unnamed channels (a master's stems and languages, one per channel) as AAC's 16,
    each in its place: FFmpeg's resampler mixes only channels it can name. It failed the task
    ("Invalid argument") for 9 to 15 or over 16, and took 16 for a layout of its guessing, mixing
    10 of them into the other 11 and leaving 5 silent. Under 16 the rest are silent; past 16 the
    others are dropped, as AAC holds no more."""

    def __init__(self, source_layout):
        self._source = source_layout

    def resampler(self, rate: int):
        # Packed samples: PyAV's numpy bridge reaches only 8 planes.
        return av.AudioResampler(format="flt", layout=self._source, rate=rate)

    def fit(self, frame):
        samples = frame.to_ndarray().reshape(frame.samples, -1)[:, :AAC_MAX_DISCRETE]
        fitted = np.zeros((frame.samples, AAC_MAX_DISCRETE), np.float32)
        fitted[:, :samples.shape[1]] = samples
        out = av.AudioFrame.from_ndarray(fitted.reshape(1, -1), format="flt", layout=AAC_LAYOUTS[AAC_MAX_DISCRETE])
        out.sample_rate = frame.sample_rate
        return out


@functools.lru_cache(maxsize=None)
def aac_encodes(layout: str) -> bool:
    """Whether FFmpeg's AAC encoder opens for this channel layout."""
    context = av.CodecContext.create("aac", "w")
    context.layout, context.sample_rate, context.format = layout, 48000, "fltp"
    try:
        context.open()
    except (av.error.FFmpegError, ValueError):
        return False
    return True


_ASS_OVERRIDE = re.compile(rb"\{[^}]*\}")
_ASS_DRAWING = re.compile(rb"\\p(\d+)")
_ASS_BLANK = re.compile(rb"\{[^}]*\}|\\[Nnh]|\s")  # what shows no text: override blocks, breaks, spaces


def _without_drawings(text: bytes) -> bytes:
    """An ASS event's text less its vector drawings (``{\\p1}m 0 0 l 100 0 100 100{\\p0}``, a
    sign's box or shape): plain text has no drawings, and mov_text showed their coordinates as
    words. The override blocks stay for the encoder (italics, colours)."""
    kept, drawing, at = [], False, 0
    for block in _ASS_OVERRIDE.finditer(text):
        if not drawing:
            kept.append(text[at:block.start()])
        kept.append(block.group())
        scales = _ASS_DRAWING.findall(block.group())
        if scales:
            drawing = int(scales[-1]) > 0
        at = block.end()
    if not drawing:
        kept.append(text[at:])
    return b"".join(kept)


class TextSubtitleTranscoder:
    """Text subtitles to the text form the output holds: SRT, ASS or WebVTT to mov_text in MP4,
    mov_text to SRT in Matroska; timing unchanged.

    A mov_text sample shows until the next one starts: MP4 holds no events that overlap (an ASS
    sign over a line of dialogue, the two speakers of an SRT cue). The MP4 muxer cut an event
    short where the next one started, to nothing where they start together, so the sign never
    showed. Into mov_text, the events are laid out on one line of time instead: a cue from each
    place where what shows changes to the next, holding the text of every event showing then, in
    the source's order, one under the other."""

    def __init__(self, in_stream, out, codec: str):
        self._in = in_stream
        self._out = out
        self._stream = out.add_stream(codec)
        if not in_stream.codec_context.is_open:
            in_stream.codec_context.open()  # the decoder makes the ASS header the encoder needs
        self._stream.codec_context.subtitle_header = in_stream.codec_context.subtitle_header
        self._stream.time_base = in_stream.time_base
        as_source(self._stream, in_stream, in_stream.language)
        self._merge = codec == "mov_text"
        self._showing: List[Tuple[int, bytes, bytes]] = []  # (end, ASS fields before the text, text)
        self._shown_to: Optional[int] = None  # where the cues written so far end
        self._time_base = None

    def feed(self, packet) -> None:
        subtitles = self._in.codec_context.decode2(packet)
        if subtitles is None:
            return
        if not self._merge:
            self._encode(subtitles, packet.pts, packet.duration, packet.time_base)
            return
        if packet.pts is None or not packet.time_base:
            return
        self._time_base = packet.time_base
        duration = packet.duration
        if not duration and subtitles.end_display_time:  # the event says how long it shows, in ms
            duration = round(Fraction(subtitles.end_display_time - subtitles.start_display_time, 1000)
                             / Fraction(packet.time_base))
        self._show_until(packet.pts)
        for rect in subtitles:
            line = getattr(rect, "ass", b"")
            if not line:
                continue
            fields = line.split(b",", 8)
            prefix = b",".join(fields[:8]) + b"," if len(fields) == 9 else b"0,0,Default,,0,0,0,,"
            text = _without_drawings(fields[-1])
            if duration and duration > 0 and _ASS_BLANK.sub(b"", text):
                self._showing.append((packet.pts + duration, prefix, text))

    def _show_until(self, time: Optional[int]) -> None:
        """Writes the cues of the events showing up to ``time`` (to the last one's end: None)."""
        while self._showing and (time is None or self._shown_to < time):
            until = min(end for end, _, _ in self._showing)
            if time is not None:
                until = min(until, time)
            self._write(self._shown_to, until)
            self._shown_to = until
            self._showing = [event for event in self._showing if event[0] > until]
        if time is not None:
            self._shown_to = time if self._shown_to is None else max(self._shown_to, time)

    def _write(self, start: int, end: int) -> None:
        text = b"\\N{\\r}".join(text for _, _, text in self._showing)  # no event's style runs into the next
        cue = av.subtitles.subtitle.SubtitleSet.create(self._showing[0][1] + text, 0, end - start, start)
        self._encode(cue, start, end - start, self._time_base)

    def _encode(self, subtitles, pts: Optional[int], duration: int, time_base) -> None:
        encoded = self._stream.codec_context.encode_subtitle(subtitles)
        if encoded is None:
            return
        encoded.pts = encoded.dts = pts
        encoded.duration, encoded.time_base, encoded.stream = duration, time_base, self._stream
        self._out.mux(encoded)

    def flush(self) -> None:
        if self._merge:
            self._show_until(None)
