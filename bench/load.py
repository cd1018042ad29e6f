"""API under load: many clients polling task status while hundreds of small tasks are submitted.

    .venv/bin/python bench/load.py [--tasks 500] [--clients 50] [--submitters 20] [--max-pending 100]
                                   [--max-workers 2] [--poll-interval 0.05] [--timeout 900]
                                   [--server URL --input-url URL ...] [--model tiny-x4.pth]

Starts the service in-process (local Ray on 2 CPUs, a free port, a temporary data directory, a
tiny random 4× model so that model time stays small and the API and task-state path is what gets
measured) unless ``--server`` names a running one. Tiny PNGs (16×16, 24×16, 16×24) are served
from a local HTTP server on loopback; against a remote ``--server``, give inputs it can reach with
``--input-url`` (repeatable) and a ``--model`` it has.

After one warm-up task (model load), the load phase runs until every accepted task has ended:
- ``--submitters`` clients POST ``--tasks`` tasks as fast as they are admitted; a 429 is counted,
  its ``Retry-After`` honoured, and the same task submitted again, so all of them are accepted
  in the end (a task is given up, and counted, after 5 other errors). ``--max-pending`` (default
  100, a fifth of the tasks; in-process service only) and 20 submitters, which submit faster than
  2 workers finish tasks, make admission control refuse some; the started service answers 429
  with ``Retry-After: --retry-after`` (default 1 s, to keep the run short);
- ``--clients`` clients each GET ``/tasks/{id}`` of a random accepted task not yet seen finished
  (any accepted task when none is left), pausing a random 0.5–1.5 × ``--poll-interval`` between
  requests (so they do not poll in lockstep); with the default short pause they are limited by
  the service's answers, so their req/s is its capacity;
- ``--stats-clients`` clients GET ``/monitor/stats`` every ``--stats-interval`` seconds.

Printed: for each route the requests sent, their throughput over the load phase (req/s), the
p50/p99/max latency in ms and the count of each HTTP status (``error`` = no response: connection
error or timeout); the 429s; the highest queue size and active workers /monitor/stats showed;
tasks accepted, completed, failed (the first errors), canceled and not ended; the task latency
from acceptance to the first poll that saw the task finished; the median service-side stage
durations; the load phase's wall time and tasks/s; for the in-process service, the CPU seconds
each of its processes (by actor class) and this one spent in the load phase. A final GET of every
accepted task confirms its status. Exit status 1 when an accepted task did not end before ``--timeout`` (or a task was never
accepted), else 0.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import math
import os
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import aiohttp
import numpy as np
import psutil
import requests
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.helpers import InputServer, free_port, save_srvgg  # noqa: E402

FINISHED = ("completed", "failed", "canceled")
INPUT_SIZES = [(16, 16), (24, 16), (16, 24)]  # width, height
TINY_MODEL = "tiny-x4.pth"
REQUEST_TIMEOUT_S = 60
SUBMIT_ATTEMPTS_WITHOUT_429 = 5  # errors other than 429 (5xx, no response) before a task is given up


def start_service(root: Path, args: argparse.Namespace) -> str:
    import ray
    from ray import serve

    from tmlsr_ray.app import APP_NAME, build_app
    from tmlsr_ray.serve.state import STATE_NAMESPACE

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    weights = root / "weights"
    weights.mkdir()
    save_srvgg(weights / TINY_MODEL)
    port = free_port()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             namespace=STATE_NAMESPACE, object_store_memory=300 * 1024**2)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(build_app({"weights_dir": str(weights), "data_dir": str(root / "data"), "allow_private_urls": True,
                         "max_workers": args.max_workers, "max_pending_tasks": args.max_pending,
                         "retry_after_s": args.retry_after, "torch_threads": 1, "upscaler_num_cpus": 1,
                         "direct_reads": args.direct_reads,
                         "seedvr2_replicas": 0}),
              name=APP_NAME, route_prefix="/")
    return f"http://127.0.0.1:{port}"


def stop_service() -> None:
    import ray
    from ray import serve

    serve.shutdown()
    ray.shutdown()


def serve_small_inputs(inputs: InputServer) -> List[str]:
    rng = np.random.default_rng(0)
    urls = []
    for width, height in INPUT_SIZES:
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(buf, "PNG")
        urls.append(inputs.add(f"small_{width}x{height}.png", buf.getvalue()))
    return urls


def warm_up(server: str, url: str, model: str, timeout_s: float = 300) -> None:
    """One task through the whole service (model load, first calls), outside the measurements."""
    body = {"url": url, "type": "image", "model": model}
    task_id = requests.post(f"{server}/tasks", json=body, timeout=REQUEST_TIMEOUT_S).json()["task_id"]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        task = requests.get(f"{server}/tasks/{task_id}", timeout=REQUEST_TIMEOUT_S).json()
        if task["status"] in FINISHED:
            if task["status"] != "completed":
                raise SystemExit(f"warm-up task ended {task['status']}: {task.get('error')}")
            return
        time.sleep(0.1)
    raise SystemExit(f"warm-up task {task_id} did not end in {timeout_s:.0f} s")


# -- measurements ------------------------------------------------------------------------------


@dataclass
class RouteStats:
    latencies_s: List[float] = field(default_factory=list)
    codes: Counter = field(default_factory=Counter)  # HTTP status, or "error" (no response)


class Recorder:
    def __init__(self):
        self.routes: Dict[str, RouteStats] = {}

    def record(self, route: str, seconds: float, code) -> None:
        stats = self.routes.setdefault(route, RouteStats())
        stats.latencies_s.append(seconds)
        stats.codes[code] += 1


class Client:
    """One HTTP session to the service; every request's latency and status go to the recorder."""

    def __init__(self, server: str, session: aiohttp.ClientSession, recorder: Recorder):
        self.server, self.session, self.recorder = server, session, recorder

    async def request(self, route: str, method: str, path: str, **kwargs) -> Tuple[Optional[int], dict, object]:
        """(status, headers, JSON body); status None when no response came."""
        start = time.perf_counter()
        try:
            async with self.session.request(method, self.server + path, **kwargs) as response:
                body = await response.json(content_type=None)
                status, headers = response.status, dict(response.headers)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            self.recorder.record(route, time.perf_counter() - start, "error")
            return None, {}, repr(exc)
        self.recorder.record(route, time.perf_counter() - start, status)
        return status, headers, body


