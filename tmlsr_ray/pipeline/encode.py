"""The encode stage for videos: pieces encoded where the frames are, joined without re-encoding
(no Ray here).

- a piece is one segment's upscaled frames as an MP4 of its own (video only) that starts with a
  keyframe: H.264 (libx264, or h264_nvenc where asked and present), CRF and preset configurable,
  ``yuv420p`` (or ``yuv420p10le`` for 10-bit output), x264's ``stitchable`` headers so every
  piece of a task has the same parameter sets; ProRes 422 HQ (intra-frame, 10-bit 4:2:2) in a
  QuickTime piece, which MP4 cannot hold;
- every frame keeps its source timestamp (variable frame rate survives) in the source time base;
- :func:`assemble` copies the pieces' packets in order into one MP4 (``+faststart``), or a
  Matroska or QuickTime file where asked, and muxes the source's audio and subtitle streams once: audio
  copied packet for packet where the container can hold the codec, re-encoded to AAC where it
  cannot; subtitles copied where it can hold them, text ones converted to its text form
  otherwise; Matroska also keeps the attachments (an ASS track's fonts); packets interleaved by
  time, so memory does not grow with the length;
- colour tags (primaries, transfer, matrix, range) are carried over, and the RGB→YUV conversion
  uses the matrix and range the tags declare.
"""

from __future__ import annotations

import functools
import io
import itertools
import math
import re
from collections import deque
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Deque, Dict, Iterable, Iterator, List, Optional, Sequence, Set, Tuple

import av
import numpy as np

from tmlsr_ray.models.yuv import SWS_MATRIX, SWS_MATRIX_TAG, Yuv420
from tmlsr_ray.errors import InputError
from tmlsr_ray.piece import Piece
from tmlsr_ray.pipeline.colour import is_hdr, written_colour
from tmlsr_ray.pipeline.decode import EXACT_SWS, VideoInfo, codec_name, copy_video_stream, demux, open_container
from tmlsr_ray.pipeline.mp4_tracks import disable_subtitle_tracks
from tmlsr_ray.pipeline.timecode import written_timecode
from tmlsr_ray.pipeline.timeline import JUMP_FORWARD_S

MP4_AUDIO_COPY = frozenset({"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"})
TEXT_SUBTITLES = frozenset({"subrip", "srt", "ass", "ssa", "webvtt", "text", "mov_text"})
# Codecs FFmpeg's Matroska muxer has an ID for (its ff_mkv_codec_tags) that players know; the
# RealAudio and ATRAC ones it also takes are re-encoded.
MATROSKA_AUDIO_COPY = MP4_AUDIO_COPY | {
    "dts", "truehd", "mlp", "vorbis", "mp2", "wavpack", "tta", "pcm_u8", "pcm_s16le", "pcm_s16be", "pcm_s24le",
    "pcm_s24be", "pcm_s32le", "pcm_s32be", "pcm_f32le", "pcm_f64le"}
# QuickTime (a studio's .mov) holds MP4's audio but Opus and FLAC, and PCM as it is: a master's
# 24-bit sound is copied, not re-encoded
MOV_AUDIO_COPY = (MP4_AUDIO_COPY - {"opus", "flac"}) | {
    "mp2", "pcm_u8", "pcm_s8", "pcm_s16le", "pcm_s16be", "pcm_s24le", "pcm_s24be", "pcm_s32le", "pcm_s32be",
    "pcm_f32le", "pcm_f32be", "pcm_f64le", "pcm_f64be", "pcm_alaw", "pcm_mulaw"}
# FFmpeg's MP4 and QuickTime muxer refuses MP3 below this rate (MPEG-2.5: 8, 11.025 and 12 kHz) as
# not standard: an old FLV's 11 kHz sound, a voice recorder's 8 kHz
QUICKTIME_MP3_MIN_RATE = 16000
MATROSKA_SUBTITLE_COPY = frozenset({"ass", "ssa", "subrip", "srt", "webvtt", "text", "hdmv_pgs_subtitle",
                                    "dvd_subtitle", "dvb_subtitle"})


@dataclass(frozen=True)
class ContainerFormat:
    """What a video's output file is. MP4 plays everywhere; Matroska keeps what MP4 cannot
    hold: every audio codec as it is (PCM, DTS, TrueHD, Vorbis), styled ASS and bitmap
    subtitles (PGS, VobSub, DVB), and attachments (the fonts an ASS track is drawn with);
    QuickTime is what editing suites take: ProRes, and PCM sound as it is."""

    name: str  # the task's output_format and the file's extension
    muxer: str
    content_type: str
    audio_copy: frozenset
    subtitle_copy: frozenset
    text_subtitles: str  # what other text subtitles become
    keeps_attachments: bool
    edit_lists: bool  # it hides what a source's edit list hid (else those packets are left out)
    quicktime: bool = False  # an MP4 or QuickTime file: FFmpeg's one muxer for both (tmcd, covr, track flags)
    refuses: frozenset = frozenset()  # video codecs its muxer here cannot hold


