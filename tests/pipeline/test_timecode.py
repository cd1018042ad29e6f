from fractions import Fraction

import pytest

from tmlsr_ray.pipeline.timecode import written_timecode

NTSC = Fraction(30000, 1001)


@pytest.mark.parametrize("label, rate, written", [
    ("01:02:03;04", Fraction(25), "01:02:03:04"),  # drop-frame has no meaning at 25: the same digits, non-drop
    ("01:02:03.04", Fraction(50), "01:02:03:04"),
    ("01:02:03;04", NTSC, "01:02:03;04"),
    ("01:02:03;04", 2 * NTSC, "01:02:03;04"),
    ("01:02:03:04", Fraction(25), "01:02:03:04"),
    ("01:02:03;04", None, "01:02:03;04"),  # no rate to judge it by
])
def test_a_drop_frame_label_is_drop_frame_only_at_a_rate_that_counts_so(label, rate, written):
    assert written_timecode(label, rate) == written


@pytest.mark.parametrize("label", ["", "tape 3", "01:02:03", "01:02:03:xx"])
def test_text_that_is_no_timecode_is_none(label):
    assert written_timecode(label, Fraction(25)) is None
