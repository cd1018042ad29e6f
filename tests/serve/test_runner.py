"""The runner's own rules, without a service."""

import asyncio
import threading
import time

import pytest

from tmlsr_ray.errors import TaskError
from tmlsr_ray.piece import Piece
from tmlsr_ray.serve.runner import DamagedShare, finish_in_thread


def test_a_cancel_waits_for_work_in_a_thread_to_finish_before_it_goes_on():
    """A thread cannot be stopped: the join or a piece's save went on writing into the task's
    folder after a cancel's cleanup had removed it, leaving the folder (or a partial output) behind."""
    finished = threading.Event()

    def join():
        time.sleep(0.5)
        finished.set()

    async def scenario():
        work = asyncio.ensure_future(finish_in_thread(join))
        await asyncio.sleep(0.1)
        work.cancel()
        try:
            await work
        except asyncio.CancelledError:
            return finished.is_set()

    assert asyncio.run(scenario()) is True


def _piece(index: int, damaged: int) -> Piece:
    return Piece(index=index, first_pts=0, frames=24, encoder="libx264", damaged_packets=damaged)


def test_the_damaged_share_counts_a_redone_piece_once_and_fails_as_the_piece_over_it_comes_in():
    """A running total, not a sum of every piece for each one: a piece made again (its first try's
    replica died after the save) replaces its first count rather than adding to it."""
    share = DamagedShare([_piece(0, 10)], packets=96)  # reused from an earlier attempt
    share.add(_piece(1, 20))
    share.add(_piece(1, 20), replaced=_piece(1, 20))
    assert share.total == 30
    share.add(_piece(2, 34))  # 64 of 96: two thirds, not over
    with pytest.raises(TaskError, match="65 of its 96 packets are damaged"):
        share.add(_piece(3, 1))
    assert share.total == 64, "a refused piece is not counted"


def test_reused_pieces_already_over_the_share_fail_before_any_work():
    with pytest.raises(TaskError, match="70 of its 96 packets"):
        DamagedShare([_piece(0, 40), _piece(1, 30)], packets=96)