MP4 = ContainerFormat("mp4", "mp4", "video/mp4", MP4_AUDIO_COPY, frozenset({"mov_text"}), "mov_text", False, True,
                      quicktime=True, refuses=frozenset({"prores"}))
MATROSKA = ContainerFormat("mkv", "matroska", "video/x-matroska", MATROSKA_AUDIO_COPY, MATROSKA_SUBTITLE_COPY,
                           "subrip", True, False)
MOV = ContainerFormat("mov", "mov", "video/quicktime", MOV_AUDIO_COPY, frozenset({"mov_text"}), "mov_text", False, True,
                      quicktime=True, refuses=frozenset({"av1"}))
CONTAINER_FORMATS = {c.name: c for c in (MP4, MATROSKA, MOV)}


@dataclass(frozen=True)
class EncodeOptions:
    codec: str = "libx264"
    crf: int = 18
    preset: str = "medium"
    ten_bit: bool = False
    threads: int = 0  # encoder threads; 0 = FFmpeg's choice (every core)

    @property
    def pix_fmt(self) -> str:
        if is_prores(self.codec):
            return "yuv422p10le"
        return "yuv420p10le" if self.ten_bit else "yuv420p"

    @property
    def rate_controlled(self) -> bool:
        """Whether ``crf`` and ``preset`` steer the encoder (ProRes's quality is its profile)."""
        return not is_prores(self.codec)


@dataclass
class MuxReport:
    """What went into the output besides the video, for the task's metadata."""

    audio_copied: List[Dict] = field(default_factory=list)
    audio_reencoded: List[Dict] = field(default_factory=list)
    audio_dropped: List[Dict] = field(default_factory=list)
    subtitles_copied: List[Dict] = field(default_factory=list)
    subtitles_dropped: List[Dict] = field(default_factory=list)
    attachments: List[Dict] = field(default_factory=list)  # kept: name, mimetype, bytes
    attachments_dropped: List[Dict] = field(default_factory=list)
    streams_dropped: List[Dict] = field(default_factory=list)  # other video, cover pictures, data
    chapters: int = 0
    container: str = "mp4"  # the output's ContainerFormat name (its output_format)
    frames: int = 0
    encoder: Optional[str] = None  # the video encoder actually used (libx264, h264_nvenc)


def yuv420_layout(color: Dict[str, int], options: EncodeOptions) -> Yuv420:
    """The planes the encoder takes for output tagged ``color``: what a GPU replica converts its
    frames into, and what :class:`PieceWriter` converts RGB frames into."""
    return Yuv420(SWS_MATRIX.get(color["colorspace"], "ITU601"), color["color_range"] == 2,
                  10 if options.ten_bit else 8)


def gpu_planes(color: Dict[str, int], options: EncodeOptions) -> Optional[Yuv420]:
    """The encoder's 4:2:0 planes, which a GPU replica converts the upscaled frames into; None for
    an encoder of other planes (ProRes's 4:2:2), handed RGB."""
    return yuv420_layout(color, options) if options.pix_fmt.startswith("yuv420p") else None


def output_sample_aspect(info: VideoInfo, size: Tuple[int, int]) -> Fraction:
    """Non-square pixels stay so: the output keeps the source's display aspect ratio."""
    sar = info.sample_aspect * Fraction(info.width * size[1], info.height * size[0])
    return sar.limit_denominator(1000)


def even_size(width: int, height: int) -> tuple[int, int]:
    """4:2:0 needs even dimensions: odd ones are rounded down (never below 2)."""
    return max(2, width - width % 2), max(2, height - height % 2)


HARDWARE_ENCODER = "h264_nvenc"
# x264 speed presets and the NVENC presets (p1 fastest … p7 best) of about the same trade-off.
NVENC_PRESETS = {"ultrafast": "p1", "superfast": "p2", "veryfast": "p3", "faster": "p4", "fast": "p4",
                 "medium": "p5", "slow": "p6", "slower": "p7", "veryslow": "p7"}


NVENC_MAX_SIZE = 4096  # H.264 NVENC's largest width and height


@functools.lru_cache(maxsize=None)
def encoder_works(name: str, width: int = 256, height: int = 256, pix_fmt: str = "yuv420p") -> bool:
    """Whether FFmpeg can really open encoder ``name`` here for frames of this size and format:
    NVENC is listed by every build but needs an NVIDIA GPU and driver, and has its own limits
    (size, pixel formats, sessions per GPU), which only opening it tells."""
    if name not in av.codecs_available:
        return False
    try:
        context = av.CodecContext.create(name, "w")
        context.width, context.height, context.pix_fmt = width, height, pix_fmt
        context.time_base = Fraction(1, 25)
        context.open()
        context.encode(av.VideoFrame(width, height, pix_fmt))
        context.encode(None)
        return True
    except (av.error.FFmpegError, OSError, ValueError):
        return False


