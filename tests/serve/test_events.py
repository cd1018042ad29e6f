"""GET /tasks/{id}/events: a task's changes as server-sent events, read by a real HTTP client
through the Serve proxy while the task runs."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import ray
import requests
from ray.exceptions import TaskCancelledError
from ray.serve.exceptions import RequestCancelledError

from tests.helpers import eventually, kill_state_actor, make_clip, png_bytes, replica_pids, server_sent_events
from tmlsr_ray.protocol import Stage, StageName, StageStatus, TaskEventKind, TaskOutput, TaskStatus, TaskView
from tmlsr_ray.serve.events import change_kind
from tmlsr_ray.serve.ingress import ClientGone


def stream(service, task_id: str, **headers) -> requests.Response:
    response = requests.get(service.url(f"/tasks/{task_id}/events"), headers=headers, stream=True, timeout=60)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    return response


def events_to_end(response: requests.Response, events=None) -> list:
    """The events of ``response`` to its end; ``events``: its server_sent_events, where some were read already
    (a second reader of one response would lose what the first had buffered)."""
    with response:
        heard = []
        for event in events or server_sent_events(response):
            heard.append(event)
            if event.get("event") == "end":
                return heard
    raise AssertionError(f"the stream closed before its end event: {heard}")


def test_a_video_streams_its_stages_progress_and_output_then_ends(service, input_server, tmp_path):
    url = input_server.add("events.mp4", make_clip(tmp_path / "e.mp4", frames=24, size=(96, 72)).read_bytes())
    task_id = service.submit(url=url, model="slow-x4.pth")["task_id"]
    events, status_at_first_progress = [], None
    with stream(service, task_id) as response:
        for event in server_sent_events(response):
            if event.get("event") == "progress" and status_at_first_progress is None:
                status_at_first_progress = service.task(task_id)["status"]
            events.append(event)
            if event.get("event") == "end":
                break
    assert status_at_first_progress == "processing"  # events come as things happen, not all at the end
    events = [e for e in events if "comment" not in e]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "status" and kinds[-2:] == ["output", "end"]
    assert {"stage", "progress"} <= set(kinds)
    ids = [e["id"] for e in events]
    assert ids[:-1] == sorted(set(ids[:-1])) and ids[-1] == ids[-2]  # rising; the end repeats the last
    progress = next(e["data"] for e in events if e["event"] == "progress")
    assert progress["stages"][1]["detail"]["frames_total"] == 24
    final = events[-1]["data"]
    assert final == service.task(task_id) and final["status"] == "completed"
    assert final["output"]["url"].startswith(service.base + "/files/")  # absolute, as GET /tasks/{id} says


def test_a_reconnect_with_last_event_id_resumes_where_it_stopped(service, input_server, tmp_path):
    input_server.add("resume.png", png_bytes(16, 12))
    task_id = service.submit(url=input_server.url("slow/resume.png?seconds=3"), type="image",
                             model="tiny-x4.pth")["task_id"]
    with stream(service, task_id) as first:
        seen = next(e for e in server_sent_events(first) if "id" in e)
    resumed = [e for e in events_to_end(stream(service, task_id, **{"Last-Event-ID": str(seen["id"])}))
               if "id" in e]
    assert resumed[0]["id"] > seen["id"]  # nothing seen is sent again
    assert resumed[-1]["event"] == "end" and resumed[-1]["data"]["status"] == "completed"
    again = events_to_end(stream(service, task_id, **{"Last-Event-ID": str(resumed[-1]["id"])}))
    assert [e["event"] for e in again] == ["end"]  # a finished stream, resumed at its end, just ends


def test_a_quiet_stream_sends_heartbeats(service, input_server):
    input_server.add("quiet.png", png_bytes(16, 12))
    task_id = service.submit(url=input_server.url("slow/quiet.png?seconds=4"), type="image",
                             model="tiny-x4.pth")["task_id"]
    events = events_to_end(stream(service, task_id))  # the download trickles for 4 s, silently
    assert {"comment": "keep-alive"} in events and events[-1]["data"]["status"] == "completed"


def test_events_of_an_unknown_task_are_a_404_in_the_error_schema(service):
    response = requests.get(service.url("/tasks/0123456789abcdef0123456789abcdef/events"), timeout=10)
    assert response.status_code == 404
    assert response.json()["status"] == "error" and "not found" in response.json()["error"]


def test_a_last_event_id_the_stream_never_sent_is_a_422(service, input_server):
    task_id = service.submit(url=input_server.add("bad-id.png", png_bytes(8, 8)), type="image",
                             model="tiny-x4.pth")["task_id"]
    response = requests.get(service.url(f"/tasks/{task_id}/events"), headers={"Last-Event-ID": "x"}, timeout=10)
    assert response.status_code == 422 and "Last-Event-ID" in response.json()["error"]


# -- what an event's kind says ---------------------------------------------------------------


def view(status=TaskStatus.processing, stages=None, output=None, error=None, params=None) -> TaskView:
    stages = stages or [Stage(name=name) for name in StageName]
    return TaskView(task_id="t", status=status, created_at="c", updated_at="u", params=params or {}, stages=stages,
                    output=output, error=error)


def stages(download=StageStatus.pending, detail=None):
    return [Stage(name=StageName.download, status=download, detail=detail), Stage(name=StageName.process),
            Stage(name=StageName.upload)]


@pytest.mark.parametrize("after,kind", [
    (view(TaskStatus.completed, output=TaskOutput(url="/o")), TaskEventKind.output),
    (view(TaskStatus.failed, error="boom"), TaskEventKind.error),
    (view(TaskStatus.canceled, error="canceled: deadline of 3 s passed"), TaskEventKind.error),
    (view(TaskStatus.canceled), TaskEventKind.status),
    (view(stages=stages(StageStatus.running)), TaskEventKind.stage),
    (view(stages=stages(detail={"frames_done": 3})), TaskEventKind.progress),
    (view(params={"outscale": 4.0}), TaskEventKind.status),
])
def test_the_kind_of_an_event_names_the_most_telling_change(after, kind):
    assert change_kind(view(), after) == kind


def test_a_client_that_closes_its_stream_early_is_no_internal_error_in_the_log(service, input_server, tmp_path):
    """Serve cancels the request of a client that hung up; what the stream was waiting on raised,
    and it was logged as an internal error with a traceback about one time in three (a long-running
    service's log filled with them). Each try: a short video, its stream closed after one event."""
    url = input_server.add("gone.mp4", make_clip(tmp_path / "gone.mp4", frames=12, size=(48, 32)).read_bytes())
    task_ids = []
    for _ in range(12):
        task_ids.append(service.submit(url=url, model="tiny-x4.pth")["task_id"])
        with stream(service, task_ids[-1]) as response:
            next(server_sent_events(response))  # the first event, then hang up
        service.wait(task_ids[-1])
    time.sleep(2)  # the ingress's log reaches its file
    logs = Path(ray._private.worker._global_node.get_logs_dir_path())
    ingress = tuple(f"-{pid}.err" for pid in replica_pids("Ingress"))
    logged = "".join(path.read_text(errors="replace") for path in logs.glob("worker-*.err")
                     if path.name.endswith(ingress))
    assert not [task_id for task_id in task_ids if f"/tasks/{task_id}/events failed" in logged]


def test_a_request_cancelled_because_its_client_went_away_ends_quietly():
    """What Serve raises in a request whose client hung up (``RequestCancelledError`` is one
    kind) ends the request there; other errors still reach the internal-error handler."""
    async def app(scope, receive, send):
        raise scope["raises"]

    async def call(raises):
        await ClientGone(app)({"type": "http", "method": "GET", "path": "/tasks/x/events", "raises": raises},
                              None, None)

    both_halves_of_a_stream = ExceptionGroup("stream", [TaskCancelledError(), RequestCancelledError("r-2")])
    for gone in (TaskCancelledError(), RequestCancelledError("r-1"), both_halves_of_a_stream):
        asyncio.run(call(gone))
    with pytest.raises(ValueError):
        asyncio.run(call(ValueError("a bug")))
    with pytest.raises(ExceptionGroup) as caught:
        asyncio.run(call(ExceptionGroup("stream", [TaskCancelledError(), ValueError("a bug")])))
    assert [type(error) for error in caught.value.exceptions] == [ValueError]


def test_streams_of_a_task_canceled_meanwhile_all_end_with_its_final_view_and_close(service, input_server):
    """Twelve listeners on one task, DELETE while they listen; one more connects after the end."""
    from concurrent.futures import ThreadPoolExecutor

    input_server.add("listeners.png", png_bytes(8, 8, seed=5))
    task_id = service.submit(url=input_server.url("slow/listeners.png?seconds=30"), type="image",
                             model="tiny-x4.pth")["task_id"]
    responses = [stream(service, task_id) for _ in range(12)]
    # Each stream's first event (its snapshot) heard: all twelve are listening when the DELETE lands.
    listeners = [server_sent_events(response) for response in responses]
    firsts = [next(events) for events in listeners]
    with ThreadPoolExecutor(len(responses)) as pool:
        listening = [pool.submit(events_to_end, response, events) for response, events in zip(responses, listeners)]
        assert requests.delete(service.url(f"/tasks/{task_id}"), timeout=30).json() == {"status": "canceled"}
        heard = [[first] + future.result(timeout=60) for first, future in zip(firsts, listening)]
    with stream(service, task_id) as late:
        heard.append(list(server_sent_events(late)))  # to the stream's close, which follows its end
    for events in heard:
        events = [e for e in events if "comment" not in e]
        assert events[0]["event"] == "status" and events[-1]["event"] == "end"
        assert events[-1]["data"] == service.task(task_id) and events[-1]["data"]["status"] == "canceled"


@pytest.fixture(scope="module")
def two_streams(service):
    """A second app on the service's cluster (its own state actor and data) whose ingress holds two
    requests open at most (event streams, Prefer: wait)."""
    from ray import serve

    from tmlsr_ray.app import build_app
    from tmlsr_ray.serve.state import STATE_NAMESPACE

    settings = {"weights_dir": str(service.weights_dir), "data_dir": str(service.data_dir / "two-streams"),
                "allow_private_urls": True, "upscaler_num_cpus": 0, "seedvr2_replicas": 0, "max_held_requests": 2,
                "state_actor_name": "tmlsr_state_two_streams"}
    serve.run(build_app(settings), name="two-streams", route_prefix="/two-streams")
    yield service.url("/two-streams")
    serve.delete("two-streams")
    kill_state_actor("tmlsr_state_two_streams", STATE_NAMESPACE)


def test_event_streams_beyond_max_held_requests_are_a_429_and_leave_the_api_room(two_streams, input_server):
    input_server.add("watched.png", png_bytes(32, 24))
    task_id = requests.post(f"{two_streams}/tasks", timeout=30, json={
        "url": input_server.url("slow/watched.png?seconds=30"), "type": "image"}).json()["task_id"]
    events_url = f"{two_streams}/tasks/{task_id}/events"
    held = [requests.get(events_url, stream=True, timeout=60) for _ in range(2)]
    readers = [server_sent_events(response) for response in held]  # a reader dropped closes its stream
    try:
        for response, reader in zip(held, readers):
            assert response.status_code == 200 and next(reader)["event"] == "status"
        refused = requests.get(events_url, timeout=30)
        assert refused.status_code == 429 and "max_held_requests" in refused.json()["error"], refused.text
        assert int(refused.headers["Retry-After"]) > 0
        assert requests.get(f"{two_streams}/health", timeout=10).status_code == 200
        readers.pop().close()  # a client hanging up gives its room back
        held.pop().close()

        def opens() -> bool:
            with requests.get(events_url, stream=True, timeout=30) as again:
                return again.status_code == 200
        eventually(opens, what="a stream to open once another closed")
    finally:
        for response in held:
            response.close()
        requests.delete(f"{two_streams}/tasks/{task_id}", timeout=30)


def test_a_prefer_wait_beyond_max_held_requests_is_answered_at_once(two_streams, input_server):
    input_server.add("awaited.png", png_bytes(32, 24))
    body = {"url": input_server.url("slow/awaited.png?seconds=30"), "type": "image"}
    task_id = requests.post(f"{two_streams}/tasks", json=body, timeout=30).json()["task_id"]
    held = [requests.get(f"{two_streams}/tasks/{task_id}/events", stream=True, timeout=60) for _ in range(2)]
    readers = [server_sent_events(response) for response in held]
    try:
        for reader in readers:
            next(reader)
        start = time.monotonic()
        answer = requests.post(f"{two_streams}/tasks", json=body, headers={"Prefer": "wait=20"}, timeout=30)
        assert answer.status_code == 202 and answer.json()["status"] in ("pending", "processing"), answer.text
        assert time.monotonic() - start < 5
        requests.delete(f"{two_streams}/tasks/{answer.json()['task_id']}", timeout=30)
    finally:
        for reader, response in zip(readers, held):
            reader.close()
            response.close()
        requests.delete(f"{two_streams}/tasks/{task_id}", timeout=30)
