"""Video segments across Upscaler replicas: scaling, bytes carried, memory, and resuming after a kill.

    .venv/bin/python bench/video.py [CLIP] [--runs 3] [--segment-s 1.0] [--preset medium]
                                    [--long-factor 5] [--heartbeat-timeout-s 5]
                                    [--long-hours H [--long-gop-s 2] [--rekey-mib M]]

CLIP is a path or URL (default: ../shared/media/video/animation_bbb_320x180_vp9_opus_5s.webm).
A tiny random Real-ESRGAN x4 model keeps the model cheap, so the x264 encoder is the bottleneck.
The service runs in-process on a local Ray of 2 CPUs, once with 1 Upscaler replica and once with 2
(each replica: 1 CPU, 1 torch thread, 1 encoder thread; everything else the same). One run prints:

1. end-to-end frames/s of a video task (submit → completed; median of --runs) with 1 and with 2
   replicas, the cores the Upscaler replicas, all Ray workers and the whole machine kept busy
   meanwhile (other work on the machine skews the figures), and the ratio 2 / 1;
2. bytes carried between the TaskRunner and the replicas per output frame: now (the task's
   ``transfer_bytes``: compressed segments in, encoded pieces out) against the design before
   segments (raw uint8 RGB frames in and out), and their ratio;
3. the peak RSS of this run's Ray worker processes for the clip against the clip made
   --long-factor × as long (same frames looped; both re-encoded as H.264 so only the length differs);
4. on the long clip: the time from a SIGKILL of the TaskRunner replica at half of the segments done
   to the task's completion (includes the heartbeat timeout before the task is re-queued) against an
   uninterrupted run, and how many segments the resumed attempt reused.

``--long-hours H`` runs instead one video H hours long, as a studio sends a film, at 64x36 and
24 fps with AAC audio (2-s GOPs; ``--long-gop-s 0``: one keyframe, as a screen or surveillance
capture may have, whose segments are re-keyed, or with ``--rekey-mib 0`` not), upscaled x2 by a tiny model with x264 ultrafast so what is
measured is the pipeline itself, cut at the service's default segment length (10 s: 360 segments
an hour). It prints the planning time (probe, packet index, cuts), the join, the TaskRunner's
peak RSS, the most files in ``data_dir/work``, GET /tasks/{id} latency while it runs, the cores
each process used, and the output's frames and video and audio ends against the input's.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Tuple

# A fresh local Ray turns token auth on; this in-process service uses the open local mode.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import av  # noqa: E402
import numpy as np  # noqa: E402
import psutil  # noqa: E402
import requests  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.helpers import InputServer, free_port, make_clip, save_srvgg  # noqa: E402
from tmlsr_ray.pipeline.decode import iter_batches  # noqa: E402
from tmlsr_ray.pipeline.probe import probe_video  # noqa: E402

DEFAULT_CLIP = REPO.parent / "shared" / "media" / "video" / "animation_bbb_320x180_vp9_opus_5s.webm"
MODEL = "tiny-x4.pth"
CPUS = 2
FINISHED = ("completed", "failed", "canceled")
MiB = 2**20
MACHINE = "whole machine"
LONG_MODEL = "tiny-x2.pth"
LONG_RATE = 24
LONG_SIZE = (64, 36)


# -- the service ------------------------------------------------------------------------------

def start_ray() -> str:
    """Local Ray and the Serve HTTP proxy, once for the whole run; returns the base URL."""
    import ray
    from ray import serve

    from tmlsr_ray.serve.state import STATE_NAMESPACE

    port = free_port()
    ray.init(address="local", num_cpus=CPUS, include_dashboard=False, log_to_driver=False,
             namespace=STATE_NAMESPACE, object_store_memory=512 * MiB)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    return f"http://127.0.0.1:{port}"


def stop_ray() -> None:
    import ray
    from ray import serve

    with contextlib.suppress(Exception):
        serve.shutdown()
    ray.shutdown()


def app_settings(root: Path, weights: Path, replicas: int, args: argparse.Namespace) -> Dict[str, Any]:
    return {
        "weights_dir": str(weights), "data_dir": str(root / f"data-{replicas}"), "allow_private_urls": True,
        # The detached state actor keeps the settings it was created with: one of its own per service.
        "state_actor_name": f"bench_video_state_{replicas}",
        "upscaler_replicas": replicas, "upscaler_num_cpus": 1, "torch_threads": 1,
        "seedvr2_replicas": 0,  # its CPU would leave no room for 2 Upscalers on 2 CPUs
        "max_workers": 1, "video_segment_s": args.segment_s, "video_preset": args.preset,
        "heartbeat_interval_s": 0.5, "heartbeat_timeout_s": args.heartbeat_timeout_s,
        "graceful_shutdown_timeout_s": 5,
    }


@contextlib.contextmanager
def deployed(settings: Dict[str, Any]) -> Iterator[None]:
    """The application with these settings, deleted afterwards together with its state actor."""
    import ray
    from ray import serve

    from tmlsr_ray.app import APP_NAME, build_app
    from tmlsr_ray.serve.state import STATE_NAMESPACE

    serve.run(build_app(settings), name=APP_NAME, route_prefix="/")
    try:
        yield
    finally:
        serve.delete(APP_NAME)
        with contextlib.suppress(ValueError):
            ray.kill(ray.get_actor(settings["state_actor_name"], namespace=STATE_NAMESPACE), no_restart=True)


def sigkill_replicas(deployment: str) -> int:
    """SIGKILL of every replica process of a deployment, as the OOM killer would (Serve starts new ones)."""
    import ray

    from tmlsr_ray.app import APP_NAME

    actors = [a for a in ray.util.list_named_actors(all_namespaces=True)
              if f"{APP_NAME}#{deployment}#" in a["name"]]
    for actor in actors:
        handle = ray.get_actor(actor["name"], namespace=actor["namespace"])
        os.kill(ray.get(handle.__ray_call__.remote(lambda self: os.getpid()), timeout=30), signal.SIGKILL)
    return len(actors)


# -- tasks ------------------------------------------------------------------------------------

def submit(server: str, url: str, model: str = MODEL) -> str:
    response = requests.post(f"{server}/tasks", json={"url": url, "type": "video", "model": model}, timeout=60)
    response.raise_for_status()
    return response.json()["task_id"]


def wait(server: str, task_id: str, until: Callable[[Dict], bool] = lambda t: t["status"] in FINISHED,
         timeout_s: float = 1200) -> Dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        task = requests.get(f"{server}/tasks/{task_id}", timeout=60).json()
        if until(task) or task["status"] in FINISHED:
            return task
        if time.monotonic() > deadline:
            raise SystemExit(f"task {task_id} not there in {timeout_s:.0f} s: {task['status']}")
        time.sleep(0.2)


def completed(task: Dict[str, Any]) -> Dict[str, Any]:
    if task["status"] != "completed":
        raise SystemExit(f"task ended {task['status']}: {task['error']}")
    return task


def run_task(server: str, url: str) -> Dict[str, Any]:
    """One task, submit → completed, with its wall time as ``wall_s``."""
    start = time.perf_counter()
    task = completed(wait(server, submit(server, url)))
    task["wall_s"] = time.perf_counter() - start
    return task


def process_detail(task: Dict[str, Any]) -> Dict[str, Any]:
    stage = next(s for s in task["stages"] if s["name"] == "process")
    return stage.get("detail") or {}


def half_of_segments_done(task: Dict[str, Any]) -> bool:
    detail = process_detail(task)
    return bool(detail.get("segments_total")) and detail["segments_done"] >= detail["segments_total"] / 2


def run_killed_at_half(server: str, url: str) -> Dict[str, Any]:
    """A task whose TaskRunner replica is SIGKILLed once half of its segments are done."""
    start = time.perf_counter()
    task_id = submit(server, url)
    at_kill = wait(server, task_id, until=half_of_segments_done)
    if at_kill["status"] in FINISHED:
        raise SystemExit(f"task ended {at_kill['status']} before half of its segments were seen done")
    killed_at = time.perf_counter()
    if not sigkill_replicas("TaskRunner"):
        raise SystemExit("no TaskRunner replica found to kill")
    task = completed(wait(server, task_id))
    done_at = time.perf_counter()
    return {"task": task, "segments_at_kill": process_detail(at_kill)["segments_done"],
            "before_kill_s": killed_at - start, "after_kill_s": done_at - killed_at, "wall_s": done_at - start}


# -- measuring --------------------------------------------------------------------------------

class Sampler:
    """Calls ``sample`` every ``interval_s`` in a thread of its own while the ``with`` block runs."""

    def __init__(self, interval_s: float):
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            time.sleep(self._interval_s)

    def sample(self) -> None:
        raise NotImplementedError


class PeakMemory(Sampler):
    """Samples the summed RSS of this run's Ray worker processes."""

    def __init__(self, interval_s: float = 0.2):
        super().__init__(interval_s)
        self.peak_bytes = 0
        self.peak_by_name: Dict[str, int] = {}

    def sample(self) -> None:
        total = 0
        for name, proc in ray_processes():
            with contextlib.suppress(psutil.Error):  # ended between the listing and the read
                rss = proc.memory_info().rss
                total += rss
                self.peak_by_name[name] = max(self.peak_by_name.get(name, 0), rss)
        self.peak_bytes = max(self.peak_bytes, total)