HEVC_ENCODER = "libx265"
# The smallest frame side an encoder takes: libx265 refuses to open under 16, and SVT-AV1 never
# finished frames 8 or 16 pixels high (640x16 ran until the call's timeout; 640x32 finished).
MIN_FRAME_SIDE = {HEVC_ENCODER: 16, "libsvtav1": 32}
# The largest (width, height) an encoder opens for: libx264 refuses a side over 16384, SVT-AV1 a
# width over 16384 or a height over 8704; libx265, beside a side of 32 or more, opened up to 65538
# (32768 is kept as its cap), and under 32 see HEVC_THIN_SIDE; ProRes's frame header holds a side
# in 16 bits (prores_ks opens above it and writes 65536 as 0; prores_aw refuses to open).
MAX_FRAME_SIZE = {"libx264": (16384, 16384), HEVC_ENCODER: (32768, 32768), "libsvtav1": (16384, 8704),
                  "prores_ks": (65535, 65535), "prores_aw": (65535, 65535)}
# Under 32 a side libx265 codes in 16-pixel CTUs, which HEVC allows only up to level 4.1: the long
# side, padded to the preset's smallest CU (16 at ultrafast), may then be at most 4222. 4208x16
# opened at every preset, 4210x16 not at ultrafast, 4218x16, 8192x16 and 32768x16 at none.
HEVC_THIN_SIDE, HEVC_THIN_MAX_SIDE = 32, 4208
PRORES_ENCODER = "prores_ks"  # slower than prores_aw, but holds each profile's data rate
PRORES_ENCODERS = (PRORES_ENCODER, "prores_aw")
PRORES_HQ = "3"  # its profile: 422 HQ, the mezzanine editors and finishing ask for
CODEC_ALIASES = {"hevc": HEVC_ENCODER, "h265": HEVC_ENCODER, "h264": "libx264", "prores": PRORES_ENCODER}
AV1_ENCODERS = ("libsvtav1", "libaom-av1", "librav1e")  # the fastest first
# What a task may ask for as ``video_codec``, and the encoder preference each stands for
# (``h264`` may use NVENC where it works, as ``auto`` does).
TASK_CODECS = {"h264": "auto-h264", "hevc": HEVC_ENCODER, "av1": "av1", "prores": PRORES_ENCODER}
# x264's speed presets in SVT-AV1's terms (0 slowest … 13 fastest)
SVT_PRESETS = {"ultrafast": 12, "superfast": 11, "veryfast": 10, "faster": 9, "fast": 8, "medium": 7,
               "slow": 5, "slower": 4, "veryslow": 3}


def task_codecs_available() -> List[str]:
    """The ``video_codec`` values this FFmpeg build can encode."""
    have = av.codecs_available
    encoders = {"h264": ("libx264", HARDWARE_ENCODER), "hevc": (HEVC_ENCODER,), "av1": AV1_ENCODERS,
                "prores": (PRORES_ENCODER,)}
    return [name for name, names in encoders.items()
            if any(n in have and (n != HARDWARE_ENCODER or encoder_works(n)) for n in names)]


def resolve_codec(preference: str, size: tuple = (256, 256), pix_fmt: str = "yuv420p", hdr: bool = False) -> str:
    """``auto`` = HEVC Main10 for HDR (what HDR displays and browsers decode: H.264 High 10 plays
    almost nowhere in hardware), else the hardware encoder when it opens here for this stream
    (H.264 NVENC takes 8-bit 4:2:0 up to 4096 px), else libx264; ``hevc`` = libx265; any other
    name as given."""
    if preference == "av1":
        return next((name for name in AV1_ENCODERS if name in av.codecs_available), AV1_ENCODERS[0])
    if preference not in ("auto", "auto-h264"):
        return CODEC_ALIASES.get(preference, preference)
    if (preference == "auto" and hdr and HEVC_ENCODER in av.codecs_available
            and min(size) >= MIN_FRAME_SIDE[HEVC_ENCODER] and not too_long_for_hevc(size)):
        return HEVC_ENCODER
    fits = max(size) <= NVENC_MAX_SIZE and pix_fmt == "yuv420p"
    return HARDWARE_ENCODER if fits and encoder_works(HARDWARE_ENCODER, *size, pix_fmt) else "libx264"


def piece_muxer(encoder: str) -> str:
    """The container of a piece: MP4, which holds no ProRes; QuickTime for it."""
    return "mov" if is_prores(encoder) else "mp4"


def is_prores(codec: str) -> bool:
    """A ProRes encoder, the task's or the service's (``video_codec: prores_aw`` set by an operator)."""
    return CODEC_ALIASES.get(codec, codec) in PRORES_ENCODERS


