"""A source's chapters moved with its streams (no Ray here): the output's, and a copy's whose
clock's jumps are closed."""

from __future__ import annotations

from fractions import Fraction
from typing import Dict, List


def shifted_chapters(chapters: List[Dict], offset: Fraction) -> List[Dict]:
    """The source's chapters (titles and times), moved as the streams are; one that ends before
    the output starts is left out, one that starts before it starts at 0."""
    moved = []
    for chapter in chapters:
        base = Fraction(chapter["time_base"])
        ticks = round(offset / base)
        start, end = max(0, chapter["start"] + ticks), chapter["end"] + ticks
        if end > start:
            moved.append({**chapter, "id": len(moved) + 1, "start": start, "end": end})
    return moved
