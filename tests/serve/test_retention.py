"""Retention through the running service: old outputs disappear, their tasks say so."""

import time

import ray
import requests

from tests.helpers import eventually, png_bytes
from tmlsr_ray.serve.state import STATE_ACTOR_NAME, STATE_NAMESPACE
from tmlsr_ray.storage.base import output_key


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


def test_an_output_stored_for_a_task_that_ended_without_it_is_removed_at_once(service):
    """A runner that died between its upload and its record left a file no record named, which
    retention never found. Here a run (played through the state actor) stores its output and
    the task is canceled before the run could record it."""
    state = ray.get_actor(STATE_ACTOR_NAME, namespace=STATE_NAMESPACE)
    ((task_id, outcome),) = ray.get(state.admit_many.remote([({"url": "http://example.com/x.png", "type": "image"},
                                                              None, None, None)]))
    attempt = ray.get(state.acquire.remote(task_id))
    key = output_key(task_id, "output.png", attempt)
    assert ray.get(state.note_output.remote(task_id, key, attempt)) is True
    stored = service.data_dir / "outputs" / key
    stored.parent.mkdir(parents=True)
    stored.write_bytes(png_bytes(4, 4))
    assert ray.get(state.cancel.remote(task_id))[0] is True
    eventually(lambda: not stored.parent.exists(), 10, "the output's folder removed")  # it goes after its file
    assert not stored.exists()
    assert ray.get(state.note_output.remote(task_id, key, attempt)) is False  # a run that lost its task stores nothing
    assert service.task(task_id)["status"] == "canceled"
