"""A stop and restart of the whole application between submission and completion loses nothing."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
import requests

from tests.helpers import (eventually, frozen, kill_state_actor, make_clip, PieceRewrites, png_bytes, read_task,
                           replica_pids, segments_done, stop_past_frozen, task_ended, video_progress, wait_for_task)


@dataclass
class SecondApp:
    """A second application on the cluster, with its own state actor and data."""
    name: str
    state_actor: str
    base: str
    data_dir: Path
    deploy: Callable[..., dict]  # deploys with changed settings; returns the application args deployed

    def stop(self) -> None:
        from ray import serve

        serve.delete(self.name)


def second_app(service, name: str, **overrides):
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
    yield SecondApp(name, state, service.url(f"/{name}"), Path(settings["data_dir"]), deploy)
    serve.delete(name)
    kill_state_actor(state, STATE_NAMESPACE)


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
    fast = input_server.add("restart.png", png_bytes(24, 16))
    # The two workers take the two slow ones, whose downloads (30 s, then at once) the stop cuts off;
    # the eight behind them wait. Each slow one fetched again after the restart shows both workers were
    # still on them at the stop, so the eight were pending: with 2 s downloads, a stop landing late on a
    # loaded machine could find all ten done and test nothing. The input server's counts of fetches
    # say so after the fact: statuses polled for both slow ones "processing" could miss that state.
    slow = "slow/restart.png?seconds=30&times=2"
    ids = [submit(stoppable.base, input_server.url(slow)) for _ in range(2)]
    ids += [submit(stoppable.base, fast) for _ in range(8)]
    eventually(lambda: input_server.fetches(slow), 60, "both slow downloads begun", until=lambda fetched: fetched == 2)

    stoppable.stop()  # running tasks are cut off; pending ones wait in the state actor
    assert input_server.fetches("restart.png") == 0, "the eight fast ones ran before the stop"
    assert requests.get(f"{stoppable.base}/health", timeout=10).status_code == 404
    stoppable.deploy()

    tasks = [wait_for_task(stoppable.base, task_id, timeout=180) for task_id in ids]
    assert [t["status"] for t in tasks] == ["completed"] * 10, [t["error"] for t in tasks]
    assert all(t["output"]["metadata"]["width"] == 96 for t in tasks)
    assert input_server.fetches(slow) == 4


def submit(base: str, url: str) -> str:
    return requests.post(f"{base}/tasks", json={"url": url, "type": "image", "model": "tiny-x4.pth"},
                         timeout=30).json()["task_id"]


def statuses(base: str, ids) -> list:
    return [read_task(base, task_id)["status"] for task_id in ids]


def test_a_video_cut_off_by_a_stop_resumes_from_its_finished_segments(stoppable, input_server, tmp_path):
    base = stoppable.base
    # Six segments of about a second; stopped once one is done, with the model's replica frozen so that
    # none finishes during the stop (its grace period and the app's deletion, 4 s here) however fast
    # the machine: unfrozen, the last ones finished during the stop on a quiet machine (reused 0).
    url = input_server.add("restart.mp4", make_clip(tmp_path / "r.mp4", frames=72, size=(160, 120)).read_bytes())
    runners, upscalers = replica_pids("TaskRunner", app=stoppable.name), replica_pids("Upscaler", app=stoppable.name)
    task_id = requests.post(f"{base}/tasks", json={"url": url, "model": "slow-x4.pth"}, timeout=30).json()["task_id"]
    wait_for_task(base, task_id, timeout=180, until=lambda t: segments_done(t) >= 1 or task_ended(t))
    with frozen(upscalers):
        task = read_task(base, task_id)
        total = video_progress(task).get("segments_total", 0)
        assert task["status"] == "processing" and 1 <= segments_done(task) < total, ("no cut part way", task)
        stop_past_frozen(stoppable.stop, runners, upscalers)
    pieces = PieceRewrites(stoppable.data_dir / "work" / task_id / "pieces")
    stoppable.deploy()
    task = wait_for_task(base, task_id, timeout=240, until=lambda t: pieces.look() or task_ended(t))
    assert task["status"] == "completed", task["error"]
    assert pieces.found and not pieces.rewritten, ("found pieces written again", sorted(pieces.rewritten))
    meta = task["output"]["metadata"]
    assert meta["frames"] == 72 and meta["segments"]["total"] == total >= 6 and meta["segments"]["rekeyed"] == 0
    assert 1 <= meta["segments"]["reused"] < total, meta["segments"]


def test_a_task_cut_off_by_a_stop_runs_again_as_soon_as_the_app_is_back(stoppable, input_server):
    input_server.add("cut.png", png_bytes(24, 16))
    # Trickled over 30 s the first time, so the stop (1 s grace) surely cuts it; served at once again.
    cut = "slow/cut.png?seconds=30&times=1"
    task_id = submit(stoppable.base, input_server.url(cut))
    # Its download begun (counted for good), not its "processing" polled: a poll can miss that state.
    eventually(lambda: input_server.fetches(cut), 60, "the task's download begun")
    stop_began = time.monotonic()  # the runner's last heartbeat is no later than this
    stoppable.stop()  # the runner replica is gone within the 1 s grace
    stoppable.deploy()
    # Run again (its download begun anew) sooner than a silent runner is noticed, 120 s from its last
    # heartbeat: its replica was seen gone. Counted from the stop, so a slow stop or deploy on a loaded
    # machine cannot let the 120 s timer pass for it.
    rerun_within = round(110 - (time.monotonic() - stop_began), 1)
    eventually(lambda: input_server.fetches(cut), rerun_within, "the task run again", until=lambda fetched: fetched == 2)
    task = wait_for_task(stoppable.base, task_id, timeout=90)
    assert task["status"] == "completed" and task["output"]["metadata"]["width"] == 96, task


def test_a_redeploy_lets_the_running_task_finish_on_the_old_replica(upgradable, input_server):
    input_server.add("drain.png", png_bytes(24, 16))
    task_id = submit(upgradable.base, input_server.url("slow/drain.png?seconds=4"))
    eventually(lambda: input_server.fetches("slow/drain.png?seconds=4"), 60, "the task's download begun")
    upgradable.deploy(recent_tasks_limit=49)  # new settings: every replica is replaced
    # Finished well before a lost runner could be noticed (120 s): the old replica drained it.
    assert wait_for_task(upgradable.base, task_id, timeout=60)["status"] == "completed"


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
    eventually(lambda: statuses(base, ids), 60, "one task processing, two pending",
               until=lambda seen: seen.count("processing") == 1)
    first_actor, _ = state_actor()
    for limit in (48, 47):  # two upgrades, each while tasks run and wait; none is the other test's 49
        settings = Settings.load(upgradable.deploy(recent_tasks_limit=limit))
        actor, fingerprint = state_actor()
        assert actor != first_actor and fingerprint == state_fingerprint(settings)
        first_actor = actor
        ids.append(submit(base, input_server.url(inputs[len(ids)])))
    assert [wait_for_task(base, task_id, timeout=120)["status"] for task_id in ids] == ["completed"] * 5
    # Each ran once: its input was downloaded once (a second run would fetch it again).
    assert [input_server.fetches(relative) for relative in inputs] == [1] * 5
