"""A stop and restart of the whole application between submission and completion loses nothing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import pytest
import requests

from tests.helpers import eventually, make_clip, png_bytes


@dataclass
class SecondApp:
    """A second application on the cluster, with its own state actor and data."""
    name: str
    state_actor: str
    base: str
    deploy: Callable[..., dict]  # deploys with changed settings; returns the application args deployed

    def stop(self) -> None:
        from ray import serve

        serve.delete(self.name)


def second_app(service, name: str, **overrides):
    import ray
    from ray import serve

    from tmlsr_ray.app import build_app
    from tmlsr_ray.serve.state import STATE_NAMESPACE

    state = f"tmlsr_state_{name}"
    settings = {"weights_dir": str(service.weights_dir), "data_dir": str(service.data_dir / name),
                "allow_private_urls": True, "upscaler_num_cpus": 0, "seedvr2_replicas": 0, "max_workers": 2,
                "state_actor_name": state, "heartbeat_interval_s": 0.5, "video_segment_s": 1.0,
                "video_preset": "ultrafast", "torch_threads": 2, **overrides}

    def deploy(**changes) -> dict:
        args = {**settings, **changes}
        serve.run(build_app(args), name=name, route_prefix=f"/{name}")
        return args

    deploy()
    yield SecondApp(name, state, service.url(f"/{name}"), deploy)
    serve.delete(name)
    ray.kill(ray.get_actor(state, namespace=STATE_NAMESPACE), no_restart=True)


# One deployment per module for each way of ending (a deploy costs 7-30 s of CI), shared by its tests: each
# redeploys with settings no other one deploys. Neither waits on a silent runner (120 s): a stopped or replaced
# replica is seen gone.
@pytest.fixture(scope="module")
def stoppable(service):
    """Stops fast: a stop gives running tasks 1 s."""
    yield from second_app(service, "stop-app", graceful_shutdown_timeout_s=1, heartbeat_timeout_s=120)


@pytest.fixture(scope="module")
def upgradable(service):
    """One task at a time; drains for up to a minute on a redeploy."""
    yield from second_app(service, "upgrade-app", max_workers=1, graceful_shutdown_timeout_s=60,
                          heartbeat_timeout_s=120)


def test_ten_tasks_all_complete_across_a_stop_and_restart_of_the_application(stoppable, input_server):
    input_server.add("restart.png", png_bytes(24, 16))
    slow = input_server.url("slow/restart.png?seconds=2")
    ids = [submit(stoppable.base, slow) for _ in range(10)]
    wait_until(lambda: statuses(stoppable.base, ids).count("processing") == 2, "two tasks processing")

    stoppable.stop()  # running tasks are cut off; pending ones wait in the state actor
    assert requests.get(f"{stoppable.base}/health", timeout=10).status_code == 404
    stoppable.deploy()

    wait_until(lambda: all(s in ("completed", "failed", "canceled") for s in statuses(stoppable.base, ids)),
               "all ten tasks finished", timeout=180)
    tasks = [requests.get(f"{stoppable.base}/tasks/{task_id}", timeout=10).json() for task_id in ids]
    assert [t["status"] for t in tasks] == ["completed"] * 10, [t["error"] for t in tasks]
    assert all(t["output"]["metadata"]["width"] == 96 for t in tasks)


def submit(base: str, url: str) -> str:
    return requests.post(f"{base}/tasks", json={"url": url, "type": "image", "model": "tiny-x4.pth"},
                         timeout=30).json()["task_id"]


def statuses(base: str, ids) -> list:
    return [requests.get(f"{base}/tasks/{task_id}", timeout=10).json()["status"] for task_id in ids]


def wait_until(condition, what: str, timeout: float = 60) -> None:
    eventually(condition, timeout, what)


def test_a_video_cut_off_by_a_stop_resumes_from_its_finished_segments(stoppable, input_server, tmp_path):
    base = stoppable.base
    # Nine segments (of about a second): after two, the rest outlasts the stop (its grace period and the
    # app's deletion, 4 s here), so the stop really cuts the video off: with four, stopped after one, the
    # last three finished during the stop on a quiet machine (reused 0; a stop that does not cut it off
    # fails the test, never passes it).
    url = input_server.add("restart.mp4", make_clip(tmp_path / "r.mp4", frames=96, size=(160, 120)).read_bytes())
    task_id = requests.post(f"{base}/tasks", json={"url": url, "model": "slow-x4.pth"}, timeout=30).json()["task_id"]

    def started() -> bool:
        task = requests.get(f"{base}/tasks/{task_id}", timeout=10).json()
        return (task["stages"][1].get("detail") or {}).get("segments_done", 0) >= 2
    wait_until(started, "two segments finished", timeout=180)
    stoppable.stop()
    stoppable.deploy()
    wait_until(lambda: statuses(base, [task_id])[0] in ("completed", "failed", "canceled"), "the video", timeout=240)
    task = requests.get(f"{base}/tasks/{task_id}", timeout=10).json()
    assert task["status"] == "completed", task["error"]
    meta = task["output"]["metadata"]
    assert meta["frames"] == 96 and meta["segments"] == {"total": 9, "reused": meta["segments"]["reused"], "rekeyed": 0}
    assert meta["segments"]["reused"] >= 2


def test_a_task_cut_off_by_a_stop_runs_again_as_soon_as_the_app_is_back(stoppable, input_server):
    import time

    input_server.add("cut.png", png_bytes(24, 16))
    task_id = submit(stoppable.base, input_server.url("slow/cut.png?seconds=3"))
    wait_until(lambda: statuses(stoppable.base, [task_id]) == ["processing"], "the task processing")
    stoppable.stop()  # the runner replica is gone within the 1 s grace
    stoppable.deploy()
    start = time.monotonic()
    wait_until(lambda: statuses(stoppable.base, [task_id]) == ["completed"], "the task completed", timeout=90)
    # Far sooner than the 120 s a silent runner takes to be noticed: its replica was seen gone.
    assert time.monotonic() - start < 60
    task = requests.get(f"{stoppable.base}/tasks/{task_id}", timeout=10).json()
    assert task["output"]["metadata"]["width"] == 96


def test_a_redeploy_lets_the_running_task_finish_on_the_old_replica(upgradable, input_server):
    input_server.add("drain.png", png_bytes(24, 16))
    task_id = submit(upgradable.base, input_server.url("slow/drain.png?seconds=4"))
    wait_until(lambda: statuses(upgradable.base, [task_id]) == ["processing"], "the task processing")
    upgradable.deploy(recent_tasks_limit=49)  # new settings: every replica is replaced
    # Finished well before a lost runner could be noticed (120 s): the old replica drained it.
    wait_until(lambda: statuses(upgradable.base, [task_id]) == ["completed"], "the task completed", timeout=60)


def test_deploys_of_new_settings_replace_the_state_actor_and_run_every_task_once(upgradable, input_server):
    import ray

    from tmlsr_ray.config import Settings
    from tmlsr_ray.serve.state import STATE_NAMESPACE, state_fingerprint

    base = upgradable.base
    input_server.add("upgrade.png", png_bytes(24, 16))
    inputs = [f"slow/upgrade.png?seconds=1.5&task={number}" for number in range(5)]

    def state_actor():
        actor = ray.get_actor(upgradable.state_actor, namespace=STATE_NAMESPACE)
        return actor._actor_id.hex(), ray.get(actor.fingerprint.remote())

    ids = [submit(base, input_server.url(relative)) for relative in inputs[:3]]
    wait_until(lambda: statuses(base, ids).count("processing") == 1, "one task processing, two pending")
    first_actor, _ = state_actor()
    for limit in (48, 47):  # two upgrades, each while tasks run and wait; none is the other test's 49
        settings = Settings.load(upgradable.deploy(recent_tasks_limit=limit))
        actor, fingerprint = state_actor()
        assert actor != first_actor and fingerprint == state_fingerprint(settings)
        first_actor = actor
        ids.append(submit(base, input_server.url(inputs[len(ids)])))
    wait_until(lambda: all(s in ("completed", "failed", "canceled") for s in statuses(base, ids)),
               "every task finished", timeout=120)
    assert statuses(base, ids) == ["completed"] * 5
    # Each ran once: its input was downloaded once (a second run would fetch it again).
    assert [input_server.fetches(relative) for relative in inputs] == [1] * 5
