"""A HEIF item's own irot and imir, applied in their order."""

import numpy as np

from tmlsr_ray.pipeline.heif_turns import heif_turned, quarter_turns, turn_properties

PICTURE = np.arange(6).reshape(2, 3)
TURN, FLIP_TOP_TO_BOTTOM = (b"irot", b"\x01"), (b"imir", b"\x00")


def test_turns_and_mirrors_are_applied_in_the_order_the_item_states_them():
    """A quarter turn anticlockwise then a top-to-bottom flip is not the flip then the turn."""
    assert np.array_equal(heif_turned(PICTURE, [TURN, FLIP_TOP_TO_BOTTOM]), np.rot90(PICTURE)[::-1])
    assert np.array_equal(heif_turned(PICTURE, [FLIP_TOP_TO_BOTTOM, TURN]), np.rot90(PICTURE[::-1]))


def test_only_an_items_turns_are_kept_and_counted():
    properties = [(b"ispe", bytes(12)), TURN, (b"clap", bytes(32)), FLIP_TOP_TO_BOTTOM, (b"irot", b"\x02")]
    assert turn_properties(properties) == [TURN, FLIP_TOP_TO_BOTTOM, (b"irot", b"\x02")]
    assert quarter_turns(turn_properties(properties)) == 3
