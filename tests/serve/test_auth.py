"""The optional API token: every data route needs it when one is configured."""

import pytest
import requests

from tests.helpers import AUTH, png_bytes, wait_for_task
from tmlsr_ray.serve.ingress import bearer_token_ok


@pytest.mark.parametrize(
    "header,expected,ok",
    [(None, None, True), ("Bearer s3cret", "s3cret", True), ("bearer s3cret", "s3cret", True),
     (None, "s3cret", False), ("Bearer wrong", "s3cret", False), ("s3cret", "s3cret", False),
     ("Basic s3cret", "s3cret", False), ("Bearer ", "s3cret", False)],
)
def test_bearer_token_check(header, expected, ok):
    assert bearer_token_ok(header, expected) is ok


@pytest.mark.parametrize("method,path", [("get", "/monitor/stats"), ("get", "/tasks/" + "0" * 32),
                                         ("delete", "/tasks/" + "0" * 32), ("post", "/tasks"),
                                         ("get", "/files/x.png"), ("get", "/tasks/" + "0" * 32 + "/events")])
def test_data_routes_answer_401_without_the_right_token(secured, method, path):
    for headers in ({}, {"Authorization": "Bearer nope"}):
        response = requests.request(method, secured + path, json={"url": "http://h/a.png"}, headers=headers, timeout=10)
        assert response.status_code == 401, response.text
        assert response.headers["WWW-Authenticate"] == "Bearer"


def test_health_is_open_and_the_token_admits(secured):
    assert requests.get(secured + "/health", timeout=10).status_code == 200
    response = requests.get(secured + "/monitor/stats", headers=AUTH, timeout=10)
    assert response.status_code == 200 and "system" in response.json()


def test_an_output_over_the_byte_limit_fails_before_upload(secured, input_server):
    url = input_server.add("noisy.png", png_bytes(40, 40, seed=5))
    task_id = requests.post(secured + "/tasks", json={"url": url, "type": "image", "model": "tiny-x4.pth"},
                            headers=AUTH, timeout=30).json()["task_id"]
    task = wait_for_task(secured, task_id, AUTH)
    assert task["status"] == "failed" and "over the limit of 1,000" in task["error"]
    assert task["stages"][2]["status"] == "skipped"


def test_a_full_queue_answers_429_with_retry_after(secured, input_server):
    input_server.add("wait.png", png_bytes(8, 8))
    body = {"url": input_server.url("slow/wait.png?seconds=30"), "type": "image", "model": "tiny-x4.pth"}
    running = requests.post(secured + "/tasks", json=body, headers=AUTH, timeout=10).json()["task_id"]
    wait_for_task(secured, running, AUTH, until=lambda t: t["status"] == "processing")
    queued = requests.post(secured + "/tasks", json=body, headers=AUTH, timeout=10).json()["task_id"]
    refused = requests.post(secured + "/tasks", json=body, headers=AUTH, timeout=10)
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "5"
    assert "too many pending tasks" in refused.json()["error"]
    for task_id in (queued, running):
        assert requests.delete(f"{secured}/tasks/{task_id}", headers=AUTH, timeout=10).status_code == 200
    assert requests.post(secured + "/tasks", json=body, headers=AUTH, timeout=10).status_code == 200