def container_refusal(into: ContainerFormat, codec: str) -> Optional[str]:
    """Why ``into`` cannot hold video of ``codec`` (a task's ``video_codec`` or an encoder's
    name); None where it can."""
    try:
        name = codec if codec in TASK_CODECS else av.Codec(resolve_codec(codec), "w").canonical_name
    except av.codec.codec.UnknownCodecError:
        return None  # no such encoder: opening it says so
    if name not in into.refuses:
        return None
    others = [c.name for c in CONTAINER_FORMATS.values() if name not in c.refuses]
    return f"{into.name.upper()} cannot hold {name}; ask for output_format {' or '.join(others)}"


def output_container(requested: Optional[str], encoder: str) -> ContainerFormat:
    """The ``output_format`` asked for; else MP4, or QuickTime for an encoder MP4 cannot hold."""
    if requested:
        return CONTAINER_FORMATS[requested]
    return MOV if is_prores(encoder) else MP4


def too_long_for_hevc(size: tuple) -> bool:
    """A frame under HEVC_THIN_SIDE a side and longer than libx265 then opens for."""
    return min(size) < HEVC_THIN_SIDE and max(size) > HEVC_THIN_MAX_SIDE


def encoded_crf(encoder: str, crf: int) -> int:
    """The quality an encoder runs at for ``crf``: NVENC's cq 0 means "automatic", and FFmpeg hands
    SVT-AV1 a crf of 0 as none (its default, 35), so a 0 asks both for 1, their best."""
    return max(crf, 1) if encoder in (HARDWARE_ENCODER, "libsvtav1") else crf


def encoder_options(codec: str, crf: int, preset: str, threads: int = 0,
                    mastering: Optional[Dict[str, str]] = None) -> dict:
    """The quality settings in each encoder's own terms (NVENC: constant quality ``cq``). x264's
    ``stitchable`` keeps its headers independent of the content, so pieces join into one stream;
    HDR10 mastering metadata goes into each encoder's SEI."""
    if codec == "libx264":
        params = ["stitchable=1"]
        if mastering:
            params += [f"mastering-display={mastering['master_display']}"] if "master_display" in mastering else []
            params += [f"cll={mastering['cll']}"] if "cll" in mastering else []
        return {"crf": str(crf), "preset": preset, "threads": str(threads), "x264-params": ":".join(params)}
    if codec == HEVC_ENCODER:
        params = ["log-level=error", f"pools={threads or '+'}"]
        if mastering:
            params += ["hdr10=1", "repeat-headers=0"]
            params += [f"master-display={mastering['master_display']}"] if "master_display" in mastering else []
            params += [f"max-cll={mastering['cll']}"] if "cll" in mastering else []
        return {"crf": str(crf), "preset": preset, "x265-params": ":".join(params)}
    if codec == HARDWARE_ENCODER:
        return {"rc": "vbr", "cq": str(encoded_crf(codec, crf)), "b": "0", "preset": NVENC_PRESETS.get(preset, "p5")}
    if codec == "libsvtav1":
        options = {"crf": str(encoded_crf(codec, crf)), "preset": str(SVT_PRESETS.get(preset, 7))}
        if mastering:
            options["svtav1-params"] = ":".join(_svt_hdr10_params(mastering))
        return options
    if codec in ("libaom-av1", "librav1e"):
        return {"crf": str(crf), "threads": str(threads)}
    if is_prores(codec):
        return {"profile": PRORES_HQ, "vendor": "apl0", "threads": str(threads)}  # apl0: as Apple's own encoder
    return {}


def _svt_hdr10_params(mastering: Dict[str, str]) -> List[str]:
    """HDR10 metadata in SVT-AV1's terms: its mastering display takes chromaticities and cd/m² as
    decimals, where x265's notation counts 1/50000 and 1/10000 of them (given those integers,
    SVT-AV1 wrote every primary at 1.0)."""
    params = [f"content-light={mastering['cll']}"] if "cll" in mastering else []
    if "master_display" in mastering:
        gx, gy, bx, by, rx, ry, wx, wy, high, low = (int(v) for v in re.findall(r"\d+", mastering["master_display"]))
        chroma = [f"{v / 50000:g}" for v in (gx, gy, bx, by, rx, ry, wx, wy)]
        params.append("mastering-display=G({},{})B({},{})R({},{})WP({},{})".format(*chroma)
                      + f"L({high / 10000:g},{low / 10000:g})")
    return params


