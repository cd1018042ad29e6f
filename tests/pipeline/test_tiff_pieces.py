import io
import zlib

import numpy as np
import pytest
from PIL import Image

from tmlsr_ray.pipeline.tiff_pieces import DEFLATE, Layout, damage, lzw_decoded_length


def _lzw_strips(pixels: np.ndarray) -> tuple:
    """A TIFF's LZW strips as libtiff (through Pillow) writes them, and its rows a strip."""
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "TIFF", compression="tiff_lzw")
    data = buf.getvalue()
    with Image.open(io.BytesIO(data)) as img:
        pieces = zip(img.tag_v2[273], img.tag_v2[279])
        return [data[offset:offset + count] for offset, count in pieces], img.tag_v2[278]


@pytest.mark.parametrize("content", ["noise", "ramps"])
def test_the_lzw_length_of_each_strip_is_the_bytes_its_rows_hold(content):
    """Noise fills the code table and makes libtiff clear it many times a strip; ramps repeat
    long strings (entries thousands of codes deep)."""
    rng = np.random.default_rng(0)
    pixels = (rng.integers(0, 256, (300, 400, 3), dtype=np.uint8) if content == "noise"
              else np.broadcast_to((np.arange(400) % 7).astype(np.uint8)[None, :, None], (300, 400, 3)).copy())
    strips, rows_per_strip = _lzw_strips(pixels)
    expected = [min(rows_per_strip, 300 - i * rows_per_strip) * 400 * 3 for i in range(len(strips))]
    assert len(strips) > 1 and [lzw_decoded_length(strip) for strip in strips] == expected


def test_an_lzw_code_the_table_does_not_hold_yet_is_damage():
    strip = _lzw_strips(np.zeros((4, 8), np.uint8))[0][0]
    # Clear (256), then entry 300 as the first code after it: 9-bit codes, high bits first
    bits = format(256, "09b") + format(300, "09b")
    assert lzw_decoded_length(int(bits.ljust(24, "0"), 2).to_bytes(3, "big")) is None
    assert lzw_decoded_length(strip) == 32


def test_a_deflate_strip_that_inflates_past_its_size_is_damage():
    """A strip of 20 kB inflating to 20 MB (a zlib bomb) is judged by its first MB."""
    bomb = zlib.compress(bytes(20_000_000), 9)
    pieces = Layout(8, 8, 8, 3, False, DEFLATE, None, 8, (8,), (len(bomb),))
    assert damage(io.BytesIO(bytes(8) + bomb), pieces) == ("strip 1 of 1 of its picture data is damaged (it decodes "
                                                          "to more than 192 bytes)")
