"""A PNG's chunk structure (no Ray, no HTTP): its chunks read one by one, each checked against its
CRC as libpng checks it, and written again; what the chunks mean is the image stage's."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path
from typing import BinaryIO, Dict, Iterator, List, Optional, Tuple

from tmlsr_ray.errors import InputError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_ANCILLARY_BIT = 0x20  # of a chunk kind's first letter: lower case, a chunk a reader may do without


def chunks(file: BinaryIO) -> Iterator[Tuple[bytes, int, int]]:
    """Each chunk of a PNG up to its IEND: its kind, where its data starts and how many bytes of
    data the file holds of it (no more than it states)."""
    size = file.seek(0, io.SEEK_END)
    at = len(PNG_SIGNATURE)
    while at + 8 <= size:
        file.seek(at)
        length, kind = struct.unpack(">I4s", file.read(8))
        yield kind, at + 8, min(length, size - at - 8)
        if kind == b"IEND":
            return
        at += 12 + length  # the chunk's length, kind, data and CRC


def chunk_data(file: BinaryIO, kind: bytes, at: int, length: int) -> Optional[bytes]:
    """A chunk's data, or None where its checksum does not match it (or is cut off)."""
    file.seek(at)  # no read longer than the file: Python sets aside as much as is asked
    data = file.read(length)
    crc = file.read(4)
    return data if len(crc) == 4 and struct.unpack(">I", crc)[0] == zlib.crc32(kind + data) else None


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def chunks_before_pixels(path: Path, kinds: Tuple[bytes, ...]) -> Dict[bytes, bytes]:
    """The first sound chunk of each of ``kinds`` before a PNG's pixels (IDAT)."""
    found: Dict[bytes, bytes] = {}
    with open(path, "rb") as file:
        for kind, at, length in chunks(file):
            if kind in (b"IDAT", b"IEND"):
                break
            if kind in kinds and kind not in found and (data := chunk_data(file, kind, at, length)) is not None:
                found[kind] = data
    return found


def first_sound_chunk(path: Path, wanted: bytes) -> Optional[bytes]:
    """The data of a PNG's first sound chunk of kind ``wanted``, wherever it stands; None where it
    has none."""
    with open(path, "rb") as file:
        for kind, at, length in chunks(file):
            if kind == wanted and (data := chunk_data(file, kind, at, length)) is not None:
                return data
    return None


def without_damaged_chunks(path: Path) -> Optional[io.BytesIO]:
    """A PNG without the ancillary chunks before its pixels whose checksum does not match (a
    damaged eXIf, iCCP, tEXt ...), as libpng (browsers, OpenCV) reads it: it drops such a chunk
    with a warning, where Pillow refused the whole file as no image. None where there is none (or
    the file is no PNG); a damaged critical chunk (IHDR, PLTE) is refused."""
    damaged: List[Tuple[int, int]] = []
    with open(path, "rb") as file:
        if file.read(len(PNG_SIGNATURE)) != PNG_SIGNATURE:
            return None
        for kind, at, length in chunks(file):
            if kind == b"IDAT":
                break
            if chunk_data(file, kind, at, length) is not None:
                continue
            if not kind[0] & PNG_ANCILLARY_BIT:
                raise InputError(f"input PNG is damaged: its {kind.decode('latin-1')} chunk does not match "
                                 "its checksum (corrupt or cut off)")
            damaged.append((at - 8, at + length + 4))
        if not damaged:
            return None
        file.seek(0)
        data = file.read()
    kept_from = [0] + [end for _, end in damaged]
    kept_to = [start for start, _ in damaged] + [len(data)]
    return io.BytesIO(b"".join(data[start:end] for start, end in zip(kept_from, kept_to)))