class PieceWriter:
    """Encodes one segment's frames into an MP4 piece held in memory (QuickTime for ProRes)."""

    def __init__(self, index: int, info: VideoInfo, size: tuple[int, int], options: EncodeOptions = EncodeOptions(),
                 color: Optional[Dict[str, int]] = None):
        self._index = index
        self._info = info
        self._color = written_colour(info) if color is None else color  # the output's tags (SDR after a tone-map)
        self.codec = resolve_codec(options.codec, tuple(size), options.pix_fmt, is_hdr(self._color))
        if is_prores(self.codec) and self._color["color_range"] == 2:  # full
            # ProRes is video range only: neither its frame header nor QuickTime's nclc box can say
            # full, and full-range samples were read back as limited (a grey of 64 shown as 54)
            self._color = {**self._color, "color_range": 1}
        self._buffer = io.BytesIO()
        self._out = av.open(self._buffer, "w", format=piece_muxer(self.codec),
                            options=_colour_box(self._color["color_range"]))
        try:
            self._video = self._add_video_stream(size, options)
        except Exception:
            self._out.close()
            raise
        self.layout = yuv420_layout(self._color, options)
        self._sws_matrix = SWS_MATRIX.get(self._color["colorspace"])  # None: untagged, swscale's default
        self._first_pts: Optional[int] = None
        self._last_pts: Optional[int] = None
        self._offset = 0
        self._frames = 0
        self._last_dts: Optional[int] = None
        frame_ticks = info.frame_ticks or 1 / (25 * float(info.time_base))
        self._max_reorder_delay = max(1, round(16 * frame_ticks))

    def _add_video_stream(self, size, options: EncodeOptions):
        rate = self._info.average_rate or Fraction(25)
        hdr = is_hdr(self._color)
        stream = self._out.add_stream(self.codec, rate=rate)
        stream.width, stream.height = size
        stream.pix_fmt = options.pix_fmt
        stream.time_base = self._info.time_base
        stream.codec_context.time_base = self._info.time_base
        stream.options = encoder_options(self.codec, options.crf, options.preset, options.threads,
                                         self._info.mastering if hdr else None)
        if self.codec == HEVC_ENCODER:
            stream.codec_tag = "hvc1"  # the HEVC sample entry Apple players require
        ctx = stream.codec_context
        if is_prores(self.codec):
            # frames on threads of their own: 8.1 frames/s of 1440p on 2 threads, 6.7 on slices, 4.1 on one
            ctx.thread_type = "FRAME"
        if self._info.sample_aspect:
            ctx.sample_aspect_ratio = output_sample_aspect(self._info, size)
        for name, value in self._color.items():
            if value:
                setattr(ctx, name, value)
        return stream

    def write(self, frames: np.ndarray, pts: Sequence[int]) -> None:
        """RGB frames (N, H, W, 3), or 4:2:0 planes (N, H·3/2, W) already in :attr:`layout`."""
        for pixels, stamp in zip(frames, pts):
            self._check_increasing(stamp)
            frame = self._yuv_frame(pixels) if frames.ndim == 3 else self._converted(pixels)
            # prores_ks writes the frame's own primaries and transfer into each frame header (the
            # others the stream's): untagged, FFmpeg read a PQ master's frames as unspecified
            for name in ("color_primaries", "color_trc"):
                if self._color.get(name):
                    setattr(frame, name, self._color[name])
            if self._first_pts is None:
                # MP4 holds no negative times (a stream unwrapped past 0, before an edit list's
                # start): such a piece starts at 0, and assemble() restores its source times.
                self._offset = max(0, -stamp)
            frame.pts, frame.time_base = stamp + self._offset, self._info.time_base
            self._mux(self._video.encode(frame))
            self._first_pts = stamp if self._first_pts is None else min(self._first_pts, stamp)
            self._frames += 1

    def _check_increasing(self, stamp: int) -> None:
        """A frame's time must come after the last one's: the encoder failed the task on one that
        did not with FFmpeg's bare "Invalid argument", which said nothing of the video."""
        if self._last_pts is not None and stamp <= self._last_pts:
            at, after = (float(ticks * self._info.time_base) for ticks in (stamp, self._last_pts))
            raise InputError(f"the video's frame times go back or repeat: a frame at {at:.6g} s came after one "
                             f"at {after:.6g} s")
        self._last_pts = stamp

    def _converted(self, rgb: np.ndarray) -> av.VideoFrame:
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb48le" if rgb.dtype == np.uint16
                                           else "rgb24")
        return frame.reformat(format=self._video.pix_fmt, dst_colorspace=self._sws_matrix,
                              dst_color_range="JPEG" if self.layout.full_range else "MPEG", interpolation=EXACT_SWS)

    def _yuv_frame(self, planes: np.ndarray) -> av.VideoFrame:
        dtype = np.uint8 if self.layout.bits == 8 else np.uint16
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(planes, dtype=dtype), format=self.layout.pix_fmt)
        # the tags swscale would have put on a converted frame
        frame.colorspace = SWS_MATRIX_TAG[self._sws_matrix] if self._sws_matrix else 2
        frame.color_range = 2 if self.layout.full_range else 1
        return frame

    def close(self) -> Tuple[bytes, Piece]:
        self._mux(self._video.encode(None))
        self._out.close()
        if self._first_pts is None:
            raise ValueError("a piece needs at least one frame")
        return self._buffer.getvalue(), Piece(self._index, self._first_pts, self._frames, self.codec)

    def _mux(self, packets) -> None:
        """libx265 sometimes hands out an unset decode time on the first packet of a short encode:
        a decode time must lie within the reorder delay before the packet's presentation time and
        increase, else it is put there."""
        for packet in packets:
            if packet.pts is not None:
                earliest = packet.pts - self._max_reorder_delay
                if packet.dts is None or not earliest <= packet.dts <= packet.pts:
                    packet.dts = earliest
                if self._last_dts is not None and packet.dts <= self._last_dts:
                    packet.dts = min(self._last_dts + 1, packet.pts)
                self._last_dts = packet.dts
            self._out.mux(packet)

    def abort(self) -> None:
        try:
            self._out.close()
        except Exception:
            pass


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
    with open_container(source_path) as source, \
            av.open(str(out_path), "w", format=into.muxer, options=_muxer_options(into, pieces[0][0])) as container:
        # The output starts at 0, every stream moved by the same amount, as FFmpeg's remux does: a
        # TS's clock starts anywhere (an hour in made an hour of empty edit in front), and MP4
        # shows nothing before 0 (a stream unwrapped past 0).
        container.metadata.update(_described(source.metadata))
        start = Fraction(pieces[0][1].first_pts) * info.time_base
        side = _SideStreams(source, info, report, into,
                            _audio_unplaced(source_path, info.audio, (start, _video_end(pieces, info))))
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
        _carry_attachments(source_path, container, into, report)
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
    return {"movflags": "+faststart" + _colour_box(colour_range).get("movflags", "")}


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


