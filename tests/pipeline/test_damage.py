import pytest

from tmlsr_ray.errors import InputError
from tmlsr_ray.pipeline.damage import DamagedPackets


@pytest.mark.parametrize("frames, said", [(1, "1 frame from about 1.25 s is missing"),
                                          (9, "9 frames from about 1.25 s are missing")])
def test_frames_lost_without_a_word_fail_saying_how_many_in_words_that_agree(frames, said):
    """One read '1 frames from about 1.25 s are missing'."""
    with pytest.raises(InputError, match=f"^video could not be decoded: {said} "):
        DamagedPackets().lost_untold(frames, 1.25)


def test_frames_lost_without_a_word_are_counted_as_damaged_when_repeated():
    told = DamagedPackets(repeat=True)
    told.lost_untold(9)
    assert (told.damaged, told.dropped) == (9, 9)
