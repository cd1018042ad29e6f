from fractions import Fraction

import pytest

from tmlsr_ray.pipeline.timecode import TEN_MINUTES_DROP_FRAME, written_timecode

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


@pytest.mark.parametrize("label, rate, frames_later, written", [
    ("01:02:03:04", Fraction(25), 7, "01:02:03:11"),
    ("01:02:03:20", Fraction(25), 7, "01:02:04:02"),
    ("01:02:03;04", Fraction(25), 3, "01:02:03:07"),  # drop-frame has no meaning at 25
    ("00:00:59;29", NTSC, 1, "00:01:00;02"),  # a minute starts at ;02: ;00 and ;01 are skipped
    ("00:09:59;29", NTSC, 1, "00:10:00;00"),  # but not every tenth
    ("00:00:59;29", NTSC, 1799, "00:02:00;02"),  # 1,798 labels a minute
    ("00:00:59;59", 2 * NTSC, 1, "00:01:00;04"),  # 59.94 skips 4
    ("01:00:00:00", NTSC, 30, "01:00:01:00"),  # counted non-drop as given: 30 labels a second
    ("23:59:59:24", Fraction(25), 1, "00:00:00:00"),  # round the clock
    ("23:59:59;29", NTSC, 1, "00:00:00;00"),
    ("01:02:03:04", Fraction(300), 150, "01:02:03:154"),
])
def test_a_timecode_moves_on_by_the_frames_after_it_counting_as_its_rate_does(label, rate, frames_later, written):
    assert written_timecode(label, rate, frames_later) == written


def test_drop_frame_labels_name_every_frame_once_in_order():
    """Every 29.97 fps frame of a day has its own drop-frame label, in order, and none is skipped
    except the ones drop-frame skips."""
    labels = [written_timecode("00:00:00;00", NTSC, n) for n in range(0, 2 * TEN_MINUTES_DROP_FRAME + 5)]
    assert len(set(labels)) == len(labels)
    assert [label for label in labels if label.endswith((";00", ";01"))
            and label[6:8] == "00" and label[3:5] not in ("00", "10", "20")] == []
    assert labels == sorted(labels)
