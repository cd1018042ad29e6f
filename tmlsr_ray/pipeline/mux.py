"""The pieces joined without re-encoding into the output file (no Ray here).

:func:`assemble` copies the pieces' packets in order into one MP4 (``+faststart``), or a Matroska
or QuickTime file where asked, with the source's side streams (:mod:`.side_streams`), chapters,
timecode and file tags; Matroska also keeps the attachments (an ASS track's fonts), MP4 a cover
picture. Packets are interleaved by time, so memory does not grow with the length."""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Set, Tuple

import av

from tmlsr_ray.piece import Piece
from tmlsr_ray.pipeline.chapters import shifted_chapters
from tmlsr_ray.pipeline.container import attached_pictures, codec_name, copy_video_stream, open_probed
from tmlsr_ray.pipeline.encode import colour_box
from tmlsr_ray.pipeline.mp4_tracks import disable_subtitle_tracks
from tmlsr_ray.pipeline.output_formats import MP4, ContainerFormat
from tmlsr_ray.pipeline.side_streams import SideStreams, SideStreamsReport, audio_unplaced
from tmlsr_ray.pipeline.timecode import written_timecode
from tmlsr_ray.pipeline.video_info import VideoInfo


@dataclass
class MuxReport(SideStreamsReport):
    """What went into the output besides the video, for the task's metadata."""

    attachments: List[Dict] = field(default_factory=list)  # kept: name, mimetype, bytes
    attachments_dropped: List[Dict] = field(default_factory=list)
    streams_dropped: List[Dict] = field(default_factory=list)  # other video, cover pictures, data
    chapters: int = 0
    container: str = "mp4"  # the output's ContainerFormat name (its output_format)
    frames: int = 0
    encoder: Optional[str] = None  # the video encoder actually used (libx264, h264_nvenc)


def assemble(out_path: Path, source_path: Path, info: VideoInfo, pieces: Iterable[Tuple[Path, Piece]],
             last_frame_ticks: Optional[int] = None, into: ContainerFormat = MP4,
             source_first_pts: Optional[int] = None) -> MuxReport:
    """Joins the pieces (in order) into one file of the ``into`` container with the source's
    audio, subtitles and (where it keeps them) attachments. The last frame shows for
    ``last_frame_ticks`` of the source's time base (None: the encoder's 1 / rate);
    ``source_first_pts``: the source's first frame, which its timecode labels (None: the output's)."""
    report = MuxReport(container=into.name)
    pieces = list(pieces)
    if not pieces:
        raise ValueError("a video needs at least one piece")
    with open_probed(source_path, info) as source, \
            av.open(str(out_path), "w", format=into.muxer, options=_muxer_options(into, pieces[0][0])) as container:
        # The output starts at 0, every stream moved by the same amount, as FFmpeg's remux does: a
        # TS's clock starts anywhere (an hour in made an hour of empty edit in front), and MP4
        # shows nothing before 0 (a stream unwrapped past 0).
        container.metadata.update(_described(source.metadata))
        start = Fraction(pieces[0][1].first_pts) * info.time_base
        side = SideStreams(source, info, report, into,
                            audio_unplaced(source_path, info, (start, _video_end(pieces, info))))
        out = _ShiftedOutput(container, -min([start, *side.starts()]))
        chapters = shifted_chapters(source.chapters(), out.offset)
        container.set_chapters(chapters)
        report.chapters = len(chapters)
        with av.open(str(pieces[0][0])) as first:  # the video comes first, as players expect
            joiner = _PacketJoiner(out, first.streams.video[0], info.time_base,
                                   max(reorder_lead(path) for path, _ in pieces), with_tag=into.quicktime)
        if into.muxer == "matroska":
            _matroska_video_track(joiner.stream, info)
        skipped = _frames_between(source_first_pts, pieces[0][1].first_pts, info)
        timecode = start_timecode(source, info, counted=into.quicktime, frames_later=skipped)
        if timecode:
            joiner.stream.metadata["timecode"] = timecode  # MP4 writes it as a tmcd track, Matroska as a tag
            if info.average_rate:
                joiner.stream.codec_context.framerate = info.average_rate  # what it counts frames in
        report.streams_dropped = streams_left_out(source, info, timecode_kept=timecode is not None)
        side.open(out)
        subtitles = container.streams.subtitles
        subtitles_off = into.quicktime and subtitles and not any(
            s.disposition & av.stream.Disposition.default for s in subtitles)
        _carry_attachments(source_path, info, container, into, report)
        ends = [piece.first_pts for _, piece in pieces[1:]] + [None]
        for (path, piece), end in zip(pieces, ends):
            with av.open(str(path)) as container:
                for packet in joiner.packets(container.streams.video[0], piece, end, last_frame_ticks):
                    side.mux_until(float(packet.dts * packet.time_base))
                    out.mux(packet)
            report.frames += piece.frames
            report.encoder = report.encoder or piece.encoder
        side.mux_until(None)
    if subtitles_off:
        disable_subtitle_tracks(out_path)  # the muxer enabled the first one: it showed from the start
    return report


