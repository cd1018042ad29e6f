"""The state actor's cost with many records: /monitor/stats work, reads, start-up, memory.

    .venv/bin/python bench/state.py [--records 100000] [--baseline 1000] [--runs 50]

Fills two SQLite stores (the baseline size and the large one) with finished tasks plus a few live
ones, opens a TaskBoard on each (what the state actor does on start), and prints for both: start-up
time, records held in memory, median and p99 of ``monitor()`` (the whole of GET /monitor/stats
behind the actor) and of ``get()`` of an old finished task, with the large/baseline ratios.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tmlsr_ray.protocol import TaskOutput, TaskStatus  # noqa: E402
from tmlsr_ray.state.board import TaskBoard  # noqa: E402
from tmlsr_ray.state.records import TaskRecord  # noqa: E402
from tmlsr_ray.state.store import TaskStore  # noqa: E402

PARAMS = {"url": "https://example.com/in.mp4", "type": "video", "model": "realesr-animevideov3.pth",
          "outscale": 4.0, "output_magnification": None, "output_dims": None, "resolution": None, "seed": None}


def fill(path: Path, count: int) -> str:
    store = TaskStore(path)
    now = time.time()
    records = [TaskRecord(params=PARAMS, status=TaskStatus.completed, created_at=now - count + i,
                          updated_at=now - count + i, output=TaskOutput(url="https://x/o.mp4", metadata={"frames": 1}),
                          output_key=f"2026/11/26/{i}/output.mp4") for i in range(count)]
    records += [TaskRecord(params=PARAMS) for _ in range(20)]
    store.save_many(records)
    store.close()
    return records[0].task_id


def timings(call: Callable[[], object], runs: int) -> List[float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def measure(count: int, runs: int, folder: Path) -> Dict[str, float]:
    path = folder / f"{count}.sqlite3"
    oldest = fill(path, count)
    start = time.perf_counter()
    board = TaskBoard(path, max_workers=2, recent_limit=50)
    opened_ms = (time.perf_counter() - start) * 1000
    monitor = sorted(timings(board.monitor, runs))
    reads = sorted(timings(lambda: board.get(oldest), runs))
    return {"records": count, "open_ms": opened_ms, "in_memory": sum(board.memory_footprint().values()),
            "monitor_p50": statistics.median(monitor), "monitor_p99": monitor[int(0.99 * (len(monitor) - 1))],
            "get_p50": statistics.median(reads)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--baseline", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        small = measure(args.baseline, args.runs, Path(tmp))
        large = measure(args.records, args.runs, Path(tmp))
    for row in (small, large):
        print(f"{row['records']:>7} records: open {row['open_ms']:.0f} ms, {row['in_memory']} in memory, "
              f"monitor() p50 {row['monitor_p50']:.2f} ms p99 {row['monitor_p99']:.2f} ms, "
              f"get(oldest) p50 {row['get_p50']:.3f} ms")
    print(f"ratio {args.records}/{args.baseline}: monitor p50 {large['monitor_p50'] / small['monitor_p50']:.2f}x, "
          f"open {large['open_ms'] / small['open_ms']:.2f}x")
    print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB "
          f"(includes building the records)")


if __name__ == "__main__":
    main()