def _carry_attachments(source_path: Path, out, into: ContainerFormat, report: MuxReport) -> None:
    """The source's attachments (fonts, cover images) into a container that keeps them, and a
    cover picture into MP4 as its cover, which players and file browsers show: a music video's or
    a podcast's cover was left out of MP4 unmentioned, a Matroska cover listed as dropped."""
    covers = []
    with open_container(source_path) as source:  # its own reader: the side streams' has not started
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
    for stream in source.streams.video:
        if stream.disposition & av.stream.Disposition.attached_pic:
            name, mimetype = COVER_PICTURES.get(codec_name(stream), (None, None))
            name = stream.metadata.get("filename") or _unused_name(name, {a.name for a in found})
            picture = next((p for p in demux(source, stream) if p.size), None)
            found.append(_Attachment(name, stream.metadata.get("mimetype", mimetype),
                                     bytes(picture) if picture else b"", stream))
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


def _colour_box(colour_range: int) -> Dict[str, str]:
    """MP4 options that keep a stated colour range: x264 writes none when the other colour tags are
    unspecified (VP9 WebM, MPEG-2), and MP4 writes its colour box only for one of those, unless
    told. An unstated range stays unstated (the box would state limited)."""
    return {"movflags": "+write_colr"} if colour_range else {}


def shifted_chapters(chapters: List[Dict], offset: Fraction) -> List[Dict]:
    """The source's chapters (titles and times), moved as the streams are; one that ends before
    the output starts is left out, one that starts before it starts at 0."""
    moved = []
    for chapter in chapters:
        base = Fraction(chapter["time_base"])
        ticks = round(offset / base)
        start, end = max(0, chapter["start"] + ticks), chapter["end"] + ticks
        if end > start:
            moved.append({**chapter, "id": len(moved) + 1, "start": start, "end": end})
    return moved


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


class _SideStreams:
    """Audio and subtitle streams of the source, muxed in time order next to the video."""

    def __init__(self, source, info: VideoInfo, report: MuxReport, into: ContainerFormat = MP4,
                 unplaced: Optional[Dict[int, str]] = None):
        self._source = source
        self._report = report
        self._into = into
        self._plan = [(audio, _audio_plan(audio, into, unplaced or {})) for audio in info.audio]
        self._plan += [(sub, _subtitle_plan(sub.codec, into)) for sub in info.subtitles]
        self._map: Dict[int, object] = {}
        self._entries: Dict[int, Dict] = {}  # by stream: what the report says of it
        self._transcoders: Dict[int, "_AacTranscoder | _TextSubtitleTranscoder"] = {}
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
        self._packets = _in_line(demux(self._source, wanted), wanted) if wanted else iter(())

    def _add(self, out, side, plan: str, in_stream) -> None:
        entry = self._entries[side.index] = {"index": side.index, "codec": side.codec, "language": side.language}
        is_audio = in_stream.type == "audio"
        report = self._report
        if plan == "copy":
            self._map[side.index] = _as_source(out.add_stream_from_template(in_stream), in_stream, side.language)
            (report.audio_copied if is_audio else report.subtitles_copied).append(entry)
        elif plan == "aac":
            self._transcoders[side.index] = _AacTranscoder(in_stream, out, side.language)
            report.audio_reencoded.append({**entry, "to": "aac"})
        elif plan == "text":
            self._transcoders[side.index] = _TextSubtitleTranscoder(in_stream, out, self._into.text_subtitles)
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


