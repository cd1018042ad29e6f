"""Damaged packets of a video, counted and told where they are (no Ray here): a decoder's errors
recorded as frames decode, a decode that came short of its packets decoded again on one thread
(frame threads tell damage late, on a neighbour's frame) or with the errors the decoder conceals
told, and a stream refused when most of it is damaged."""

from __future__ import annotations

from contextlib import contextmanager
from fractions import Fraction
from typing import Any, Callable, ContextManager, Iterable, Iterator, List, Optional, Tuple

import av

from tmlsr_ray.errors import InputError
from tmlsr_ray.pipeline.container import codec_name, demux, ffmpeg_message
from tmlsr_ray.pipeline.h264_header import (NO_PICTURE_NAL_TYPES, PictureOrderGaps, holds_no_picture, holds_parameter_sets,
                                            holds_prefix_sei,
                                            holds_skipped_leading_picture, nal_length_size, starts_at_recovery_point)
from tmlsr_ray.pipeline.video_info import VideoInfo
from tmlsr_ray.pipeline.vpx_header import shows_no_frame


def decoded_frames(container, stream, damaged: Optional["DamagedPackets"] = None) -> Iterator["av.VideoFrame"]:
    """``container.decode(stream)`` over an input file (see :func:`.container.demux`); ``damaged``: what
    becomes of packets the decoder cannot read (None: FFmpeg's error ends the decode)."""
    if damaged is None:
        for packet in demux(container, stream):
            yield from packet.decode()
        return
    for packet in demux(container, stream):
        yield from damaged.decode(packet)
    damaged.check()


# FFmpeg's command line fails a decode where more than this share of its packets could not be
# read (its -max_error_rate), and plays past fewer
MAX_DAMAGED_SHARE = Fraction(2, 3)


REPEAT_HINT = 'damaged_frames "repeat" shows the frame before in place of each damaged one'


def at_recovery_point(packet) -> bool:
    """Whether ``packet`` is an H.264 packet at a recovery point, no IDR picture (see
    :func:`.h264_header.starts_at_recovery_point`)."""
    return codec_name(packet.stream) == "h264" and starts_at_recovery_point(memoryview(packet), _length_size(packet))


def holds_no_picture_packet(packet) -> bool:
    """Whether ``packet`` is an H.264 or HEVC packet of no picture (see :func:`.h264_header.holds_no_picture`)."""
    codec = codec_name(packet.stream)
    if not packet.size or codec not in NO_PICTURE_NAL_TYPES:
        return False
    return holds_no_picture(memoryview(packet), _length_size(packet), codec)


class PicturePackets:
    """An H.264 or HEVC stream's packets as its pictures: a packet of no picture (see
    :func:`.h264_header.holds_no_picture`) is no frame, and the parameter sets it holds go first in
    the next packet, as a muxer puts them in a keyframe's. One rule for a decode (DamagedPackets)
    and for the segments' packet index and files, which number the packets alike (see
    :func:`picture_packets`)."""

    def __init__(self):
        self._parameter_sets = b""  # of packets of no picture, for the next packet

    def picture(self, packet) -> Optional["av.Packet"]:
        """``packet``, the parameter sets kept before it put first; None where it holds no picture.
        Such a packet is not decoded alone: its decoder refuses it as damage ('no frame!'), and
        frame threads dropped the two frames before it without a word (a good raw stream ending
        with a stray delimiter), or told it late, on a neighbour's frame."""
        if holds_no_picture_packet(packet):
            self._keep_parameter_sets(packet)
            return None
        return self._with_parameter_sets(packet)

    def _keep_parameter_sets(self, packet) -> None:
        """Keeps a packet of no picture that holds parameter sets for the next packet: an AVI's chunk
        of them before a keyframe (or a Matroska file's with no configuration), which the pictures
        after it refer to. Skipped, a splice's new ones never reached the decoder, and 13 of its 48
        frames failed as damaged. Its prefix SEI too (a Matroska file's HDR10 metadata in a packet of
        its own): skipped, an HDR video read as having no mastering display."""
        data, length_size, codec = memoryview(packet), _length_size(packet), codec_name(packet.stream)
        if holds_parameter_sets(data, length_size, codec) or holds_prefix_sei(data, length_size, codec):
            self._parameter_sets += bytes(packet)

    def _with_parameter_sets(self, packet):
        """``packet``, the parameter sets kept before it put first. Not before a packet an MP4 edit
        list hides: PyAV cannot flag a packet discarded (MP4 keeps parameter sets in its
        configuration anyway)."""
        if not self._parameter_sets or not packet.size or packet.is_discard:
            return packet
        joined = av.Packet(self._parameter_sets + bytes(packet))
        joined.stream, joined.time_base = packet.stream, packet.time_base
        joined.pts, joined.dts, joined.duration = packet.pts, packet.dts, packet.duration
        joined.is_keyframe, joined.is_corrupt = packet.is_keyframe, packet.is_corrupt
        self._parameter_sets = b""
        return joined