def ray_processes() -> Iterator[Tuple[str, psutil.Process]]:
    """This run's Ray worker processes (``ray::…``, descendants of this process: another Ray
    instance on the machine is not counted), each with its actor class."""
    for proc in psutil.Process().children(recursive=True):
        try:
            title = " ".join(proc.cmdline())
        except psutil.Error:
            continue
        if title.startswith("ray::"):
            # A replica's process title changes with the method it runs: key by actor class.
            yield title.split()[0].split(".")[0], proc


def cpu_seconds() -> Dict[str, float]:
    """CPU time so far of the Ray worker processes, summed by actor class."""
    seconds: Dict[str, float] = {}
    for name, proc in ray_processes():
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            seconds[name] = seconds.get(name, 0.0) + times.user + times.system
    return seconds


def machine_busy_seconds() -> float:
    times = psutil.cpu_times()
    return sum(getattr(times, field, 0.0) for field in ("user", "nice", "system", "irq", "softirq"))


def timed_runs(server: str, url: str, runs: int) -> Tuple[List[Dict[str, Any]], Dict[str, float]]:
    """``runs`` tasks one after another, and the cores each actor class used meanwhile (and, under
    ``MACHINE``, the whole machine: other work on it skews the figures)."""
    before, machine_before, start = cpu_seconds(), machine_busy_seconds(), time.perf_counter()
    tasks = [run_task(server, url) for _ in range(runs)]
    wall = time.perf_counter() - start
    cores = {name: (spent - before.get(name, 0.0)) / wall for name, spent in cpu_seconds().items()}
    cores[MACHINE] = (machine_busy_seconds() - machine_before) / wall
    return tasks, cores


