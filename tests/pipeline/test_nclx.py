"""The ICC profile made from a photo's H.273 code points (what a colour-managed viewer shows through it), and
those an ICC profile's cicp tag states."""

import io
import struct

import numpy as np
import pytest
from PIL import Image, ImageCms

from tests.helpers import bt2100_icc, display_p3_icc
from tmlsr_ray.pipeline.colour import primaries_to_bt709, srgb_encoded
from tmlsr_ray.pipeline.nclx import icc_cicp, icc_from_nclx

# mid-saturated colours, inside sRGB's gamut from each of the primaries below
SWATCHES = np.array([[[200, 120, 60], [110, 160, 120], [90, 100, 170], [128, 128, 128]]], np.uint8)


def shown_as_srgb(profile: bytes, rgb: np.ndarray) -> np.ndarray:
    """What lcms (a colour-managed viewer) makes of 8-bit ``rgb`` tagged with ``profile`` on an sRGB display."""
    source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
    shown = ImageCms.profileToProfile(Image.fromarray(rgb), source, srgb, renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC)
    return np.asarray(shown).astype(int)


@pytest.mark.parametrize("primaries", [4, 8, 22, 12], ids=["bt470m", "film", "ebu3213", "display-p3"])
def test_a_profile_made_from_nclx_primaries_shows_the_colours_the_video_path_converts_them_to(primaries):
    """BT.470 M, generic film (both white C) and EBU 3213-E photos got no profile, shown as sRGB:
    these swatches off by up to 33, 26 and 3 levels; through the profile lcms shows each where the
    video path's own conversion (linear light, Bradford to D65) puts it."""
    signal = SWATCHES / 255.0
    linear = np.where(signal <= 0.04045, signal / 12.92, ((signal + 0.055) / 1.055) ** 2.4)
    bt709 = linear @ primaries_to_bt709(primaries).T.astype(np.float64)
    assert bt709.min() >= 0 and bt709.max() <= 1, "a swatch outside sRGB's gamut"
    expected = np.round(srgb_encoded(bt709) * 255)
    profile = icc_from_nclx(primaries, 13)
    assert profile is not None
    assert np.abs(shown_as_srgb(profile, SWATCHES) - expected).max() <= 2


def test_a_profiles_cicp_tag_is_read_and_a_profile_cut_short_anywhere_reads_as_none_without_a_crash():
    profile = bt2100_icc(16)
    assert icc_cicp(profile) == bytes([9, 16, 0, 1]) and icc_cicp(display_p3_icc()) is None
    assert all(icc_cicp(profile[:cut]) is None for cut in range(len(profile)))


class _CopiesCounted(bytes):
    """A profile that counts the bytes each slice of it copies."""

    copied = 0

    def __getitem__(self, key):
        part = super().__getitem__(key)
        if isinstance(key, slice):
            type(self).copied += len(part)
        return part


def test_a_tag_table_of_many_entries_is_read_without_copying_each_tags_body():
    """A 1 MB profile (a JPEG carries 16 MB, a WebP or TIFF any size) whose table lists 87,000 tags,
    each the whole profile past its first byte: the reader copied every tag's body to look at its
    signature, 91 GB here (8 s to probe the JPEG; 2 MB took 43 s, 4 MB 124 s). It reads none but
    the cicp tag's, whose bytes it returns."""
    size = 1 << 20
    count = (size - 132 - 12) // 12
    flood = b"xxxx" + struct.pack(">II", 1, size)
    cicp_at = 132 + 12 * (count + 1)
    header = bt2100_icc(16)[:128]
    profile = _CopiesCounted(header + struct.pack(">I", count + 1) + flood * count
                             + b"cicp" + struct.pack(">II", cicp_at, 12) + b"cicp" + bytes(4) + bytes([9, 16, 0, 1]))
    assert icc_cicp(profile) == bytes([9, 16, 0, 1])
    assert _CopiesCounted.copied <= size