class RandomSet:
    """A set with O(1) add, discard and random choice."""

    def __init__(self):
        self._items: List[str] = []
        self._index: Dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, item: str) -> bool:
        return item in self._index

    def add(self, item: str) -> None:
        if item not in self._index:
            self._index[item] = len(self._items)
            self._items.append(item)

    def discard(self, item: str) -> None:
        index = self._index.pop(item, None)
        if index is None:
            return
        last = self._items.pop()
        if index < len(self._items):
            self._items[index] = last
            self._index[last] = index

    def choice(self) -> Optional[str]:
        return random.choice(self._items) if self._items else None


@dataclass
class Tasks:
    """What the clients know of the submitted tasks."""

    accepted_at: Dict[str, float] = field(default_factory=dict)
    seen_finished_at: Dict[str, float] = field(default_factory=dict)
    unfinished: RandomSet = field(default_factory=RandomSet)
    accepted: RandomSet = field(default_factory=RandomSet)
    given_up: List[str] = field(default_factory=list)  # the last error of each task given up
    rejections_429: int = 0
    max_queue_size: int = 0
    max_active_workers: int = 0

    def accept(self, task_id: str) -> None:
        self.accepted_at[task_id] = time.perf_counter()
        self.accepted.add(task_id)
        self.unfinished.add(task_id)

    def saw(self, task_id: str, view: dict) -> None:
        if view.get("status") in FINISHED and task_id in self.unfinished:
            self.seen_finished_at[task_id] = time.perf_counter()
            self.unfinished.discard(task_id)


