"""The image probe on JPEGs whose primary declares a gain map (hdrgm XMP) and whose header or
picture data a hostile upload floods: the gain map is then looked for in extended XMP, in a
GContainer directory and after the primary's EOI, each of which must stay linear in the file's size.

    python bench/gain_map_probe.py [--megabytes 4 16]

Prints the probe's seconds for each case and size (the JPEGs are written to a temporary folder):
extended XMP in 64 KB pieces, a directory of unclosed items in extended XMP, and picture data of
stuffed 0xFF00 bytes with no MP index (the primary's EOI is searched for past it).
"""

from __future__ import annotations

import argparse
import struct
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tmlsr_ray.pipeline.image import probe_image  # noqa: E402

XMP = b"http://ns.adobe.com/xap/1.0/\x00"
EXTENSION = b"http://ns.adobe.com/xmp/extension/\x00"
GUID = b"0123456789ABCDEF0123456789ABCDEF"
PIECE = 65000


def segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def declaring_xmp(extended: bool) -> bytes:
    note = (f' xmlns:xmpNote="http://ns.adobe.com/xmp/note/" xmpNote:HasExtendedXMP="{GUID.decode()}"'
            if extended else "")
    return segment(0xE1, XMP + (f'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description{note} '
                                'xmlns:hdrgm="http://ns.adobe.com/hdr-gain-map/1.0/" hdrgm:Version="1.0"/>'
                                '</x:xmpmeta>').encode())


def extended_xmp(packet: bytes) -> bytes:
    return b"".join(segment(0xE1, EXTENSION + GUID + struct.pack(">II", len(packet), at) + packet[at:at + PIECE])
                    for at in range(0, len(packet), PIECE))


def flooded(case: str, size: int) -> bytes:
    picture = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes()
    if case == "extended xmp":
        head = declaring_xmp(True) + extended_xmp(bytes(size))
    elif case == "unclosed items":
        head = declaring_xmp(True) + extended_xmp(b"<Container:Directory>" + b"<Container:Item " * (size // 16))
    else:  # stuffed bytes after the scan's header, before its EOI
        head = declaring_xmp(False)
        scan_end = picture.rindex(b"\xff\xd9")
        picture = picture[:scan_end] + b"\xff\x00" * (size // 2) + picture[scan_end:]
    return picture[:2] + head + picture[2:]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--megabytes", type=int, nargs="+", default=[4, 16])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for case in ("extended xmp", "unclosed items", "stuffed scan"):
            for megabytes in args.megabytes:
                path = Path(folder) / "flood.jpg"
                path.write_bytes(flooded(case, megabytes << 20))
                start = time.perf_counter()
                probe_image(path, 10**8)
                print(f"{case:>14}, {megabytes:>3} MB: probe {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
