"""The memory and time the timeline's scan of a long transport stream takes, without Ray: every
packet's times kept for the search for clock jumps and stray times.

    python bench/ts_scan.py [--seconds 7200] [--work /tmp/ts_scan]

Makes a capture of that length cheaply (:func:`tests.helpers.long_capture`: 16x16 H.264 and AAC,
a broadcast's count of packets), then prints its packets, the memory the scan's record holds
(resident set growth and bytes per packet) and the seconds of the scan and of the search.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.helpers import long_capture  # noqa: E402
from tmlsr_ray.pipeline.container import open_container  # noqa: E402
from tmlsr_ray.pipeline.timeline import _jumps, _packet_times, _strays  # noqa: E402


def resident_bytes() -> int:
    with open("/proc/self/status") as status:
        return int(next(line for line in status if line.startswith("VmRSS")).split()[1]) * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=7200)
    parser.add_argument("--work", type=Path, default=Path("/tmp/ts_scan"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    path = long_capture(args.work / f"capture-{args.seconds}s.ts", args.seconds)
    with open_container(path) as source:
        gc.collect()
        before, started = resident_bytes(), time.perf_counter()
        times = _packet_times(source)
        scanned = time.perf_counter() - started
        gc.collect()
        held = resident_bytes() - before
    packets = sum(len(stream) for stream in times.values())
    started = time.perf_counter()
    _jumps(times, _strays(times))
    searched = time.perf_counter() - started
    print(f"{packets:,} packets in {args.seconds:,} s: {held / 2**20:.1f} MiB held ({held / packets:.0f} B/packet); "
          f"scan {scanned:.1f} s, search for jumps and strays {searched:.1f} s")


if __name__ == "__main__":
    main()