def cpu_seconds_by_pid() -> Dict[int, Tuple[str, float]]:
    """CPU seconds so far of this process and of the Ray workers it started (``ray::…``), by pid."""
    me = psutil.Process()
    found = {me.pid: ("this process (clients, Ray driver)", me.cpu_times())}
    for proc in me.children(recursive=True):
        try:
            title = " ".join(proc.cmdline())
            if title.startswith("ray::"):
                # A replica's title changes with the method it runs: name it by its actor class.
                found[proc.pid] = (title.split()[0].split(".")[0].split(":")[-1], proc.cpu_times())
        except psutil.Error:
            continue
    return {pid: (name, times.user + times.system) for pid, (name, times) in found.items()}


def cpu_seconds_between(before: Dict[int, Tuple[str, float]], after: Dict[int, Tuple[str, float]]) -> Counter:
    spent: Counter = Counter()
    for pid, (name, seconds) in after.items():
        spent[name] += seconds - before.get(pid, (name, 0.0))[1]
    return spent


# -- the clients -------------------------------------------------------------------------------


async def submit_all(client: Client, tasks: Tasks, urls: List[str], model: str, remaining: List[int]) -> None:
    """Takes tasks from the shared ``remaining`` count until none is left."""
    while remaining[0] > 0:
        remaining[0] -= 1
        body = {"url": random.choice(urls), "type": "image", "model": model}
        await submit_one(client, tasks, body)


async def submit_one(client: Client, tasks: Tasks, body: dict) -> None:
    errors = 0
    while True:
        status, headers, reply = await client.request("POST /tasks", "POST", "/tasks", json=body)
        if status == 200:
            tasks.accept(reply["task_id"])
            return
        if status == 429:
            tasks.rejections_429 += 1
            await asyncio.sleep(float(headers.get("Retry-After", 1)))
            continue
        errors += 1
        if errors >= SUBMIT_ATTEMPTS_WITHOUT_429:
            tasks.given_up.append(f"{status}: {str(reply)[:200]}")
            return
        await asyncio.sleep(0.5 * errors)


