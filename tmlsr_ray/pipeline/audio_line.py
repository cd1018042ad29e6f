"""Audio packets whose own times are wrong, put back on the line of the packets around them (no Ray
here): a bit error in one PES header, an FFmpeg-written PES whose frames all take its time."""

from __future__ import annotations

import math
from collections import deque
from fractions import Fraction
from typing import Deque, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple


# How long a stretch of audio packets may have wrong times and still be put back on the line of
# the packets around them: more than an FFmpeg-written PES holds (0.35 s).
WRONG_TIMES_SPAN = Fraction(1)


def gap_slack(time_base) -> Fraction:
    """How far (in seconds) audio may step from where it should start and still be no gap: a tick
    of its time base (Matroska's millisecond rounding), or 10 ms."""
    return max(Fraction(1, 100), Fraction(time_base) if time_base else Fraction(0))


class AudioLine:
    """One audio stream's packets in the source's own times, looked ahead: packets that start away
    from where the one before them ended (by more than :func:`gap_slack`) wait, up to
    :data:`WRONG_TIMES_SPAN` of sound. Where a packet after them goes on from that line, their
    times alone were wrong (a bit error in one PES header of a DVB recording: 3 s off, the packets
    around it right; an FFmpeg-written stream puts several frames in one PES, which all take its
    time) and they take the times their neighbours give them: the side streams ran on from a
    wrong time, and the sound after it came 3 s late to the end. Where none does within that span,
    the first one's step is real: a dropout keeps its gap, and parts of a recording joined end to
    end their step back (the side streams run on from it). Retimed rather than dropped: dropping
    them leaves a hole in the sound (MP4 plays the frame before it that much longer)."""

    def __init__(self, stream):
        tick = Fraction(stream.time_base) if stream.time_base else Fraction(0)
        self._slack = gap_slack(stream.time_base) / tick if tick else 0
        self._span = WRONG_TIMES_SPAN / tick if tick else 0
        # A packet's lag: its start less the ticks of sound taken before it. Packets on one line
        # share a lag (within the slack), so judging one against the line, or finding the first
        # waiting one on it, needs no sum over the others: one-sample PCM packets (16,000 a
        # second) wait by the thousand, and summing or judging them all again for each new one
        # took 21 s for 1 s of sound.
        self._line: Optional[int] = None  # the lag of the line (None: none yet, the stream's head)
        self._ticks = 0  # the sound taken so far
        self._held: Deque[Tuple[object, int]] = deque()  # the packets off the line and their lags, in order
        self._held_ticks = 0
        self._first_held = 0  # the number of the first waiting packet (they are numbered as held)
        self._width = max(1, math.floor(self._slack))
        self._by_lag: Dict[int, Deque[Tuple[int, int]]] = {}  # (number, lag) of waiting packets, by lag // width

    def take(self, packet) -> List:
        """The packets ready to go on (in order): none while ``packet`` waits."""
        if packet.pts is None or not packet.duration:  # no time to judge it by: what waits goes as it is
            ready = [*self._released(), packet]
            self._line = None
            return ready
        if self._line is None:
            return self._head(packet)
        lag = packet.pts - self._ticks
        self._ticks += packet.duration
        if abs(lag - self._line) <= self._slack:
            ready = self._retimed(len(self._held))
            self._line = lag
            return [*ready, packet]
        self._hold(packet, lag)
        return self._first_steps_real(lambda: self._held_ticks > self._span)

    def _head(self, packet) -> List:
        """The stream's first packets, with no line before them to judge them by: they wait, up to
        :data:`WRONG_TIMES_SPAN` of sound, for one that does not go on from them. Where it goes
        back from them, their times were wrong (a bit error in the first PES: the sound after it
        ran on from it, late to the end) and they end where it starts; where it starts later, a
        dropout follows them and they keep their times."""
        last = self._held[-1][0] if self._held else None
        if last is None or abs(packet.pts - (last.pts + last.duration)) <= self._slack:
            self._hold(packet, packet.pts - self._ticks)
            self._ticks += packet.duration
            if self._held_ticks <= self._span:
                return []
            packet = None
        ready = self._released()
        if packet is not None and packet.pts < ready[0].pts:
            shift = packet.pts - sum(held.duration for held in ready) - ready[0].pts
            for held in ready:
                _shifted(held, shift)
        self._line = ready[-1].pts + ready[-1].duration - self._ticks
        return ready if packet is None else [*ready, *self.take(packet)]

    def flush(self) -> List:
        return self._first_steps_real(lambda: bool(self._held))

    def _hold(self, packet, lag: int) -> None:
        self._by_lag.setdefault(lag // self._width, deque()).append((self._first_held + len(self._held), lag))
        self._held.append((packet, lag))
        self._held_ticks += packet.duration

    def _released(self) -> List:
        """The waiting packets, none left waiting."""
        released = [packet for packet, _ in self._held]
        self._first_held += len(self._held)
        self._held, self._held_ticks, self._by_lag = deque(), 0, {}
        return released

    def _let_go(self) -> Tuple[object, int]:
        """The first waiting packet and its lag, no longer waiting."""
        packet, lag = self._held.popleft()
        self._first_held += 1
        self._held_ticks -= packet.duration
        return packet, lag

    def _retimed(self, count: int) -> List:
        """The first ``count`` waiting packets, on the line one after the other: the packet after
        them went on from it."""
        ready = []
        for _ in range(count):
            packet, lag = self._let_go()
            _shifted(packet, self._line - lag)
            ready.append(packet)
        return ready

    def _first_steps_real(self, waiting_too_long) -> List:
        """While ``waiting_too_long()``: the first waiting packet with its own time, and the others
        judged again from its end (those before one that goes on from it take the times it gives
        them)."""
        ready: List = []
        while waiting_too_long():
            first, self._line = self._let_go()
            ready.append(first)
            found = self._first_on_line()
            while found is not None:
                ready += self._retimed(found - self._first_held)
                packet, self._line = self._let_go()
                ready.append(packet)
                found = self._first_on_line()
        return ready

    def _first_on_line(self) -> Optional[int]:
        """The number of the first waiting packet whose lag is the line's, within the slack."""
        found = None
        for bucket in range(math.floor((self._line - self._slack) / self._width),
                            math.floor((self._line + self._slack) / self._width) + 1):
            waiting = self._by_lag.get(bucket)
            while waiting and waiting[0][0] < self._first_held:
                waiting.popleft()  # let go since
            number = next((n for n, lag in waiting or () if abs(lag - self._line) <= self._slack), None)
            if number is not None and (found is None or number < found):
                found = number
        return found


def _shifted(packet, shift: int) -> None:
    packet.pts += shift
    packet.dts = None if packet.dts is None else packet.dts + shift


def in_line(packets: Iterable, streams: Sequence) -> Iterator:
    """The source's packets as demuxed, each audio stream's through its :class:`AudioLine`."""
    lines = {stream.index: AudioLine(stream) for stream in streams if stream.type == "audio"}
    for packet in packets:
        line = lines.get(packet.stream.index)
        yield from line.take(packet) if line else (packet,)
    for line in lines.values():
        yield from line.flush()