def _muxer_options(into: ContainerFormat, first_piece: Path) -> Dict[str, str]:
    if not into.quicktime:
        # Matroska stores presentation times only: the decode times the joiner puts ahead of
        # them are for ordering, and FFmpeg's default shift of negative ones would move every
        # frame later by the reorder lead.
        return {"avoid_negative_ts": "disabled"}
    with av.open(str(first_piece)) as first:
        colour_range = first.streams.video[0].codec_context.color_range
    return {"movflags": "+faststart" + colour_box(colour_range).get("movflags", "")}


def _matroska_video_track(stream, info: VideoInfo) -> None:
    """Matroska writes a track's frame duration from the codec's frame rate, which x264 derives
    from the time base (a 23.976 clip read back as 24000 frames/s), and marks no track default
    unless told: the source's average rate, as FFmpeg's remux writes it, and the default flag."""
    if info.average_rate:
        stream.codec_context.framerate = info.average_rate
    stream.disposition = av.stream.Disposition.default


# Pictures MP4 holds as its cover (the iTunes covr box), by codec, and the name and type one takes
# as an attachment (an MP4's cover has neither).
COVER_PICTURES = {"mjpeg": ("cover.jpg", "image/jpeg"), "png": ("cover.png", "image/png"),
                  "bmp": ("cover.bmp", "image/bmp")}


@dataclass(frozen=True)
class _Attachment:
    name: Optional[str]
    mimetype: Optional[str]
    data: bytes
    picture: Optional[object] = None  # the attached-picture stream FFmpeg reads a cover image as


def _carry_attachments(source_path: Path, info: VideoInfo, out, into: ContainerFormat, report: MuxReport) -> None:
    """The source's attachments (fonts, cover images) into a container that keeps them, and a
    cover picture into MP4 as its cover, which players and file browsers show: a music video's or
    a podcast's cover was left out of MP4 unmentioned, a Matroska cover listed as dropped."""
    covers = []
    with open_probed(source_path, info) as source:  # its own reader: the side streams' has not started
        for attachment in _attachments(source):
            entry = {"name": attachment.name, "mimetype": attachment.mimetype}
            if into.keeps_attachments and attachment.name and attachment.data:
                out.add_attachment(attachment.name, attachment.mimetype or "application/octet-stream", attachment.data)
            elif into is MP4 and attachment.data and _mp4_cover(attachment.picture):
                covers.append((_cover_stream(out, attachment.picture), attachment.data))
            else:
                report.attachments_dropped.append({**entry, "reason": _why_dropped(attachment, into)})
                continue
            report.attachments.append({**entry, "bytes": len(attachment.data)})
    for stream, data in covers:  # after every stream is added: the first packet writes the header
        packet = av.Packet(data)
        packet.stream, packet.time_base, packet.pts, packet.dts = stream, stream.time_base, 0, 0
        out.mux(packet)


def _mp4_cover(picture) -> bool:
    """A picture MP4 takes as its cover: of a type its covr box names, and of a size FFmpeg read.
    The MP4 muxer fails the whole file over a picture of no size ("dimensions not set"), as a
    Matroska attachment whose MIME type misnames it (a JPEG called image/png) or a damaged one is."""
    return picture is not None and codec_name(picture) in COVER_PICTURES and bool(picture.codec_context.width)


def _why_dropped(attachment: _Attachment, into: ContainerFormat) -> str:
    if into is MP4 and attachment.data and attachment.picture is not None \
            and codec_name(attachment.picture) in COVER_PICTURES:
        return f"its picture is not the {codec_name(attachment.picture)} it is said to be, or is damaged"
    return f"{into.name.upper()} cannot hold attachments" if not into.keeps_attachments \
        else "the attachment has no name or no data"


def _cover_stream(out, picture):
    stream = out.add_stream_from_template(picture)
    stream.disposition = av.stream.Disposition.attached_pic
    return stream


def _attachments(source) -> List[_Attachment]:
    """Each attachment, and each cover picture: FFmpeg hands a Matroska image attachment
    (cover.jpg) and an MP4's cover over as an attached picture, a video stream of one packet."""
    found = [_Attachment(a.name, a.mimetype, bytes(a.data or b"")) for a in source.streams.attachments]
    for stream, data in attached_pictures(source):
        name, mimetype = COVER_PICTURES.get(codec_name(stream), (None, None))
        name = stream.metadata.get("filename") or _unused_name(name, {a.name for a in found})
        found.append(_Attachment(name, stream.metadata.get("mimetype", mimetype), data, stream))
    return found


