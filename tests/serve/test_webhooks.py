"""Webhooks through the service: signed end and progress events at a real local receiver."""

from __future__ import annotations

import json
from typing import Optional

import pytest
import requests

from tests.helpers import WEBHOOK_SECRET, WebhookReceiver, eventually, make_clip, png_bytes
from tmlsr_ray.webhooks import SIGNATURE_HEADER, signature_ok


@pytest.fixture
def receiver():
    server = WebhookReceiver()
    yield server
    server.close()


def wait_for(receiver: WebhookReceiver, event: str, timeout: float = 30) -> dict:
    """The first ``event`` webhook the receiver gets, its signature checked."""
    def delivered() -> Optional[dict]:
        for _, headers, body in list(receiver.received):
            if json.loads(body)["event"] == event:
                assert signature_ok(body, headers.get(SIGNATURE_HEADER), WEBHOOK_SECRET)
                return json.loads(body)
        return None

    return eventually(delivered, timeout, lambda: f"a {event} webhook; got {receiver.events()}")


def test_a_finished_task_posts_a_signed_copy_of_itself(service, input_server, receiver):
    url = input_server.add("hook.png", png_bytes(16, 12))
    task = service.run(url=url, type="image", model="tiny-x4.pth", callback_url=receiver.url)
    assert task["status"] == "completed", task["error"]
    body = wait_for(receiver, "task.completed")
    assert body["task_id"] == task["task_id"] and body["status"] == "completed"
    assert body["output"]["metadata"]["width"] == 64 and body["params"]["callback_url"] == receiver.url
    assert receiver.events() == ["task.completed"]  # no progress events unless asked


def test_progress_events_come_while_a_video_processes_and_the_end_comes_last(
        service, input_server, receiver, tmp_path):
    clip = input_server.add("hook.mp4", make_clip(tmp_path / "h.mp4", frames=24, size=(96, 72)).read_bytes())
    task = service.run(url=clip, model="slow-x4.pth", callback_url=receiver.url, callback_progress=True,
                       timeout=240)
    assert task["status"] == "completed", task["error"]
    wait_for(receiver, "task.completed")
    progress = wait_for(receiver, "task.progress")
    assert progress["stages"][1]["detail"]["frames_total"] == 24
    assert receiver.events()[-1] == "task.completed"


def test_a_canceled_task_posts_its_cancellation(service, input_server, receiver):
    input_server.add("hook-slow.png", png_bytes(16, 12))
    task_id = service.submit(url=input_server.url("slow/hook-slow.png?seconds=5"), type="image",
                             model="tiny-x4.pth", callback_url=receiver.url)["task_id"]
    assert requests.delete(service.url(f"/tasks/{task_id}"), timeout=10).status_code == 200
    assert wait_for(receiver, "task.canceled")["status"] == "canceled"


@pytest.mark.parametrize("callback", ["ftp://example.com/hook", "not a url", "http://"])
def test_a_callback_url_that_is_not_http_gets_422(service, callback):
    response = requests.post(service.url("/tasks"), json={"url": "http://example.com/a.png",
                                                          "callback_url": callback}, timeout=10)
    assert response.status_code == 422 and "callback_url" in response.text


def test_callback_events_choose_which_webhooks_are_sent(service, input_server, receiver):
    url = input_server.add("hook-filter.png", png_bytes(16, 12))
    done = service.run(url=url, type="image", model="tiny-x4.pth", callback_url=receiver.url,
                       callback_events=["failed"])
    failed = service.run(url=input_server.url("status/404"), type="image", model="tiny-x4.pth",
                         callback_url=receiver.url, callback_events=["failed"])
    assert (done["status"], failed["status"]) == ("completed", "failed")
    assert wait_for(receiver, "task.failed")["task_id"] == failed["task_id"]
    assert receiver.events() == ["task.failed"]  # the completed task, which ended first, sent nothing


@pytest.mark.parametrize("events", [[], ["started"], "completed", [1]])
def test_callback_events_outside_the_four_are_a_422(service, events):
    response = requests.post(service.url("/tasks"), json={"url": "http://example.com/a.png",
                                                          "callback_events": events}, timeout=10)
    assert response.status_code == 422 and "callback_events" in response.text


def test_a_delivery_owed_when_the_state_actor_is_killed_is_sent_after_its_restart(service, input_server):
    import ray

    from tmlsr_ray.serve.state import STATE_ACTOR_NAME, STATE_NAMESPACE

    receiver = WebhookReceiver(statuses=(503, 503, 503))  # down for a while: the delivery is owed
    try:
        url = input_server.add("hook-kill.png", png_bytes(16, 12))
        task = service.run(url=url, type="image", model="tiny-x4.pth", callback_url=receiver.url)
        eventually(lambda: len(receiver.received) >= 1, what="the first try")
        ray.kill(ray.get_actor(STATE_ACTOR_NAME, namespace=STATE_NAMESPACE), no_restart=False)
        eventually(lambda: len(receiver.received) >= 4, timeout=60, what="the delivery after the restart")
        body = json.loads(receiver.received[-1][2])
        assert body["event"] == "task.completed" and body["task_id"] == task["task_id"]
        # One delivery, tried again under one id, by the old actor and the new one alike.
        assert len({headers["X-TMLSR-Delivery"] for _, headers, _ in receiver.received}) == 1
        # Taken once it was acknowledged: no more tries. One still owed goes out again on the outbox's next
        # round; a later task's delivery, owed after that acknowledgement, shows a round has come since.
        later = service.run(url=input_server.url("missing.png"), type="image", model="tiny-x4.pth",
                            callback_url=receiver.url)  # failed at its download: owed at once

        def sent_for() -> list:
            return [json.loads(body)["task_id"] for _, _, body in receiver.received]

        eventually(lambda: later["task_id"] in sent_for(), what=lambda: f"the later task's delivery: {sent_for()}")
        assert sent_for().count(task["task_id"]) == 4
    finally:
        receiver.close()
