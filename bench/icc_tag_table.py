"""The image probe on a JPEG whose ICC profile's tag table lists as many tags as the profile holds,
each pointing at the whole profile past its first byte (what a hostile upload can carry: a JPEG
holds 16 MB of profile, a WebP, TIFF or HEIC any size). The probe reads the profile's cicp tag;
reading each listed tag's body made it quadratic in the profile's size.

    python bench/icc_tag_table.py [--sizes-kb 1024 4096 16000]

Prints the probe's seconds for each profile size (the JPEG is written to a temporary folder).
"""

from __future__ import annotations

import argparse
import struct
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tmlsr_ray.pipeline.image import probe_image  # noqa: E402


def flooded_profile(size: int) -> bytes:
    """An RGB display profile header, then a table of ``size`` bytes' worth of tags, each the whole profile."""
    count = (size - 132) // 12
    header = bytearray(128)
    header[0:4] = struct.pack(">I", size)
    header[8:10] = bytes([4, 0x40])
    header[12:24] = b"mntrRGB XYZ "
    header[36:40] = b"acsp"
    return bytes(header) + struct.pack(">I", count) + (b"xxxx" + struct.pack(">II", 1, size)) * count


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes-kb", type=int, nargs="+", default=[1024, 4096, 16000])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for kb in args.sizes_kb:
            path = Path(folder) / f"flood{kb}.jpg"
            Image.new("RGB", (8, 8)).save(path, "JPEG", icc_profile=flooded_profile(kb * 1024))
            start = time.perf_counter()
            probe_image(path, 10**8)
            print(f"{kb:>6} KB profile: probe {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