def loop_clip(source: Path, dest: Path, times: int) -> Path:
    """The source's frames ``times`` over, as one H.264 MP4 with 1-second GOPs (so segments cut at
    keyframes) and timestamps that keep counting up."""
    info = probe_video(source)
    rate = Fraction(info.average_rate or 25)
    with av.open(str(dest), "w") as out:
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = info.width, info.height, "yuv420p"
        gop = max(1, round(rate))
        stream.options = {"preset": "veryfast", "crf": "18",
                          "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0"}
        index = 0
        for _ in range(times):
            for batch in iter_batches(source, info, 16):
                for pixels in batch.frames:
                    if pixels.dtype != np.uint8:  # 10-bit sources decode to 16-bit RGB
                        pixels = (pixels / 257).round().astype(np.uint8)
                    frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
                    frame.pts, frame.time_base = index, 1 / rate
                    out.mux(stream.encode(frame))
                    index += 1
        out.mux(stream.encode(None))
    return dest


def fps_of(tasks: List[Dict[str, Any]]) -> float:
    return statistics.median(t["output"]["metadata"]["frames"] / t["wall_s"] for t in tasks)


def rss_of(actor_class: str) -> int:
    """The summed RSS of this run's processes of an actor class (``:TaskRunner``, ``:Upscaler``)."""
    total = 0
    for name, proc in ray_processes():
        if name.endswith(actor_class):
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
    return total