def _unused_name(name: Optional[str], taken: Set[Optional[str]]) -> Optional[str]:
    """``name``, or ``cover-2.jpg`` and on where an attachment has it: an MP4's covers have no
    names, and Matroska tells attachments apart by theirs (two were cover.jpg)."""
    if name is None or name not in taken:
        return name
    stem, dot, suffix = name.partition(".")
    return next(other for other in (f"{stem}-{n}{dot}{suffix}" for n in itertools.count(2)) if other not in taken)


MAX_TIMECODE_RATE = 255  # frames a second: a tmcd sample entry counts them in one byte


def start_timecode(source, info: VideoInfo, counted: bool, frames_later: int = 0) -> Optional[str]:
    """The SMPTE timecode of the output's first frame (``01:02:03:04``), from the source's, as a
    camera or phone records it: FFmpeg reads a QuickTime ``tmcd`` track onto the video stream it
    belongs to and onto the track itself, and a Matroska tag onto its track. The output's frames
    are the source's, so they keep their labels (it was lost: editors line up clips by it); MXF, DV
    and Matroska remuxed from them state it for the file. ``frames_later``: the source's frames
    before the output's first (before a keyframe, they do not decode), which the label moves on
    by (the source's first frame's was written). ``counted``: the output counts it in
    frames (MP4's ``tmcd`` track; Matroska keeps it as a tag), so None at a rate a
    ``tmcd`` track cannot count in (a byte holds a second's frames: FFmpeg's MP4 muxer fails the
    whole file over 255 frames a second, or over the 1,000 a file-wide timecode was counted in, in
    a stream of no stated rate and a millisecond time base), or for a label that is no timecode
    (the muxer left it out unsaid: its tmcd track is listed as dropped)."""
    if counted and (not info.average_rate or not 1 <= round(info.average_rate) <= MAX_TIMECODE_RATE):
        return None
    for tags in (source.streams[info.stream_index].metadata, *(s.metadata for s in source.streams.data),
                 source.metadata):
        label = _tag(tags, "timecode")
        if label:
            written = written_timecode(label, info.average_rate, frames_later)
            return written if counted else written or label  # a Matroska tag holds any text
    return None


def _frames_between(earlier_pts: Optional[int], later_pts: int, info: VideoInfo) -> int:
    """The source's frames from one time to a later one, at its average rate (a timecode counts
    time in frames of it); 0 where either is not known."""
    if earlier_pts is None or not info.average_rate:
        return 0
    return max(0, round((later_pts - earlier_pts) * info.time_base * info.average_rate))


def streams_left_out(source, info: VideoInfo, timecode_kept: bool) -> List[Dict]:
    """The source's streams the output has no place for, named for the metadata (they went
    unmentioned): video besides the one upscaled (another angle, a preview track) and data (camera
    telemetry such as GoPro's GPMF, KLV). Audio, subtitles, attachments and cover pictures are
    listed with their own kind; a tmcd track whose timecode the video keeps is no loss."""
    left = []
    for stream in source.streams:
        if stream.type == "video" and stream.index != info.stream_index:
            if stream.disposition & av.stream.Disposition.attached_pic:
                continue  # a cover picture, listed with the attachments
            reason = f"one video is upscaled, stream {info.stream_index}"
        elif stream.type == "data" and not (timecode_kept and _tag(stream.metadata, "timecode")):
            reason = "data streams are not carried"
        elif stream.type not in ("video", "audio", "subtitle", "attachment", "data"):
            reason = "a stream of no known kind"
        else:
            continue
        codec = codec_name(stream) if stream.codec_context else getattr(stream, "name", None) or "unknown"
        title = _tag(stream.metadata, "title")
        if stream.type == "data":  # a camera names its telemetry track only by its handler ("GoPro MET")
            title = title or _tag(stream.metadata, "handler_name")
        left.append({"index": stream.index, "type": stream.type, "codec": codec, "title": title, "reason": reason})
    return left


def _tag(metadata: Dict[str, str], name: str) -> Optional[str]:
    """A tag by its name in any case (Matroska's are upper case)."""
    return next((value for key, value in metadata.items() if key.lower() == name), None)


# Container tags that describe the source file, not the video: the MP4 muxer writes its own. The
# timecode goes on the video stream (start_timecode), stated in the frames it counts.
FILE_TAGS = {"major_brand", "minor_version", "compatible_brands", "encoder", "duration", "handler_name", "timecode"}


def _described(metadata: Dict[str, str]) -> Dict[str, str]:
    """What the source says about the video (title, creation time, a phone's location, comment),
    for the output; a language variant of a tag (``location-eng``) is the muxer's to write."""
    return {key: value for key, value in metadata.items()
            if key.lower() not in FILE_TAGS and not re.search(r"-[a-z]{3}$", key)}