def picture_packets(packets: Iterable["av.Packet"]) -> Iterator["av.Packet"]:
    """Those of ``packets`` (one stream's, in decode order) that hold data and a picture, each with
    the parameter sets stored before it in a packet of their own (see :class:`PicturePackets`):
    what the segments' packet index counts as frames and numbers, and what their files copy."""
    pictures = PicturePackets()
    for packet in packets:
        picture = pictures.picture(packet) if packet.size else None
        if picture is not None:
            yield picture


class DamagedPackets:
    """What becomes of the packets of one decode that its decoder cannot read (a bit error in a
    broadcast recording, a broken frame of an old download). By default the first fails the
    decode, saying where it is; with ``repeat`` they are left out, as FFmpeg's command line and
    players leave them, and counted (a segment shows the frame before in their place), unless
    they left the decode no frame, or (``limit_share``: a decode of the whole stream) were most of
    its packets. ``seconds(packet)``: where a packet is in the video, if known; ``owns(packet)``:
    whether a damaged packet is counted in ``dropped`` (a segment's own frames, not the pre-roll
    or neighbours another segment owns and counts; default all); ``gop_before``: packets at the
    decode's start that are the GOPs before a damaged keyframe (see ``Segment.gop_before``), of
    whose frames only the one shown last of those given (before any damaged keyframe among them)
    goes on."""

    def __init__(self, repeat: bool = False, seconds: Optional[Callable[[Any], Optional[float]]] = None,
                 limit_share: bool = True):
        self.repeat = repeat
        self.limit_share = limit_share
        self.seconds = seconds
        # where packets carry no time (a raw elementary stream: .h264, .m2v), the frame rate a
        # packet's place in decode order is told in seconds at
        self.order_rate: Optional[Fraction] = None
        # errors the decoder conceals are told (see damage_told_on_one_thread): the lead's are not
        # damage, and are passed
        self.concealed = False
        self.owns: Optional[Callable[[Any], bool]] = None
        self.gop_before = 0
        self.restart()

    @classmethod
    def retelling(cls, damaged: "DamagedPackets", concealed: bool) -> "DamagedPackets":
        """Counts afresh for a decode of ``damaged``'s packets again on one thread, each told where
        it is and owned as there; no share limit: the first decode's count has that."""
        one_thread = cls(damaged.repeat, damaged.seconds, limit_share=False)
        one_thread.owns, one_thread.order_rate, one_thread.concealed = damaged.owns, damaged.order_rate, concealed
        return one_thread

    def restart(self) -> None:
        """Counts afresh, for a decode done again (and the first)."""
        self.read = self.damaged = self.dropped = self.frames = 0
        self.repeated = 0  # frames shown in place of damaged ones, by a whole stream's decode (see _stood_in)
        # packets before the first keyframe, in decode order or in time (a recording started
        # inside a GOP, an open GOP's leading pictures): they decode to nothing, their references
        # missing, with no word unless concealed errors are told
        self.lead = 0
        # packets whose own headers show no picture (VP8/VP9 alternate references; of a segment,
        # those it owns): a good stream gives that many fewer frames, and came short at every decode
        self.unshown = 0
        # packets an MP4 edit list hides (flagged discard): decoded as references, their frames dropped
        self.hidden = 0
        self._keyframe_read = False
        self._later_keyframe_read = False  # one after the first
        self._keyframe_pts: Optional[int] = None  # the first keyframe's
        self.stamps: List[Optional[int]] = []  # each damaged packet's pts, as the decoder reported it
        # each counted one's place in decode order among the packets that give frames, for a frame
        # without a time to stand in at (see _stood_in)
        self.places: List[int] = []
        self._shown_before: Optional["av.VideoFrame"] = None  # the GOP before's, so far
        # the time of a damaged keyframe among the GOPs before: frames from it on refer to a
        # picture the decoder does not have, and are not the frame a player shows before
        self._shown_until: Optional[int] = None
        self._first_error: Optional[av.error.FFmpegError] = None
        self._first_at = ""
        # where a packet first gave no frame once frames came: on one thread, where frames the
        # decoder dropped without a word start (see lost_untold)
        self.stalled_at: Optional[float] = None
        # the decoder started (or was flushed) at an H.264 recovery point, a predicted picture: it gives
        # no frame until its pictures are whole, a good stream short with no word (see lost_untold)
        self.recovering = False
        # the time of the first frame it gave, so started, and the packets of frames shown before it:
        # partial pictures FFmpeg does not give, no damage (see _note_recovery)
        self.recovered_at: Optional[int] = None
        self.unrecovered = 0
        self._stamps_unrecovered: List[Optional[int]] = []
        self._pictures = PicturePackets()
        # the pictures an H.264 stream after start codes lacks (see short)
        self.order_gaps = PictureOrderGaps()

    def decode(self, packet) -> List["av.VideoFrame"]:
        if packet.size and codec_name(packet.stream) == "h264" and not _length_size(packet):
            # before a packet of no picture is passed: a damaged start code may leave one
            # a view of the packet: its scan for damaged start codes copies none of its bytes
            self.order_gaps.read(memoryview(packet), self._seconds(packet), self.owns is None or self.owns(packet))
        packet = self._pictures.picture(packet)
        if packet is None:
            return []
        if self.read < self.gop_before:
            damaged = self.damaged
            frames = self._decoded(packet)
            if self.damaged > damaged and packet.is_keyframe and packet.pts is not None and self._shown_until is None:
                self._shown_until = packet.pts
            self._keep_shown_before(frames)
            return []
        before = self._gop_before_drained(packet) if self.gop_before and self.read == self.gop_before else []
        frames = before + self._decoded(packet)
        if not frames and self.frames and self.stalled_at is None and packet.size:
            self.stalled_at = self._seconds(packet)
        self.frames += len(frames)
        return frames

    def _decoded(self, packet) -> List["av.VideoFrame"]:
        self.read += bool(packet.size)
        lead = bool(packet.size) and self._leads(packet)
        self.lead += lead
        self.unshown += bool(packet.size) and not lead and self._owned_unshown(packet)
        self.hidden += bool(packet.size) and packet.is_discard
        try:
            frames = packet.decode()
        except av.error.FFmpegError as exc:
            if not (self.concealed and (lead or self._recovering_before_a_frame())):
                self._count(packet, exc)
            frames = []
        if self.recovering and packet.size and not lead:
            self._note_recovery(packet.pts, frames)
        return frames

    def _note_recovery(self, pts: Optional[int], frames: List["av.VideoFrame"]) -> None:
        """Counts in ``unrecovered`` the packets of frames shown before the first the decoder gave,
        started at a recovery point (where packets carry times): like the lead, a good recording
        started there comes short by them, and by no more."""
        if self.recovered_at is not None:
            self.unrecovered += pts is not None and pts < self.recovered_at
            return
        self._stamps_unrecovered.append(pts)
        given = [frame.pts for frame in frames if frame.pts is not None]
        if given:
            self.recovered_at = min(given)
            self.unrecovered = sum(at is not None and at < self.recovered_at for at in self._stamps_unrecovered)

    def _recovering_before_a_frame(self) -> bool:
        """Whether the decoder, started at a recovery point (see ``recovering``), has given no frame
        yet: its pictures refer to ones from before the recovery point, which it lacks, and told the
        errors it conceals, it refused the first (B-frames referring past the recovery point) as
        damage, a good recording started there failing ('a frame at about 0.50 s is damaged'). FFmpeg
        gives none of them and plays on whole from the first frame it gives."""
        return self.recovering and not self.frames

    def _leads(self, packet) -> bool:
        """Whether ``packet`` comes before the first keyframe (see ``lead``), in decode order or in
        time: where packets carry no time (a raw HEVC stream), a RASL picture read before a later
        keyframe is one of the first's."""
        if not self._keyframe_read:
            if not packet.is_keyframe:
                return True
            self._keyframe_read, self._keyframe_pts = True, packet.pts
            self._note_start(packet)
            return False
        self._later_keyframe_read = self._later_keyframe_read or packet.is_keyframe
        if packet.pts is None:
            return not self._later_keyframe_read and self._skipped_leading(packet)
        return self._keyframe_pts is not None and packet.pts < self._keyframe_pts

    def _note_start(self, packet) -> None:
        """At the keyframe ``packet`` the decoder starts from (see ``recovering``)."""
        self.recovering = self.recovering or at_recovery_point(packet)

    @staticmethod
    def _skipped_leading(packet) -> bool:
        """Whether ``packet`` is an HEVC RASL picture (see :func:`.h264_header.holds_skipped_leading_picture`)."""
        if codec_name(packet.stream) != "hevc":
            return False
        return holds_skipped_leading_picture(memoryview(packet), _length_size(packet))

    def _owned_unshown(self, packet) -> bool:
        """Whether ``packet`` is one of ``owns``'s that its own header says shows no picture."""
        return (shows_no_frame(codec_name(packet.stream), memoryview(packet))
                and (self.owns is None or self.owns(packet)))

    def _count(self, packet, exc: av.error.FFmpegError) -> None:
        self.damaged += 1
        owned = self.owns is None or self.owns(packet)
        self.dropped += owned
        if owned:
            self.places.append(max(0, self.read - 1 - self.lead))
        self.stamps.append(packet.pts)
        if self._first_error is None:
            self._first_error, self._first_at = exc, self._at(packet)
        if not self.repeat:
            raise InputError(f"video could not be decoded: a frame{self._first_at} is damaged "
                             f"({ffmpeg_message(exc)}); {REPEAT_HINT}") from exc

    def _keep_shown_before(self, frames: List["av.VideoFrame"]) -> None:
        """The GOP before's frame shown last of those given: its last frame may be damaged too (a
        burst over the GOPs' boundary), and the model needs only the one frame."""
        for frame in frames:
            if frame.pts is None or (self._shown_until is not None and frame.pts >= self._shown_until):
                continue
            if self._shown_before is None or frame.pts > self._shown_before.pts:
                self._shown_before = frame

    def _gop_before_drained(self, packet) -> List["av.VideoFrame"]:
        """The GOP before's frame shown last, the frames the decoder still held of it drained
        first, then a decoder as if fresh: fed the damaged keyframe with them, H.264's reorder
        buffer gave the GOP's last frame after the frames that follow the keyframe."""
        decoder = packet.stream.codec_context
        try:
            self._keep_shown_before(decoder.decode(None))
        except av.error.FFmpegError:  # a damaged packet of that GOP, reported late: the segment before counts it
            self.damaged += 1
        decoder.flush_buffers()
        self._note_start(packet)
        shown, self._shown_before = self._shown_before, None
        return [shown] if shown is not None else []

    def check(self) -> None:
        """Fails the decode where damaged packets left it no frame, or were most of its packets."""
        if not self.damaged:
            return
        words = ffmpeg_message(self._first_error)
        if self.read <= 1:
            raise InputError(f"video could not be decoded ({words})") from self._first_error
        if not self.frames:
            raise InputError(f"video could not be decoded: a frame{self._first_at} is damaged ({words}), and no "
                             f"frame of the {self.read} packets around it could be read to show in its place "
                             f"({self.damaged} of them damaged)") from self._first_error
        if self.limit_share:
            refuse_mostly_damaged(self.damaged, self.read, words)

    def short(self) -> int:
        """How many frames the decode came short of its packets by, past those that give none in a
        good stream: where it came short of none and had no damage, the pictures an H.264 stream after
        start codes lacks (a picture's damaged start code ran its bytes into a neighbour's packet, see
        :class:`.h264_header.PictureOrderGaps`)."""
        return self.or_lacking(max(0, self.read - self.lead - self.unrecovered - self.unshown - self.hidden
                                   - self.frames))

    def or_lacking(self, short: int) -> int:
        """``short``, a count of frames the decode came short by; where it is none and nothing was
        damaged, the pictures the picture order shows lacking (see :meth:`short`)."""
        return short or (0 if self.damaged else self.order_gaps.missing()[0])

    def untold(self) -> int:
        """How many frames a decode on one thread came short of its packets by, past those its
        damaged packets account for (see lost_untold)."""
        return self.short() - self.damaged

    def lost_untold(self, frames: int, seconds: Optional[float] = None) -> None:
        """``frames`` the decode came short of that no error told (H.264 drops the GOP of a keyframe
        whose damage leaves no slice header without a word, errors it conceals told too; FFmpeg's
        parser runs such a packet into the next, or a picture's whose start code is damaged into a
        neighbour's): by default the decode fails, saying where they start (``seconds``, else where
        one thread's decode first gave no frame, else where the picture order first skips one); with
        ``repeat``, they are counted as damaged packets."""
        if self.repeat:
            self.damaged += frames
            self.dropped += frames
            return
        seconds = next((at for at in (seconds, self.stalled_at, self.order_gaps.missing()[1]) if at is not None), None)
        at = f" from about {seconds:.2f} s" if seconds is not None else ""
        counted = f"{frames} frame{at} is" if frames == 1 else f"{frames} frames{at} are"
        raise InputError(f"video could not be decoded: {counted} missing (the decoder gave none of them and no "
                         f"error: a damaged keyframe loses its group of pictures, a damaged start code its "
                         f"picture); {REPEAT_HINT}")

    def _at(self, packet) -> str:
        """The decoder reports a damaged packet a few packets late where it decodes frames in
        threads: where it is can only be told about."""
        seconds = self._seconds(packet)
        return f" at about {seconds:.2f} s" if seconds is not None else ""

    def _seconds(self, packet) -> Optional[float]:
        seconds = self.seconds(packet) if self.seconds is not None and packet.pts is not None else None
        if seconds is None and packet.pts is None and self.order_rate:
            seconds = float((self.read - 1) / self.order_rate)
        return seconds