class LongTaskWatch(Sampler):
    """Samples a running task every half second: its record (and how long GET /tasks/{id} took),
    the TaskRunner's and the Upscalers' RSS, the files in ``data_dir/work``."""

    def __init__(self, server: str, task_id: str, work: Path):
        super().__init__(0.5)
        self.samples: List[Dict[str, Any]] = []
        self._server, self._task_id, self._work = server, task_id, work

    def sample(self) -> None:
        start = time.perf_counter()
        task = requests.get(f"{self._server}/tasks/{self._task_id}", timeout=60).json()
        latency = time.perf_counter() - start
        files = sum(len(names) for _, _, names in os.walk(self._work))
        self.samples.append({"at": time.perf_counter(), "latency_s": latency, "task": task,
                             "runner_rss": rss_of(":TaskRunner"), "upscaler_rss": rss_of(":Upscaler"),
                             "work_files": files})

    def first(self, holds: Callable[[Dict[str, Any]], bool]) -> float:
        """When the task was first seen as ``holds`` says; the last sample where it never was
        (a short task can pass a state between two samples)."""
        return next((s["at"] for s in self.samples if holds(s["task"])), self.samples[-1]["at"])


def run_long(server: str, url: str, work: Path) -> Tuple[Dict[str, Any], LongTaskWatch, Dict[str, float]]:
    before, machine_before = cpu_seconds(), machine_busy_seconds()
    start = time.perf_counter()
    task_id = submit(server, url, LONG_MODEL)
    with LongTaskWatch(server, task_id, work) as watch:
        task = completed(wait(server, task_id, timeout_s=3600))
    task["finished_at"] = time.perf_counter()
    task["wall_s"] = task["finished_at"] - start
    cores = {name: (spent - before.get(name, 0.0)) / task["wall_s"] for name, spent in cpu_seconds().items()}
    cores[MACHINE] = (machine_busy_seconds() - machine_before) / task["wall_s"]
    return task, watch, cores


def stream_ends(path: Path) -> Dict[str, float]:
    """Frames, and where the video and the first audio stream end (s, from the earlier start)."""
    ends: Dict[str, float] = {}
    starts: List[float] = []
    for kind in ("video", "audio"):
        with av.open(str(path)) as container:
            stream = getattr(container.streams, kind)[0]
            stamps = [(p.pts, p.duration) for p in container.demux(stream) if p.pts is not None]
            starts.append(float(min(pts for pts, _ in stamps) * stream.time_base))
            ends[kind] = float(sum(max(stamps)) * stream.time_base)
            ends[f"{kind}_packets"] = len(stamps)
    return {**ends, "video": ends["video"] - min(starts), "audio": ends["audio"] - min(starts)}


def print_long(task: Dict[str, Any], watch: LongTaskWatch, cores: Dict[str, float], source: Dict[str, float],
               output: Dict[str, float]) -> None:
    meta = task["output"]["metadata"]

    def stage_running(name):
        return lambda t: any(s["name"] == name and s["status"] != "pending" for s in t["stages"])
    process_at = watch.first(stage_running("process"))
    planned_at = watch.first(lambda t: bool(process_detail(t).get("segments_total")))
    joined_from = watch.first(lambda t: process_detail(t).get("segments_done") == meta["segments"]["total"])
    latencies = sorted(s["latency_s"] for s in watch.samples)
    print(f"long video: {meta['frames']} frames ({meta['duration']:.0f} s) {meta['input']['width']}x"
          f"{meta['input']['height']} -> {meta['width']}x{meta['height']}, {meta['segments']['total']} segments; "
          f"{task['wall_s']:.1f} s submit -> completed")
    print(f"  planning (probe, packet index, cuts) <= {planned_at - process_at:.1f} s; join and upload <= "
          f"{task['finished_at'] - joined_from:.1f} s (last segment seen done -> completed; 0.5-s samples)")
    print(f"  TaskRunner RSS: {watch.samples[0]['runner_rss'] / MiB:.0f} MiB at submit, peak "
          f"{max(s['runner_rss'] for s in watch.samples) / MiB:.0f} MiB; Upscaler RSS peak "
          f"{max(s['upscaler_rss'] for s in watch.samples) / MiB:.0f} MiB; most files in data_dir/work "
          f"{max(s['work_files'] for s in watch.samples)}")
    print(f"  GET /tasks/{{id}} while it ran: p50 {latencies[len(latencies) // 2] * 1000:.0f} ms, max "
          f"{latencies[-1] * 1000:.0f} ms ({len(latencies)} reads)")
    busy = ", ".join(f"{name.split(':')[-1]} {used:.2f}" for name, used in sorted(cores.items(), key=lambda kv: -kv[1])
                     if used >= 0.01)
    print(f"  cores busy: {busy}")
    for kind in ("video", "audio"):
        print(f"  {kind}: input {source[kind + '_packets']} packets ending at {source[kind]:.4f} s, output "
              f"{output[kind + '_packets']} ending at {output[kind]:.4f} s (difference "
              f"{(output[kind] - source[kind]) * 1000:+.2f} ms)")


