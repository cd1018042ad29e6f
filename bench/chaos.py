"""Chaos soak: every accepted task completes while random processes of the service are SIGKILLed.

    .venv/bin/python bench/chaos.py [--tasks 40] [--videos 16] [--chaos-s 240] [--kill-every 15 30]
                                    [--timeout 900] [--seed 0]

Starts the embedded default in-process (local Ray on 2 CPUs, local storage in a temporary data
directory, a free port on 127.0.0.1, a tiny random 4× model), an input server and a webhook
receiver, both on loopback. Nothing else is reached, and every phase has a time limit.

- Submission: ``--tasks`` tasks (``--videos`` of them short clips cut into 1 s segments, the rest
  small PNGs; half of the inputs trickle in over 2 s so a kill finds downloads in flight) are
  submitted one after another, spread over the first half of the chaos phase. Each POST carries an
  ``Idempotency-Key`` and is repeated until answered (a kill may drop it, or drop its answer),
  so a task is accepted once however often it was sent.
- Chaos: for ``--chaos-s`` seconds, every ``--kill-every`` (uniform, seconds) one random process
  of one random kind is SIGKILLed: the ingress replica, the HTTP proxy, the task runner, the
  Upscaler replica, the state actor. Ray and Serve bring each back.
- Afterwards, until ``--timeout``: wait for every accepted task to end, then check that each is
  ``completed``; that its output is in storage exactly once (one file in its folder, no
  ``.partial`` left) and decodes (an image of 4× the input's size; a video of the clip's frame
  count at 4× its size); that no task is still pending or processing; that the webhook receiver
  got a ``completed`` event for each, every retry of one event under the same delivery id.

Printed: the kills by kind, submission retries, task statuses, inputs fetched more than once (a
task that ran again after a kill), outputs checked, webhooks received / distinct deliveries /
duplicates, and each failed check. Exit status 1 when a check failed, else 0.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import psutil
import requests
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.helpers import InputServer, WebhookReceiver, free_port, make_clip, save_srvgg  # noqa: E402

TINY_MODEL = "tiny-x4.pth"
COMPLETED_EVENT = "task.completed"  # the event name in a webhook body
SCALE = 4
FINISHED = ("completed", "failed", "canceled")
REQUEST_TIMEOUT_S = 30
# Process titles Ray gives the service's workers (``ray::<actor class>`` or, for a Serve replica,
# ``ray::ServeReplica:<app>:<deployment>``), by the kind of process a kill targets.
TARGETS = {
    "ingress": "ServeReplica:tmlsr:Ingress",
    "http proxy": "ProxyActor",
    "runner": "ServeReplica:tmlsr:TaskRunner",
    "upscaler": "ServeReplica:tmlsr:Upscaler",
    "state actor": "TaskState",
}


@dataclass
class Input:
    url: str
    kind: str  # "image" or "video"
    size: Tuple[int, int]  # width, height
    frames: int = 1


@dataclass
class Soak:
    server: str
    webhook_url: str
    accepted: Dict[str, Input] = field(default_factory=dict)  # task id -> its input
    post_retries: int = 0
    not_accepted: List[str] = field(default_factory=list)
    kills: Counter = field(default_factory=Counter)
    kills_missed: Counter = field(default_factory=Counter)  # no such process up at that moment
    failures: List[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def elapsed(self) -> float:
        return time.monotonic() - self.started


# -- the service and its inputs ----------------------------------------------------------------


def start_service(root: Path, seed: int) -> str:
    import ray
    from ray import serve

    from tmlsr_ray.app import APP_NAME, build_app
    from tmlsr_ray.serve.state import STATE_NAMESPACE

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    weights = root / "weights"
    weights.mkdir()
    save_srvgg(weights / TINY_MODEL, seed=seed)
    port = free_port()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             namespace=STATE_NAMESPACE, object_store_memory=300 * 1024**2)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(build_app({
        "weights_dir": str(weights), "data_dir": str(root / "data"), "allow_private_urls": True,
        "max_workers": 2, "torch_threads": 1, "upscaler_num_cpus": 1, "seedvr2_replicas": 0,
        # A killed runner's tasks run again 5 s after its last heartbeat, not the default's 30 s.
        "heartbeat_interval_s": 0.5, "heartbeat_timeout_s": 5,
        "video_segment_s": 1.0, "video_preset": "ultrafast",
        # Webhooks outlast a receiver-side gap of several kills: 20 tries, at most 60 s apart.
        "webhook_attempts": 20, "webhook_backoff_s": 0.5,
    }), name=APP_NAME, route_prefix="/")
    return f"http://127.0.0.1:{port}"


def stop_service() -> None:
    import ray
    from ray import serve

    serve.shutdown()
    ray.shutdown()


def make_inputs(inputs: InputServer, root: Path) -> Tuple[List[Input], List[Input]]:
    """Images and clips, each also behind a 2 s trickle (``slow/``) so kills meet downloads."""
    rng = np.random.default_rng(0)
    images, videos = [], []
    for width, height in ((16, 16), (24, 16), (16, 24)):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(buf, "PNG")
        name = f"img_{width}x{height}.png"
        inputs.add(name, buf.getvalue())
        images += [Input(inputs.url(name), "image", (width, height)),
                   Input(inputs.url(f"slow/{name}?seconds=2"), "image", (width, height))]
    for frames, (width, height) in ((36, (32, 24)), (24, (48, 32))):
        name = f"clip_{frames}f_{width}x{height}.mp4"
        make_clip(root / name, frames=frames, size=(width, height), rate=12)
        inputs.add(name, (root / name).read_bytes())
        videos += [Input(inputs.url(name), "video", (width, height), frames),
                   Input(inputs.url(f"slow/{name}?seconds=2"), "video", (width, height), frames)]
    return images, videos


def wait_healthy(server: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{server}/health", timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise SystemExit(f"the service at {server} was not healthy within {timeout_s:.0f} s")


# -- submission and chaos ----------------------------------------------------------------------


def submit(soak: Soak, source: Input, give_up_at: float) -> None:
    """POSTs until answered; the same Idempotency-Key every time, so one task however many tries."""
    body = {"url": source.url, "type": source.kind, "model": TINY_MODEL, "callback_url": soak.webhook_url}
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    while time.monotonic() < give_up_at:
        try:
            response = requests.post(f"{soak.server}/tasks", json=body, headers=headers, timeout=REQUEST_TIMEOUT_S)
            if response.status_code == 200:
                soak.accepted[response.json()["task_id"]] = source
                return
        except requests.RequestException:
            pass
        soak.post_retries += 1
        time.sleep(1.0)
    soak.not_accepted.append(source.url)


def submit_all(soak: Soak, sources: List[Input], spread_s: float, give_up_at: float) -> None:
    for index, source in enumerate(sources):
        submit(soak, source, give_up_at)
        pause = spread_s * (index + 1) / len(sources) - soak.elapsed()
        if pause > 0:
            time.sleep(pause)


def service_processes(title: str) -> List[psutil.Process]:
    found = []
    for proc in psutil.Process().children(recursive=True):
        try:
            words = proc.cmdline()
            if words and words[0].startswith("ray::") and words[0][len("ray::"):].split(".")[0] == title:
                found.append(proc)
        except psutil.Error:
            continue
    return found


def kill_one(soak: Soak, rng: random.Random) -> str:
    kind = rng.choice(sorted(TARGETS))
    processes = service_processes(TARGETS[kind])
    if not processes:
        soak.kills_missed[kind] += 1
        return f"{kind}: none up"
    victim = rng.choice(processes)
    try:
        victim.send_signal(signal.SIGKILL)
    except psutil.Error:
        soak.kills_missed[kind] += 1
        return f"{kind}: gone before the kill"
    soak.kills[kind] += 1
    return f"{kind} (pid {victim.pid})"


def run_chaos(soak: Soak, until: float, every: Tuple[float, float], rng: random.Random, stop: threading.Event) -> None:
    while not stop.wait(rng.uniform(*every)):
        if time.monotonic() >= until:
            return
        print(f"  {soak.elapsed():6.1f} s  SIGKILL {kill_one(soak, rng)}", flush=True)


# -- the checks --------------------------------------------------------------------------------


def views(soak: Soak) -> Dict[str, Optional[dict]]:
    found = {}
    for task_id in soak.accepted:
        try:
            found[task_id] = requests.get(f"{soak.server}/tasks/{task_id}", timeout=REQUEST_TIMEOUT_S).json()
        except (requests.RequestException, ValueError):
            found[task_id] = None
    return found


def wait_all_ended(soak: Soak, deadline: float) -> Dict[str, Optional[dict]]:
    while True:
        seen = views(soak)
        if all(v is not None and v["status"] in FINISHED for v in seen.values()) or time.monotonic() >= deadline:
            return seen
        time.sleep(2.0)


def check_output(soak: Soak, outputs_root: Path, task_id: str, view: dict) -> None:
    source = soak.accepted[task_id]
    folders = list(outputs_root.glob(f"*/*/*/{task_id}"))
    files = [p for folder in folders for p in folder.iterdir()]
    if len(files) != 1 or files[0].name.endswith(".partial"):
        soak.failures.append(f"{task_id}: stored as {[str(p.relative_to(outputs_root)) for p in files]}, not one file")
        return
    data = requests.get(view["output"]["url"], timeout=REQUEST_TIMEOUT_S).content
    want = (source.size[0] * SCALE, source.size[1] * SCALE)
    got = decoded_shape(data, source.kind)
    if got != (want, source.frames):
        soak.failures.append(f"{task_id}: output decodes as {got}, want {(want, source.frames)}")


def decoded_shape(data: bytes, kind: str) -> Tuple[Tuple[int, int], int]:
    """((width, height), frames) of an output, by decoding all of it."""
    if kind == "image":
        image = Image.open(io.BytesIO(data))
        image.load()
        return image.size, 1
    import av

    with av.open(io.BytesIO(data)) as container:
        frames = [frame for frame in container.decode(video=0)]
    return (frames[0].width, frames[0].height) if frames else (0, 0), len(frames)


def check_webhooks(soak: Soak, receiver: WebhookReceiver) -> Tuple[int, int]:
    """(distinct deliveries, duplicate POSTs); a failure for each task without a completed event."""
    deliveries: Dict[str, Tuple[str, str]] = {}  # delivery id -> (task id, event)
    completed = defaultdict(set)  # task id -> delivery ids of its completed event
    duplicates = 0
    for _, headers, body in list(receiver.received):
        event = json.loads(body)
        delivery = headers.get("X-TMLSR-Delivery", "")
        key = (event["task_id"], event["event"])
        if delivery in deliveries:
            duplicates += 1
            if deliveries[delivery] != key:
                soak.failures.append(f"delivery {delivery} carried {deliveries[delivery]} and {key}")
        deliveries[delivery] = key
        if event["event"] == COMPLETED_EVENT:
            completed[event["task_id"]].add(delivery)
    for task_id in soak.accepted:
        if not completed[task_id]:
            soak.failures.append(f"{task_id}: no completed webhook")
        elif len(completed[task_id]) > 1:
            soak.failures.append(f"{task_id}: completed webhook under {len(completed[task_id])} delivery ids")
    return len(deliveries), duplicates


def check(soak: Soak, seen: Dict[str, Optional[dict]], outputs_root: Path, receiver: WebhookReceiver,
          inputs: InputServer) -> None:
    statuses = Counter(v["status"] if v else "unreadable" for v in seen.values())
    print(f"tasks: {len(soak.accepted)} accepted, {len(soak.not_accepted)} never accepted; "
          + ", ".join(f"{n} {s}" for s, n in sorted(statuses.items())))
    if soak.not_accepted:
        soak.failures.append(f"{len(soak.not_accepted)} task(s) never accepted")
    for task_id, view in seen.items():
        if view is None or view["status"] != "completed":
            soak.failures.append(f"{task_id}: {view and view['status']}: {view and view.get('error')}")
        else:
            check_output(soak, outputs_root, task_id, view)
    checked = sum(1 for v in seen.values() if v and v["status"] == "completed")
    print(f"outputs: {checked} checked (one file each, decoded, size and frame count)")
    distinct, duplicates = check_webhooks(soak, receiver)
    print(f"webhooks: {len(receiver.received)} received, {distinct} distinct deliveries, {duplicates} duplicates")
    submitted = Counter(source.url for source in soak.accepted.values())
    extra = sum(max(0, inputs.fetches(url[len(inputs.base) + 1:]) - times) for url, times in submitted.items())
    print(f"downloads beyond one per task (a task run again after a kill): {extra}")


def tasks_with_completed_webhook(receiver: WebhookReceiver) -> set:
    return {event["task_id"] for event in map(json.loads, (body for _, _, body in list(receiver.received)))
            if event["event"] == COMPLETED_EVENT}


# -- main --------------------------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=40)
    parser.add_argument("--videos", type=int, default=16, help="how many of the tasks are clips")
    parser.add_argument("--chaos-s", type=float, default=240.0, help="how long processes are killed")
    parser.add_argument("--kill-every", type=float, nargs=2, default=(15.0, 30.0), metavar=("MIN_S", "MAX_S"))
    parser.add_argument("--timeout", type=float, default=900.0, help="the whole soak's limit, seconds")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def soak_sources(args: argparse.Namespace, images: List[Input], videos: List[Input], rng: random.Random) -> List[Input]:
    sources = [videos[i % len(videos)] for i in range(args.videos)]
    sources += [images[i % len(images)] for i in range(args.tasks - args.videos)]
    rng.shuffle(sources)
    return sources


def run_soak(soak: Soak, sources: List[Input], args: argparse.Namespace, rng: random.Random,
             receiver: WebhookReceiver, deadline: float) -> Dict[str, Optional[dict]]:
    """Submits under chaos, then waits for the tasks and their webhooks; the tasks' final views."""
    chaos_until = soak.started + args.chaos_s
    stop = threading.Event()
    killer = threading.Thread(target=run_chaos, args=(soak, chaos_until, tuple(args.kill_every), rng, stop), daemon=True)
    killer.start()
    try:
        submit_all(soak, sources, args.chaos_s / 2, deadline)
        killer.join(max(0.0, chaos_until - time.monotonic()) + args.kill_every[1])
    finally:
        stop.set()
    seen = wait_all_ended(soak, deadline)
    # Webhooks of the last tasks may still be in flight, or waiting out a back-off.
    settle = min(time.monotonic() + 90, deadline)
    while time.monotonic() < settle and not set(soak.accepted) <= tasks_with_completed_webhook(receiver):
        time.sleep(1.0)
    return seen