def damage_told_on_one_thread(stream, packets: Iterable["av.Packet"], damaged: DamagedPackets,
                              concealed: bool = False) -> DamagedPackets:
    """Frame threads drop a damaged packet among a decode's last few as they drain it, frames
    beside it lost, without a word (FFmpeg), and tell the others a few packets late, maybe on a
    neighbour's frame: where a decode came short of its frames, or had damage, one thread decodes
    its packets again (``stream``'s, from its keyframe, a flush last) to tell, failing the task as
    a damaged frame does, or counting each packet where it is, in the count returned.
    ``concealed``: errors the decoder conceals told too (FFmpeg's err_detect explode), for a
    decode that came short with no word of damage: HEVC drops the GOP of a keyframe whose data
    it cannot read without one. Told so, the packets of a recording started inside a GOP, before
    its first keyframe or (leading pictures) before it in time, each failed a good recording as
    damaged (their references are missing): they pass."""
    one_thread = DamagedPackets.retelling(damaged, concealed)
    stream.thread_type = "SLICE"
    if concealed:
        stream.codec_context.options = {"err_detect": "explode"}
    for packet in packets:
        one_thread.decode(packet)
    one_thread.check()
    return one_thread


def refuse_mostly_damaged(damaged: int, packets: int, words: str = "Invalid data found when processing input") -> None:
    """Fails a video more than MAX_DAMAGED_SHARE of whose packets are damaged: FFmpeg's
    command line gives up on it too."""
    if damaged > MAX_DAMAGED_SHARE * packets:
        raise InputError(f"video could not be decoded: {damaged} of its {packets} packets are damaged ({words})")