def long_main(args: argparse.Namespace, root: Path) -> None:
    weights = root / "weights"
    save_srvgg(weights / LONG_MODEL, num_feat=4, scale=2, weight_scale=0.05)
    frames = round(args.long_hours * 3600 * LONG_RATE)
    gop = round(args.long_gop_s * LONG_RATE) or frames
    clip = make_clip(root / "long.mp4", frames=frames, size=LONG_SIZE, rate=LONG_RATE, options={
        "preset": "ultrafast", "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0"})
    inputs = InputServer(root)
    # a livestream recording may outlast the default limit of 4 hours
    settings = {**app_settings(root, weights, 1, args), "video_preset": "ultrafast",
                "max_video_duration_s": max(4 * 3600, args.long_hours * 3600 + 60)}
    del settings["video_segment_s"]  # the service's default
    if args.rekey_mib is not None:
        settings["video_rekey_segment_mib"] = args.rekey_mib
    server = start_ray()
    try:
        with deployed(settings):
            task, watch, cores = run_long(server, inputs.url(clip.name), Path(settings["data_dir"]) / "work")
            output = root / "output.mp4"
            output.write_bytes(requests.get(task["output"]["url"], timeout=600).content)
    finally:
        stop_ray()
        inputs.close()
    print_long(task, watch, cores, stream_ends(clip), stream_ends(output))


# -- the report -------------------------------------------------------------------------------

def print_scaling(clip_name: str, runs: Dict[int, List[Dict[str, Any]]], cores: Dict[int, Dict[str, float]],
                  args: argparse.Namespace) -> None:
    meta = runs[1][-1]["output"]["metadata"]
    print(f"clip {clip_name}: {meta['input']['width']}x{meta['input']['height']} -> {meta['width']}x"
          f"{meta['height']}, {meta['frames']} frames in {meta['segments']['total']} segments of "
          f"{args.segment_s:g} s; model {MODEL}, x264 preset {meta['preset']}, {CPUS} CPUs for Ray "
          f"({os.cpu_count()} cores), each replica 1 CPU / 1 torch thread")
    for replicas, tasks in runs.items():
        walls = statistics.median(t["wall_s"] for t in tasks)
        busy = cores[replicas]
        upscalers = sum(used for name, used in busy.items() if name.endswith(":Upscaler"))
        workers = sum(used for name, used in busy.items() if name.startswith("ray::"))
        print(f"replicas {replicas}: {fps_of(tasks):.2f} frames/s (median of {len(tasks)}; {walls:.1f} s per task; "
              f"cores busy: Upscaler replicas {upscalers:.2f}, all Ray workers {workers:.2f}, "
              f"whole machine {busy[MACHINE]:.2f})")
    print(f"ratio 2 replicas / 1 replica: {fps_of(runs[2]) / fps_of(runs[1]):.2f}")


def print_transfer(task: Dict[str, Any]) -> None:
    meta = task["output"]["metadata"]
    frames, carried = meta["frames"], meta["transfer_bytes"]
    to_now, from_now = carried["to_replicas"] / frames, carried["from_replicas"] / frames
    to_raw = meta["input"]["width"] * meta["input"]["height"] * 3
    from_raw = meta["width"] * meta["height"] * 3
    now, before = to_now + from_now, to_raw + from_raw
    print(f"bytes runner <-> replicas per frame: now {now / 1024:.1f} KiB compressed "
          f"({to_now / 1024:.1f} in + {from_now / 1024:.1f} out), before {before / 1024:.1f} KiB raw RGB "
          f"({to_raw / 1024:.1f} in + {from_raw / 1024:.1f} out); before / now {before / now:.1f}x")