async def poll_tasks(client: Client, tasks: Tasks, interval_s: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        task_id = tasks.unfinished.choice() or tasks.accepted.choice()
        if task_id is None:
            await asyncio.sleep(0.01)
            continue
        status, _, view = await client.request("GET /tasks/{id}", "GET", f"/tasks/{task_id}")
        if status == 200:
            tasks.saw(task_id, view)
        if interval_s:  # jittered, as independent clients are: pollers in lockstep arrive as bursts
            await asyncio.sleep(interval_s * random.uniform(0.5, 1.5))


async def sample_stats(client: Client, tasks: Tasks, interval_s: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        status, _, stats = await client.request("GET /monitor/stats", "GET", "/monitor/stats")
        if status == 200:
            tasks.max_queue_size = max(tasks.max_queue_size, stats["system"]["queue_size"])
            tasks.max_active_workers = max(tasks.max_active_workers, stats["system"]["active_workers"])
        await asyncio.sleep(interval_s)


async def wait_until_all_ended(submitters: List[asyncio.Task], tasks: Tasks, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if all(s.done() for s in submitters) and not tasks.unfinished:
            return True
        await asyncio.sleep(0.05)
    return False


async def final_views(client: Client, task_ids: List[str], concurrency: int = 10) -> Dict[str, dict]:
    """Every task's record as the service has it now (not part of the measured load)."""
    views: Dict[str, dict] = {}
    gate = asyncio.Semaphore(concurrency)

    async def fetch(task_id: str) -> None:
        async with gate:
            status, _, view = await client.request("final GET", "GET", f"/tasks/{task_id}")
            views[task_id] = view if status == 200 else {"status": f"HTTP {status}", "error": str(view)[:200]}

    await asyncio.gather(*(fetch(task_id) for task_id in task_ids))
    return views


@dataclass
class LoadResult:
    recorder: Recorder
    tasks: Tasks
    views: Dict[str, dict]
    wall_s: float
    all_ended: bool
    cpu_s: Counter  # CPU seconds spent in the load phase, by process (in-process service only)


async def run_load(server: str, urls: List[str], args: argparse.Namespace) -> LoadResult:
    recorder, tasks, stop = Recorder(), Tasks(), asyncio.Event()
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        client = Client(server, session, recorder)
        cpu_before = cpu_seconds_by_pid()
        start = time.perf_counter()
        remaining = [args.tasks]
        submitters = [asyncio.create_task(submit_all(client, tasks, urls, args.model, remaining))
                      for _ in range(args.submitters)]
        watchers = [asyncio.create_task(poll_tasks(client, tasks, args.poll_interval, stop))
                    for _ in range(args.clients)]
        watchers += [asyncio.create_task(sample_stats(client, tasks, args.stats_interval, stop))
                     for _ in range(args.stats_clients)]
        all_ended = await wait_until_all_ended(submitters, tasks, args.timeout)
        wall_s = time.perf_counter() - start
        cpu_s = cpu_seconds_between(cpu_before, cpu_seconds_by_pid())
        stop.set()
        for submitter in submitters:
            submitter.cancel()
        await asyncio.gather(*watchers, *submitters, return_exceptions=True)
        views = await final_views(Client(server, session, Recorder()), list(tasks.accepted_at))
    return LoadResult(recorder, tasks, views, wall_s, all_ended, cpu_s)


# -- the report --------------------------------------------------------------------------------


def percentile(values: List[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def print_routes(recorder: Recorder, wall_s: float) -> None:
    print(f"{'route':<20} {'requests':>9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}  HTTP status")
    for route, stats in sorted(recorder.routes.items()):
        ms = [s * 1000 for s in stats.latencies_s]
        codes = ", ".join(f"{code}: {count}" for code, count in sorted(stats.codes.items(), key=str))
        print(f"{route:<20} {len(ms):>9} {len(ms) / wall_s:>8.1f} {percentile(ms, 50):>8.1f} "
              f"{percentile(ms, 99):>8.1f} {max(ms):>8.1f}  {codes}")


def print_tasks(result: LoadResult, args: argparse.Namespace) -> None:
    tasks, views = result.tasks, result.views
    by_status = Counter(view.get("status") for view in views.values())
    print(f"429s: {tasks.rejections_429} (max pending {args.max_pending if not args.server else 'of the server'}); "
          f"/monitor/stats showed queue size up to {tasks.max_queue_size}, "
          f"active workers up to {tasks.max_active_workers}")
    print(f"tasks: {args.tasks} submitted, {len(tasks.accepted_at)} accepted, {len(tasks.given_up)} given up; "
          f"final status of the accepted: " + ", ".join(f"{s}: {n}" for s, n in sorted(by_status.items())))
    for error in tasks.given_up[:5]:
        print(f"  given up after errors: {error}")
    failed = [(task_id, view) for task_id, view in views.items()
              if view.get("status") not in ("completed", "pending", "processing")]
    for task_id, view in failed[:5]:  # failed, canceled, or no record (HTTP error)
        print(f"  {task_id} {view.get('status')}: {view.get('error')}")
    waits = [tasks.seen_finished_at[t] - tasks.accepted_at[t] for t in tasks.seen_finished_at]
    if waits:
        print(f"task latency accepted -> seen finished: p50 {percentile(waits, 50):.2f} s, "
              f"p99 {percentile(waits, 99):.2f} s, max {max(waits):.2f} s")
    print_stage_medians(views)
    ended = sum(by_status[s] for s in FINISHED)
    print(f"load phase: {result.wall_s:.1f} s wall, {ended / result.wall_s:.2f} tasks/s ended")


def print_cpu(cpu_s: Counter, wall_s: float) -> None:
    top = ", ".join(f"{name} {seconds:.1f}" for name, seconds in cpu_s.most_common(8) if seconds >= 0.05)
    print(f"CPU seconds in the load phase ({sum(cpu_s.values()):.0f} s in all, "
          f"{wall_s * (os.cpu_count() or 1):.0f} s of cores): {top}")


def print_stage_medians(views: Dict[str, dict]) -> None:
    durations: Dict[str, List[float]] = {}
    for view in views.values():
        if view.get("status") == "completed":
            for stage in view.get("stages", []):
                if stage.get("duration") is not None:
                    durations.setdefault(stage["name"], []).append(stage["duration"])
    if durations:
        print("service stages of completed tasks (median): " +
              ", ".join(f"{name} {statistics.median(v) * 1000:.0f} ms" for name, v in durations.items()))


def every_accepted_task_ended(result: LoadResult, args: argparse.Namespace) -> bool:
    not_ended = [t for t, view in result.views.items() if view.get("status") not in FINISHED]
    if not_ended:
        print(f"NOT ENDED after the {args.timeout:.0f} s timeout: {len(not_ended)} accepted task(s), e.g. "
              + ", ".join(f"{t} ({result.views[t].get('status')})" for t in not_ended[:5]))
    never_accepted = args.tasks - len(result.tasks.accepted_at)
    if never_accepted:
        print(f"NOT ACCEPTED: {never_accepted} task(s)")
    if not not_ended and not never_accepted:
        print(f"OK: all {len(result.views)} accepted tasks ended")
    return not not_ended and not never_accepted


# -- main --------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=500, help="tasks to submit")
    parser.add_argument("--clients", type=int, default=50, help="clients polling GET /tasks/{id}")
    parser.add_argument("--submitters", type=int, default=20, help="clients submitting POST /tasks")
    parser.add_argument("--stats-clients", type=int, default=2, help="clients sampling GET /monitor/stats")
    parser.add_argument("--poll-interval", type=float, default=0.05, help="pause of each poller between GETs (s)")
    parser.add_argument("--stats-interval", type=float, default=0.5, help="pause between /monitor/stats GETs (s)")
    parser.add_argument("--max-pending", type=int, default=100,
                        help="max_pending_tasks of the started service (below --tasks, so 429s happen)")
    parser.add_argument("--max-workers", type=int, default=2, help="max_workers of the started service")
    parser.add_argument("--retry-after", type=int, default=1, help="retry_after_s of the started service")
    parser.add_argument("--direct-reads", action=argparse.BooleanOptionalAction, default=True,
                        help="direct_reads of the started service (--no-direct-reads: every read asks the state actor)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds the load phase may take")
    parser.add_argument("--server", help="URL of a running service (default: start one in-process)")
    parser.add_argument("--input-url", action="append",
                        help="input image URL the server can reach (repeatable; default: tiny PNGs on loopback)")
    parser.add_argument("--model", default=TINY_MODEL, help="model named in the tasks (the server must have it)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        inputs = InputServer(Path(tmp))
        urls = args.input_url or serve_small_inputs(inputs)
        server = args.server or start_service(Path(tmp), args)
        try:
            warm_up(server, urls[0], args.model)
            result = asyncio.run(run_load(server, urls, args))
        finally:
            inputs.close()
            if not args.server:
                stop_service()
    where = args.server or f"in-process service, 2 CPUs, max_workers {args.max_workers}"
    print(f"{args.tasks} image tasks ({args.model}, inputs {len(urls)} small PNGs) against {where}; "
          f"{args.submitters} submitters, {args.clients} pollers (pause {args.poll_interval * 1000:.0f} ms), "
          f"{args.stats_clients} stats samplers; {os.cpu_count()} cores on this machine")
    print_routes(result.recorder, result.wall_s)
    print_tasks(result, args)
    if not args.server:
        print_cpu(result.cpu_s, result.wall_s)
    sys.exit(0 if every_accepted_task_ended(result, args) else 1)


if __name__ == "__main__":
    main()