# How long a stretch of audio packets may have wrong times and still be put back on the line of
# the packets around them: more than an FFmpeg-written PES holds (0.35 s).
WRONG_TIMES_SPAN = Fraction(1)


def _gap_slack(time_base) -> Fraction:
    """How far (in seconds) audio may step from where it should start and still be no gap: a tick
    of its time base (Matroska's millisecond rounding), or 10 ms."""
    return max(Fraction(1, 100), Fraction(time_base) if time_base else Fraction(0))


class _AudioLine:
    """One audio stream's packets in the source's own times, looked ahead: packets that start away
    from where the one before them ended (by more than :func:`_gap_slack`) wait, up to
    :data:`WRONG_TIMES_SPAN` of sound. Where a packet after them goes on from that line, their
    times alone were wrong (a bit error in one PES header of a DVB recording: 3 s off, the packets
    around it right; an FFmpeg-written stream puts several frames in one PES, which all take its
    time) and they take the times their neighbours give them: the side streams ran on from a
    wrong time, and the sound after it came 3 s late to the end. Where none does within that span,
    the first one's step is real: a dropout keeps its gap, and parts of a recording joined end to
    end their step back (the side streams run on from it). Retimed rather than dropped: dropping
    them leaves a hole in the sound (MP4 plays the frame before it that much longer)."""

    def __init__(self, stream):
        tick = Fraction(stream.time_base) if stream.time_base else Fraction(0)
        self._slack = _gap_slack(stream.time_base) / tick if tick else 0
        self._span = WRONG_TIMES_SPAN / tick if tick else 0
        # A packet's lag: its start less the ticks of sound taken before it. Packets on one line
        # share a lag (within the slack), so judging one against the line, or finding the first
        # waiting one on it, needs no sum over the others: one-sample PCM packets (16,000 a
        # second) wait by the thousand, and summing or judging them all again for each new one
        # took 21 s for 1 s of sound.
        self._line: Optional[int] = None  # the lag of the line (None: none yet, the stream's head)
        self._ticks = 0  # the sound taken so far
        self._held: Deque[Tuple[object, int]] = deque()  # the packets off the line and their lags, in order
        self._held_ticks = 0
        self._first_held = 0  # the number of the first waiting packet (they are numbered as held)
        self._width = max(1, math.floor(self._slack))
        self._by_lag: Dict[int, Deque[Tuple[int, int]]] = {}  # (number, lag) of waiting packets, by lag // width

    def take(self, packet) -> List:
        """The packets ready to go on (in order): none while ``packet`` waits."""
        if packet.pts is None or not packet.duration:  # no time to judge it by: what waits goes as it is
            ready = [*self._released(), packet]
            self._line = None
            return ready
        if self._line is None:
            return self._head(packet)
        lag = packet.pts - self._ticks
        self._ticks += packet.duration
        if abs(lag - self._line) <= self._slack:
            ready = self._retimed(len(self._held))
            self._line = lag
            return [*ready, packet]
        self._hold(packet, lag)
        return self._first_steps_real(lambda: self._held_ticks > self._span)

    def _head(self, packet) -> List:
        """The stream's first packets, with no line before them to judge them by: they wait, up to
        :data:`WRONG_TIMES_SPAN` of sound, for one that does not go on from them. Where it goes
        back from them, their times were wrong (a bit error in the first PES: the sound after it
        ran on from it, late to the end) and they end where it starts; where it starts later, a
        dropout follows them and they keep their times."""
        last = self._held[-1][0] if self._held else None
        if last is None or abs(packet.pts - (last.pts + last.duration)) <= self._slack:
            self._hold(packet, packet.pts - self._ticks)
            self._ticks += packet.duration
            if self._held_ticks <= self._span:
                return []
            packet = None
        ready = self._released()
        if packet is not None and packet.pts < ready[0].pts:
            shift = packet.pts - sum(held.duration for held in ready) - ready[0].pts
            for held in ready:
                _shifted(held, shift)
        self._line = ready[-1].pts + ready[-1].duration - self._ticks
        return ready if packet is None else [*ready, *self.take(packet)]

    def flush(self) -> List:
        return self._first_steps_real(lambda: bool(self._held))

    def _hold(self, packet, lag: int) -> None:
        self._by_lag.setdefault(lag // self._width, deque()).append((self._first_held + len(self._held), lag))
        self._held.append((packet, lag))
        self._held_ticks += packet.duration

    def _released(self) -> List:
        """The waiting packets, none left waiting."""
        released = [packet for packet, _ in self._held]
        self._first_held += len(self._held)
        self._held, self._held_ticks, self._by_lag = deque(), 0, {}
        return released

    def _let_go(self) -> Tuple[object, int]:
        """The first waiting packet and its lag, no longer waiting."""
        packet, lag = self._held.popleft()
        self._first_held += 1
        self._held_ticks -= packet.duration
        return packet, lag

    def _retimed(self, count: int) -> List:
        """The first ``count`` waiting packets, on the line one after the other: the packet after
        them went on from it."""
        ready = []
        for _ in range(count):
            packet, lag = self._let_go()
            _shifted(packet, self._line - lag)
            ready.append(packet)
        return ready

    def _first_steps_real(self, waiting_too_long) -> List:
        """While ``waiting_too_long()``: the first waiting packet with its own time, and the others
        judged again from its end (those before one that goes on from it take the times it gives
        them)."""
        ready: List = []
        while waiting_too_long():
            first, self._line = self._let_go()
            ready.append(first)
            found = self._first_on_line()
            while found is not None:
                ready += self._retimed(found - self._first_held)
                packet, self._line = self._let_go()
                ready.append(packet)
                found = self._first_on_line()
        return ready

    def _first_on_line(self) -> Optional[int]:
        """The number of the first waiting packet whose lag is the line's, within the slack."""
        found = None
        for bucket in range(math.floor((self._line - self._slack) / self._width),
                            math.floor((self._line + self._slack) / self._width) + 1):
            waiting = self._by_lag.get(bucket)
            while waiting and waiting[0][0] < self._first_held:
                waiting.popleft()  # let go since
            number = next((n for n, lag in waiting or () if abs(lag - self._line) <= self._slack), None)
            if number is not None and (found is None or number < found):
                found = number
        return found


def _shifted(packet, shift: int) -> None:
    packet.pts += shift
    packet.dts = None if packet.dts is None else packet.dts + shift


def _in_line(packets: Iterable, streams: Sequence) -> Iterator:
    """The source's packets as demuxed, each audio stream's through its :class:`_AudioLine`."""
    lines = {stream.index: _AudioLine(stream) for stream in streams if stream.type == "audio"}
    for packet in packets:
        line = lines.get(packet.stream.index)
        yield from line.take(packet) if line else (packet,)
    for line in lines.values():
        yield from line.flush()


def _audio_unplaced(source_path: Path, audio: Sequence, video: Tuple[Fraction, Fraction]) -> Dict[int, str]:
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
    waiting = {side.index for side in audio}  # no packet seen yet
    early: Set[int] = set()  # every packet so far ends over 10 s before the first frame
    unplaced: Dict[int, str] = {}
    if waiting:
        with open_container(source_path) as source:
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


def _video_end(pieces: Sequence[Tuple[Path, Piece]], info: VideoInfo) -> Fraction:
    """Where the video's last frame ends, in seconds of the source (its stated duration from its
    first frame where it states no rate)."""
    first, last = pieces[0][1], pieces[-1][1]
    if info.average_rate:
        return Fraction(last.first_pts) * info.time_base + last.frames / Fraction(info.average_rate)
    return Fraction(first.first_pts) * info.time_base + Fraction(info.duration_s or 0)


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


def _as_source(stream, source, language: Optional[str]):
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


class _AacTranscoder:
    """Audio MP4 cannot hold as it is, to AAC. The samples are stamped on a clock of their own
    from where the stream starts: a source time base coarser than a sample (AVI's MP3 counts
    1152-sample frames) stamped two 1024-sample AAC frames alike, which the muxer refused. Where
    a frame starts later than the clock by more than :attr:`_slack` (a dropout in a recording),
    the clock moves on to it, so the sound after a gap keeps its time, as copied audio does; one
    packet whose time alone is wrong never gets here (:class:`_AudioLine`)."""

    def __init__(self, in_stream, out, language: Optional[str] = None):
        ctx = in_stream.codec_context
        rate = aac_rate(ctx.sample_rate)
        self._out = out
        self._stream = _as_source(out.add_stream("aac", rate=rate), in_stream, language)
        self._stream.layout = aac_layout(ctx.layout, ctx.channels)
        self._discrete = _DiscreteChannels(ctx.layout) if _discrete(ctx.layout, ctx.channels) else None
        self._resampler = self._new_resampler()
        self._fed: Optional[Tuple[str, str, int]] = None  # the format, layout and rate of the frames fed to it
        self._clock = Fraction(1, rate)
        self._next_sample: Optional[int] = None  # set by the first decoded frame
        self._slack = round(_gap_slack(in_stream.time_base) / self._clock)

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


class _TextSubtitleTranscoder:
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
        _as_source(self._stream, in_stream, in_stream.language)
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
