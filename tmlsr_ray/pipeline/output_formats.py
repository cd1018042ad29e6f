"""Which encoder and which container a video's output gets (no Ray here): the containers and what
each holds as it is, the encoders this FFmpeg build opens and their size limits, and each
encoder's quality settings in its own terms."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Dict, List, Optional

import av


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
