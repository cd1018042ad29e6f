"""POST /tasks/batch: many task bodies in one call, one answer per body, admitted all or none."""

from __future__ import annotations

import requests
from ray import serve

from tests.helpers import AUTH, png_bytes
from tmlsr_ray.errors import QueueFull


def batch(base: str, bodies: list, **headers) -> requests.Response:
    return requests.post(f"{base}/tasks/batch", json={"tasks": bodies}, headers=headers, timeout=60)


def test_each_body_gets_its_answer_in_order_and_the_valid_ones_run(service, input_server):
    url = input_server.add("batch.png", png_bytes(12, 10))
    image = {"url": url, "type": "image", "model": "tiny-x4.pth"}
    response = batch(service.base, [image, {**image, "outscale": -1}, {**image, "model": "nope.pth"}, "not a body",
                                    {**image, "outscale": 2}])
    assert response.status_code == 200, response.text
    items = response.json()["tasks"]
    assert [item["status"] for item in items] == ["ok", "error", "error", "error", "ok"]
    assert items[1]["error"].startswith("outscale") and items[1]["detail"][0]["loc"] == ["outscale"]
    assert "nope.pth" in items[2]["error"] and "dictionary" in items[3]["error"]
    first, last = (service.wait(items[i]["task_id"]) for i in (0, 4))
    assert first["status"] == last["status"] == "completed"
    assert (first["output"]["metadata"]["width"], last["output"]["metadata"]["width"]) == (48, 24)


def test_a_batch_retried_with_its_idempotency_key_returns_the_same_tasks(service, input_server):
    body = {"url": input_server.add("batch-key.png", png_bytes(8, 8)), "type": "image", "model": "tiny-x4.pth"}
    first = batch(service.base, [body, body], **{"Idempotency-Key": "batch-17"}).json()["tasks"]
    again = batch(service.base, [body, body], **{"Idempotency-Key": "batch-17"}).json()["tasks"]
    assert first == again and first[0]["task_id"] != first[1]["task_id"]


def test_more_bodies_than_max_batch_tasks_is_a_422(service):
    response = batch(service.base, [{"url": "http://example.com/a.png"}] * 101)
    assert response.status_code == 422 and "max_batch_tasks" in response.json()["error"]


def test_an_empty_batch_or_one_without_tasks_is_a_422(service):
    for body in ({"tasks": []}, {}, {"tasks": "x"}):
        response = requests.post(service.url("/tasks/batch"), json=body, timeout=10)
        assert response.status_code == 422 and response.json()["error"].startswith("tasks")


def test_a_batch_the_queue_cannot_take_whole_is_a_429_and_nothing_is_accepted(secured):
    before = requests.get(f"{secured}/monitor/stats", headers=AUTH, timeout=10).json()["stats"]
    response = batch(secured, [{"url": "http://example.com/a.png"}] * 2, **AUTH)  # its queue holds one
    assert response.status_code == 429 and response.headers["retry-after"] == "5"
    assert response.json()["status"] == "error"
    assert requests.get(f"{secured}/monitor/stats", headers=AUTH, timeout=10).json()["stats"] == before


def test_a_batch_without_the_token_is_a_401(secured):
    assert batch(secured, [{"url": "http://example.com/a.png"}]).status_code == 401


def test_python_callers_submit_a_batch_through_the_handle(service, input_server, secured):
    url = input_server.add("batch-handle.png", png_bytes(8, 8))
    answer = serve.get_app_handle("tmlsr").submit_batch.remote(
        [{"url": url, "type": "image", "model": "tiny-x4.pth"}, {"url": url, "outscale": 0}]).result()
    assert [item.status for item in answer.tasks] == ["ok", "error"]
    assert service.wait(answer.tasks[0].task_id)["status"] == "completed"
    try:
        serve.get_app_handle("secured").submit_batch.remote([{"url": url}] * 2).result()
    except QueueFull as exc:
        assert exc.retry_after_s == 5
    else:
        raise AssertionError("a batch over the queue limit was accepted")