def concealment_told(info: VideoInfo) -> bool:
    """Whether a decode that came short with no word of damage is decoded once more with the errors
    its decoder conceals told (err_detect explode, which finds HEVC's damaged keyframe): progressive
    streams only. Told so, H.264's reference-marking warnings ("mmco: unref short failure"), common
    in interlaced broadcast captures and harmless, become errors, and an interlaced stream of a
    field per packet always comes short of its packets."""
    return not info.interlaced


@contextmanager
def damage_retold_on_failure(reopen: Callable[[], ContextManager[Tuple[Any, Any]]], damaged: DamagedPackets,
                             info: VideoInfo, frame_threads: bool) -> Iterator[None]:
    """Around a decode on ``frame_threads``: where it fails (InputError), frame threads told a
    damaged packet late, on a neighbour's frame, or as they drained the decoder, where no packet
    says when: one thread tells where it is, failing there (see :func:`damage_retold`); where
    none was told (HEVC gave no frame of a damaged keyframe's GOP, 'holds no decodable frame'),
    with the errors it conceals told too, where :func:`concealment_told`. A decode that repeats
    damaged frames fails only where they left it nothing, and is not decoded again."""
    try:
        yield
    except InputError:
        if frame_threads and not damaged.repeat:
            damage_retold(reopen, damaged, concealed=not damaged.damaged and concealment_told(info))
        raise


