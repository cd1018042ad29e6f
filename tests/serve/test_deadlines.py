"""Deadlines: a task not finished by its Cancel-After header or deadline_s is canceled, and says why."""

from __future__ import annotations

import pytest
import requests

from tests.helpers import png_bytes


def slow_image(service, input_server, name: str, seconds: int = 30) -> str:
    input_server.add(name, png_bytes(16, 12))
    return input_server.url(f"slow/{name}?seconds={seconds}")


def test_cancel_after_cancels_a_running_task_with_the_reason_in_error(service, input_server):
    body = {"url": slow_image(service, input_server, "deadline.png"), "type": "image", "model": "tiny-x4.pth"}
    response = requests.post(service.url("/tasks"), json=body, headers={"Cancel-After": "2s"}, timeout=30)
    task = service.wait(response.json()["task_id"], timeout=30)
    assert task["status"] == "canceled" and task["error"] == "canceled: deadline of 2 s passed"
    assert task["params"]["deadline_s"] == 2 and task["stages"][0]["status"] == "canceled"
    assert task["output"] is None


def test_the_sooner_of_deadline_s_and_cancel_after_wins(service, input_server):
    body = {"url": slow_image(service, input_server, "deadline-body.png"), "type": "image",
            "model": "tiny-x4.pth", "deadline_s": 1.5}
    response = requests.post(service.url("/tasks"), json=body, headers={"Cancel-After": "1h"}, timeout=30)
    task = service.wait(response.json()["task_id"], timeout=30)
    assert task["error"] == "canceled: deadline of 1.5 s passed" and task["params"]["deadline_s"] == 1.5


def test_a_task_done_before_its_deadline_completes(service, input_server):
    task = service.run(url=input_server.add("in-time.png", png_bytes(8, 8)), type="image", model="tiny-x4.pth",
                       deadline_s=600)
    assert task["status"] == "completed" and task["error"] is None


@pytest.mark.parametrize("headers,body,name", [
    ({"Cancel-After": "soon"}, {}, "Cancel-After"),
    ({"Cancel-After": "0s"}, {}, "Cancel-After"),
    ({}, {"deadline_s": -1}, "deadline_s"),
    ({}, {"deadline_s": 0}, "deadline_s"),
    ({}, {"deadline_s": "tomorrow"}, "deadline_s"),
    ({}, {"deadline_s": 10**9}, "deadline_s"),
])
def test_a_bad_deadline_is_a_422_naming_the_header_or_field(service, headers, body, name):
    response = requests.post(service.url("/tasks"), json={"url": "http://example.com/a.png", **body},
                             headers=headers, timeout=10)
    assert response.status_code == 422 and name in response.json()["error"]
