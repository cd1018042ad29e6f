"""The encode stage for videos: pieces encoded where the frames are (no Ray here).

A piece is one segment's upscaled frames as an MP4 of its own (video only) that starts with a
keyframe: H.264 (libx264, or h264_nvenc where asked and present), CRF and preset configurable,
``yuv420p`` (or ``yuv420p10le`` for 10-bit output), x264's ``stitchable`` headers so every piece
of a task has the same parameter sets; ProRes 422 HQ (intra-frame, 10-bit 4:2:2) in a QuickTime
piece, which MP4 cannot hold. Every frame keeps its source timestamp (variable frame rate
survives) in the source time base. Colour tags (primaries, transfer, matrix, range) are carried
over, and the RGB→YUV conversion uses the matrix and range the tags declare. :mod:`.mux` joins the
pieces."""

from __future__ import annotations

import io
from dataclasses import dataclass
from fractions import Fraction
from typing import Dict, Optional, Sequence, Tuple

import av
import numpy as np

from tmlsr_ray.errors import InputError
from tmlsr_ray.models.yuv import SWS_MATRIX, SWS_MATRIX_TAG, Yuv420
from tmlsr_ray.piece import Piece
from tmlsr_ray.pipeline.colour import is_hdr, written_colour
from tmlsr_ray.pipeline.decode import EXACT_SWS
from tmlsr_ray.pipeline.output_formats import HEVC_ENCODER, encoder_options, is_prores, piece_muxer, resolve_codec
from tmlsr_ray.pipeline.video_info import VideoInfo

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
                            options=colour_box(self._color["color_range"]))
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


def colour_box(colour_range: int) -> Dict[str, str]:
    """MP4 options that keep a stated colour range: x264 writes none when the other colour tags are
    unspecified (VP9 WebM, MPEG-2), and MP4 writes its colour box only for one of those, unless
    told. An unstated range stays unstated (the box would state limited)."""
    return {"movflags": "+write_colr"} if colour_range else {}
