"""Whether a VP8 or VP9 packet shows a picture, read from its frame headers (no decoding): an
encoder's alternate reference frame is decoded into the references and never shown, so a good
stream with such packets gives fewer frames than packets (VP8 spec 9.1, VP9 spec 6.2 and annex B)."""

from __future__ import annotations

from typing import List, Union

BytesLike = Union[bytes, memoryview]

VP8_SHOW_FRAME = 0x10  # the first byte of the frame tag: key_frame, version (3 bits), show_frame
VP8_TAG_SIZE = 3
VP8_KEY_FRAME_START = b"\x9d\x01\x2a"  # a key frame's start code, then its picture size (7 bytes)
VP9_FRAME_MARKER = 2
VP9_SUPERFRAME_MARKER = 0b110


def shows_no_frame(codec: str, data: BytesLike) -> bool:
    """Whether every frame the packet holds is hidden (False for other codecs, or headers too short
    to tell or that FFmpeg refuses: the decoder tells those)."""
    if not data:
        return False
    if codec == "vp8":
        return _vp8_hidden(data)
    if codec == "vp9":
        frames = _vp9_frames(data)
        return bool(frames) and not any(_vp9_shows(frame) for frame in frames)
    return False


def _vp8_hidden(data: BytesLike) -> bool:
    """show_frame clear in a frame tag that FFmpeg reads (RFC 6386 9.1). One it refuses (shorter
    than a tag, a first partition larger than the packet, a key frame without its start code) is
    damage its decoder tells, but frame threads drop unsaid among a decode's last packets: counted
    hidden, the frame it lost was not missed (a damaged last packet whose show bit was cleared)."""
    if len(data) < VP8_TAG_SIZE:
        return False
    tag = int.from_bytes(data[:VP8_TAG_SIZE], "little")
    key_frame = not tag & 1
    after_tag = len(data) - VP8_TAG_SIZE - (len(VP8_KEY_FRAME_START) + 4) * key_frame
    if tag >> 5 > after_tag or (key_frame and bytes(data[3:6]) != VP8_KEY_FRAME_START):
        return False
    return not tag & VP8_SHOW_FRAME


def _vp9_frames(data: BytesLike) -> List[BytesLike]:
    """The frames of a superframe (annex B: an index at its end, sizes little-endian), or the
    packet itself; none where FFmpeg refuses the index (a frame of no size, or sizes past it)."""
    last = data[-1]
    if last >> 5 != VP9_SUPERFRAME_MARKER:
        return [data]
    count, size_bytes = (last & 7) + 1, ((last >> 3) & 3) + 1
    index_size = 2 + size_bytes * count
    if len(data) < index_size or data[-index_size] != last:
        return [data]
    index = data[-index_size + 1:-1]
    frames, at = [], 0
    for n in range(count):
        size = int.from_bytes(index[n * size_bytes:(n + 1) * size_bytes], "little")
        if not size or at + size > len(data) - index_size:
            return []
        frames.append(data[at:at + size])
        at += size
    return frames


def _vp9_shows(frame: BytesLike) -> bool:
    """A VP9 frame's uncompressed header: frame_marker (2 bits), profile (2, a reserved bit after
    profile 3), then show_existing_frame, else frame_type and show_frame; all in its first byte."""
    bits = frame[0]
    if bits >> 6 != VP9_FRAME_MARKER:
        return True  # not a frame header: left to the decoder to tell
    profile = ((bits >> 5) & 1) | (((bits >> 4) & 1) << 1)
    if profile == 3 and (bits >> 3) & 1:
        return True  # its reserved bit set: FFmpeg refuses it, left to the decoder to tell
    at = 2 if profile == 3 else 3  # show_existing_frame's bit
    show_existing = (bits >> at) & 1
    return bool(show_existing or (bits >> (at - 2)) & 1)