def damage_told_as_decoded(stream, damaged: DamagedPackets, info: VideoInfo) -> None:
    """Before a decode that repeats damaged frames and is not decoded again (a whole stream's):
    HEVC's decoder gives none of the GOP of a keyframe it cannot read, with no word (36 of 48
    frames out, none counted); told the errors it conceals (where :func:`concealment_told`), it
    refuses each of the GOP's packets, which is counted where it is, and the packets of a
    recording started inside a GOP, whose references are missing, pass (see ``concealed``)."""
    if info.codec == "hevc" and concealment_told(info):
        stream.codec_context.options = {"err_detect": "explode"}
        damaged.concealed = True


def losses_untold_are_damage(info: VideoInfo, damaged: DamagedPackets) -> bool:
    """Whether frames a decode came short of that no error told are damage (see
    :meth:`DamagedPackets.lost_untold`): progressive H.264 (see :func:`concealment_told`) decoded
    from an IDR picture, or from a recovery point where the frames it gives carry times. MPEG-2's
    decoder drops a frame where a good broadcast's new sequence header changes the picture size;
    H.264's, started at an intra-refresh stream's recovery point, gives none of the frames shown
    before its pictures are whole (a recording started inside the stream, a segment cut there),
    which only the first frame's time tells apart (see ``DamagedPackets.unrecovered``)."""
    recovery_unknown = damaged.recovering and damaged.recovered_at is None
    return info.codec == "h264" and concealment_told(info) and not recovery_unknown


