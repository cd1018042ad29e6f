"""Retention through the running service: old outputs disappear, their tasks say so."""

import time

import ray
import requests

from tests.serve.test_api import png_bytes
from tmlsr_ray.serve.state import STATE_ACTOR_NAME, STATE_NAMESPACE


def test_old_outputs_expire_and_old_records_go(service, input_server):
    task = service.run(url=input_server.add("keep.png", png_bytes(8, 8)), type="image", model="tiny-x4.pth")
    file_url = task["output"]["url"]
    assert requests.get(file_url, timeout=10).status_code == 200
    state = ray.get_actor(STATE_ACTOR_NAME, namespace=STATE_NAMESPACE)

    result = ray.get(state.apply_retention.remote(now=time.time() + 8 * 86400))  # past 7 days
    assert result["outputs_expired"] >= 1
    expired = service.task(task["task_id"])
    assert expired["status"] == "completed" and expired["output"]["expired"] is True
    assert expired["output"]["url"] is None and expired["output"]["metadata"]["width"] == 32
    assert requests.get(file_url, timeout=10).status_code == 404

    ray.get(state.apply_retention.remote(now=time.time() + 31 * 86400))  # past 30 days
    assert requests.get(service.url(f"/tasks/{task['task_id']}"), timeout=10).status_code == 404


def test_work_folders_of_tasks_that_ended_without_their_runner_are_removed(service, input_server):
    state = ray.get_actor(STATE_ACTOR_NAME, namespace=STATE_NAMESPACE)
    finished = service.run(url=input_server.add("w.png", png_bytes(8, 8)), type="image", model="tiny-x4.pth")
    work = service.data_dir / "work"
    for name in (finished["task_id"], "0" * 32):  # an ended task's, and one no record knows
        (work / name / "pieces").mkdir(parents=True, exist_ok=True)
    result = ray.get(state.apply_retention.remote())
    assert result["work_removed"] >= 2
    assert not (work / finished["task_id"]).exists() and not (work / ("0" * 32)).exists()
