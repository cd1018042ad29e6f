"""Prefer: wait=N on POST /tasks: the answer is the task's view once it ends within N s (200),
else its view then (202 and Location); without the header the answer is as before."""

from __future__ import annotations

import json
import sqlite3

import pytest
import requests

from tests.helpers import make_clip, png_bytes


def post(service, body: dict, **headers) -> requests.Response:
    return requests.post(service.url("/tasks"), json=body, headers=headers, timeout=90)


def test_a_task_that_ends_within_the_wait_answers_200_with_its_view(service, input_server):
    url = input_server.add("wait.png", png_bytes(16, 12))
    response = post(service, {"url": url, "type": "image", "model": "tiny-x4.pth"}, Prefer="wait=50")
    assert response.status_code == 200, response.text
    view = response.json()
    assert view["status"] == "completed" and view == service.task(view["task_id"])
    assert view["output"]["url"].startswith(service.base + "/files/")


def test_a_task_still_running_after_the_wait_answers_202_with_its_view_and_location(service, input_server):
    input_server.add("wait-slow.png", png_bytes(16, 12))
    body = {"url": input_server.url("slow/wait-slow.png?seconds=20"), "type": "image", "model": "tiny-x4.pth"}
    response = post(service, body, Prefer="respond-async, wait=1")
    assert response.status_code == 202, response.text
    view = response.json()
    assert view["status"] in ("pending", "processing") and view["stages"]
    assert response.headers["location"] == service.url(f"/tasks/{view['task_id']}")
    assert requests.get(response.headers["location"], timeout=10).json()["task_id"] == view["task_id"]
    requests.delete(response.headers["location"], timeout=10)


def test_without_prefer_the_answer_is_the_task_id_as_before(service, input_server):
    url = input_server.add("no-wait.png", png_bytes(8, 8))
    response = post(service, {"url": url, "type": "image", "model": "tiny-x4.pth"}, Prefer="return=minimal")
    assert response.status_code == 200 and set(response.json()) == {"status", "task_id"}


def test_a_wait_that_is_not_whole_seconds_is_a_422_naming_the_header(service):
    before = sum(service.stats()["stats"].values())
    response = post(service, {"url": "http://example.com/a.png", "type": "image"}, Prefer="wait=soon")
    assert response.status_code == 422 and response.json()["error"].startswith("Prefer: ")
    assert sum(service.stats()["stats"].values()) == before  # refused before any task was made


def test_a_client_that_hangs_up_while_waiting_leaves_its_task_running_on_its_first_run(service, input_server,
                                                                                        tmp_path):
    """Serve cancels what a request started when its client goes: the run stopped, and the task was
    re-queued only after the heartbeat timeout, on a second attempt."""
    url = input_server.add("wait-drop.mp4", make_clip(tmp_path / "drop.mp4", frames=48, size=(96, 72)).read_bytes())
    body, key = {"url": url, "model": "tiny-x4.pth"}, {"Idempotency-Key": "wait-then-hang-up"}
    for patience in (0.3, 0.6, 1.2, 2.4):  # long enough for the task to be admitted before the hang-up
        before = sum(service.stats()["stats"].values())
        with pytest.raises(requests.exceptions.ReadTimeout):
            requests.post(service.url("/tasks"), json=body, headers={"Prefer": "wait=30", **key}, timeout=patience)
        if sum(service.stats()["stats"].values()) > before:
            break
    task_id = post(service, body, **key).json()["task_id"]  # the same task, by its key
    assert service.wait(task_id, timeout=90)["status"] == "completed"
    with sqlite3.connect(f"file:{service.data_dir / 'tasks.sqlite3'}?mode=ro", uri=True) as db:
        (record,) = db.execute("select record from tasks where task_id = ?", (task_id,)).fetchone()
    assert json.loads(record)["attempts"] == 1
