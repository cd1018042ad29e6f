import pytest

from tmlsr_ray.errors import InputError
from tests.helpers import HDR_MASTERING, colour_chart_clip, with_prefix_sei_apart
from tmlsr_ray.pipeline.damage import DamagedPackets
from tmlsr_ray.pipeline.probe import probe_video


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


def test_a_keyframes_prefix_sei_stored_as_a_packet_of_its_own_reaches_the_decoder_with_its_picture(tmp_path):
    """HDR10's mastering display and light level in an SEI that a Matroska file stores as a packet
    of its own before its keyframe: skipped as a packet of no picture, the video read as HDR with
    no mastering metadata (None where the source states it)."""
    tags = dict(color_primaries=9, color_trc=16, colorspace=9, color_range=1)
    source = colour_chart_clip(tmp_path / "hdr.ts", "libx265", "yuv420p10le", 10, tags, mastering=True)
    path = with_prefix_sei_apart(source, tmp_path / "hdr.mkv")
    assert probe_video(source).mastering == HDR_MASTERING
    assert probe_video(path).mastering == HDR_MASTERING