def print_memory(short: PeakMemory, long: PeakMemory, long_task: Dict[str, Any], factor: int) -> None:
    frames = long_task["output"]["metadata"]["frames"]
    print(f"peak RSS of Ray workers: 1x clip {short.peak_bytes / MiB:.0f} MiB, {factor}x clip ({frames} frames) "
          f"{long.peak_bytes / MiB:.0f} MiB, ratio {long.peak_bytes / short.peak_bytes:.2f}")
    for name, peak in sorted(long.peak_by_name.items(), key=lambda kv: -kv[1])[:4]:
        print(f"  {name}: {peak / MiB:.0f} MiB peak ({factor}x clip)")


def print_kill(killed: Dict[str, Any], uninterrupted: Dict[str, Any], factor: int, timeout_s: float) -> None:
    meta = killed["task"]["output"]["metadata"]
    segments = meta["segments"]
    print(f"TaskRunner SIGKILL on the {factor}x clip ({segments['total']} segments), 2 replicas: "
          f"uninterrupted task {uninterrupted['wall_s']:.1f} s from the start")
    print(f"  killed at {killed['segments_at_kill']}/{segments['total']} segments done "
          f"({killed['before_kill_s']:.1f} s in): finished {killed['after_kill_s']:.1f} s after the kill, "
          f"{killed['wall_s']:.1f} s in all (the kill figure includes the {timeout_s:g} s heartbeat timeout)")
    print(f"  resumed attempt reused {segments['reused']} segments; segment retries {meta['segment_retries']}")


# -- main -------------------------------------------------------------------------------------

def local_clip(arg: str, tmp: Path) -> Path:
    if not arg.startswith(("http://", "https://")):
        return Path(arg)
    clip = tmp / ("clip" + Path(arg.split("?")[0]).suffix)
    clip.write_bytes(requests.get(arg, timeout=600).content)
    return clip


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("clip", nargs="?", default=str(DEFAULT_CLIP))
    parser.add_argument("--runs", type=int, default=3, help="timed tasks per replica count (median)")
    parser.add_argument("--segment-s", type=float, default=1.0, help="video_segment_s of the service")
    parser.add_argument("--preset", default="medium", help="x264 preset of the service")
    parser.add_argument("--long-factor", type=int, default=5, help="how many times longer the long clip is")
    parser.add_argument("--heartbeat-timeout-s", type=float, default=5.0,
                        help="silence after which the killed runner's task is re-queued")
    parser.add_argument("--long-hours", type=float,
                        help="instead: one tiny video this many hours long through the service (see above)")
    parser.add_argument("--long-gop-s", type=float, default=2.0,
                        help="its keyframe interval (0: one keyframe, at the start)")
    parser.add_argument("--rekey-mib", type=int, help="video_rekey_segment_mib of the service (0: off)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        weights = root / "weights"
        weights.mkdir()
        if args.long_hours:
            long_main(args, root)
            return
        save_srvgg(weights / MODEL, weight_scale=0.05)
        clip = local_clip(args.clip, root)
        inputs = InputServer(root)
        clip_url = inputs.add("input" + clip.suffix, clip.read_bytes())
        once_url = inputs.url(loop_clip(clip, root / "once.mp4", 1).name)
        long_url = inputs.url(loop_clip(clip, root / "long.mp4", args.long_factor).name)
        server = start_ray()
        try:
            runs: Dict[int, List[Dict[str, Any]]] = {}
            cores: Dict[int, Dict[str, float]] = {}
            for replicas in (1, 2):
                with deployed(app_settings(root, weights, replicas, args)):
                    run_task(server, clip_url)  # warm-up: replicas start, models load
                    runs[replicas], cores[replicas] = timed_runs(server, clip_url, args.runs)
                    if replicas == 2:
                        with PeakMemory() as short_memory:
                            run_task(server, once_url)
                        with PeakMemory() as long_memory:
                            long_task = run_task(server, long_url)
                        killed = run_killed_at_half(server, long_url)
        finally:
            stop_ray()
            inputs.close()

    print_scaling(Path(args.clip).name, runs, cores, args)
    print_transfer(runs[2][-1])
    print_memory(short_memory, long_memory, long_task, args.long_factor)
    print_kill(killed, long_task, args.long_factor, args.heartbeat_timeout_s)


if __name__ == "__main__":
    main()