class _ShiftedOutput:
    """The output container, every packet muxed ``offset`` seconds later."""

    def __init__(self, container, offset: Fraction):
        self._container = container
        self.offset = offset

    def __getattr__(self, name):
        return getattr(self._container, name)

    def mux(self, packets) -> None:
        for packet in packets if isinstance(packets, list) else [packets]:
            if self.offset and packet.time_base:
                ticks = round(self.offset / Fraction(packet.time_base))
                packet.pts = None if packet.pts is None else packet.pts + ticks
                packet.dts = None if packet.dts is None else packet.dts + ticks
            self._container.mux(packet)


def reorder_lead(path: Path) -> Fraction:
    """How far ahead of display a piece must decode, in seconds: at each place in decode order,
    the time shown at that place in display order minus the time of the frame decoded there (0
    without B-frames)."""
    with av.open(str(path)) as piece:  # the stream's time base is read while the file is open
        stream = piece.streams.video[0]
        shown = [packet.pts for packet in _PacketJoiner.demux(stream)]
        return Fraction(max([0] + [s - d for s, d in zip(sorted(shown), shown)])) * stream.time_base


class _PacketJoiner:
    """One continuous video stream out of pieces: the first piece's stream is the template (every
    piece has the same parameters), each piece's timestamps are restored to its source times, and
    decode times stay strictly increasing across the joins.

    The MP4 stores each frame's duration as the step to the next decode time, so decode times
    are the display times in order, ``lead`` seconds (the most any piece needs) earlier. The
    encoders' own ran further ahead where frames come close together (VFR), and not at all in a
    short piece without B-frames: the table came out short of the clip, or one frame long."""

    def __init__(self, out, template, source_base: Fraction, lead: Fraction, with_tag: bool = True):
        self._source_base = Fraction(source_base)
        self._lead = lead
        self.stream = copy_video_stream(out, template, with_tag)
        self.stream.time_base = template.time_base
        self._extradata = template.codec_context.extradata
        self._last_dts: Optional[int] = None

    def packets(self, stream, piece: Piece, end_pts: Optional[int], last_frame_ticks: Optional[int]) -> Iterator:
        """``end_pts``: the source time the piece's last frame ends (the next piece's start); None
        for the last piece, whose last frame lasts ``last_frame_ticks``."""
        if stream.codec_context.extradata != self._extradata:
            raise ValueError(f"piece {piece.index} was encoded with other parameters than the first")
        packets = list(self.demux(stream))
        if not packets:
            return
        shift = self._ticks(piece.first_pts, stream) - min(p.pts for p in packets)
        lead = math.ceil(self._lead / Fraction(stream.time_base))
        for packet, shown in zip(packets, sorted(p.pts for p in packets)):
            packet.pts += shift
            packet.dts = shown + shift - lead
        if end_pts is not None:
            _show_until(packets, self._ticks(end_pts, stream))
        else:
            if last_frame_ticks:
                _show_until(packets, max(p.pts for p in packets) + max(1, self._ticks(last_frame_ticks, stream)))
            # the table's last step: the frame decoded last lasts as long as the frame shown last
            packets[-1].duration = max(packets, key=lambda p: p.pts).duration
        for packet in packets:
            if self._last_dts is not None and packet.dts <= self._last_dts:
                packet.dts = self._last_dts + 1
            self._last_dts = packet.dts
            packet.stream = self.stream
            yield packet

    def _ticks(self, source_ticks: int, stream) -> int:
        return round(Fraction(source_ticks) * self._source_base / Fraction(stream.time_base))

    @staticmethod
    def demux(stream) -> Iterator:
        for packet in stream.container.demux(stream):
            if packet.dts is not None and packet.pts is not None:
                yield packet


def _show_until(packets: Sequence, end: int) -> None:
    """Each packet's duration becomes how long its frame shows: until the next frame shown, the
    last until ``end``. The MP4 muxer ends the edit list at the latest pts + duration; a piece's
    own durations are decode-time steps, its last one 1 / the average rate."""
    shown = sorted(packets, key=lambda p: p.pts)
    for packet, following in zip(shown, shown[1:]):
        packet.duration = following.pts - packet.pts
    if end > shown[-1].pts:
        shown[-1].duration = end - shown[-1].pts


def _video_end(pieces: Sequence[Tuple[Path, Piece]], info: VideoInfo) -> Fraction:
    """Where the video's last frame ends, in seconds of the source (its stated duration from its
    first frame where it states no rate)."""
    first, last = pieces[0][1], pieces[-1][1]
    if info.average_rate:
        return Fraction(last.first_pts) * info.time_base + last.frames / Fraction(info.average_rate)
    return Fraction(first.first_pts) * info.time_base + Fraction(info.duration_s or 0)