def print_kills(soak: Soak) -> None:
    print(f"kills: {sum(soak.kills.values())} (" + ", ".join(f"{n} {k}" for k, n in sorted(soak.kills.items())) + ")"
          + (f"; missed (none up): {dict(soak.kills_missed)}" if soak.kills_missed else ""))
    print(f"submission: {soak.post_retries} POST retries")


def main(argv=None) -> int:
    args = parse_args(argv)
    rng = random.Random(args.seed)
    deadline = time.monotonic() + args.timeout
    with tempfile.TemporaryDirectory(prefix="tmlsr-chaos-") as tmp:
        root = Path(tmp)
        (root / "inputs").mkdir()
        inputs, receiver = InputServer(root / "inputs"), WebhookReceiver()
        sources = soak_sources(args, *make_inputs(inputs, root), rng)
        try:
            server = start_service(root, args.seed)
            wait_healthy(server)
            print(f"soak: {args.tasks} tasks ({args.videos} clips), kills every {args.kill_every[0]:.0f}-"
                  f"{args.kill_every[1]:.0f} s for {args.chaos_s:.0f} s", flush=True)
            soak = Soak(server, receiver.url)
            seen = run_soak(soak, sources, args, rng, receiver, deadline)
            wall_s = soak.elapsed()
            print_kills(soak)
            check(soak, seen, root / "data" / "outputs", receiver, inputs)
            print(f"wall: {wall_s:.0f} s")
        finally:
            stop_service()
            inputs.close()
            receiver.close()
    for failure in soak.failures:
        print("FAILED", failure)
    print("chaos soak:", "FAILED" if soak.failures else "every accepted task completed once, stored once, webhook sent")
    return 1 if soak.failures else 0


if __name__ == "__main__":
    sys.exit(main())