def damage_retold_where_short(reopen: Callable[[], ContextManager[Tuple[Any, Any]]], damaged: DamagedPackets,
                              info: VideoInfo, short: int, on_one_thread: bool = False,
                              lost_at: Optional[float] = None, counted_before: bool = False) -> None:
    """After a decode that had damage or came ``short`` of its frames (by that many): decoded again
    on one thread (see :func:`damage_retold`; not where it was decoded ``on_one_thread``, which told
    its damage where it is); where it came short and that tells no damage either, once more with
    the errors the decoder conceals told, where :func:`concealment_told`, and where that tells none
    either, the frames are lost untold, where :func:`losses_untold_are_damage` (see
    :meth:`DamagedPackets.lost_untold`; ``lost_at``: where the first of them is, in seconds, where
    known), unless ``counted_before`` (a re-keyed segment's file ends short by the damaged frames
    its cut counted)."""
    if (damaged.damaged or short) and not on_one_thread:
        damage_retold(reopen, damaged)
    if short and not damaged.damaged and concealment_told(info):
        damage_retold(reopen, damaged, concealed=True)
        if not (damaged.damaged or counted_before) and losses_untold_are_damage(info, damaged):
            damaged.lost_untold(short, lost_at)


def damage_retold(reopen: Callable[[], ContextManager[Tuple[Any, Any]]], damaged: DamagedPackets,
                  concealed: bool = False) -> None:
    """``damaged`` made what one thread's decode of ``reopen()``'s (container, stream) tells, each
    damaged packet where it is (frame threads put a late report on a neighbour's frame; a packet that
    gives no frame and is not damaged, an H.264 field or a VP8 alternate reference, passes), failing
    there (see :func:`damage_told_on_one_thread`)."""
    with reopen() as (container, stream):
        told = damage_told_on_one_thread(stream, demux(container, stream), damaged, concealed)
    damaged.damaged, damaged.dropped, damaged.stalled_at = told.damaged, told.dropped, told.stalled_at


def _length_size(packet) -> int:
    """The bytes each NAL unit's length takes in an H.264 or HEVC ``packet`` (0: start codes)."""
    return nal_length_size(packet.stream.codec_context.extradata, codec_name(packet.stream))
