"""The ingress's request-body limits, on its ASGI app alone (no Ray): a body too large or too slow
is refused before a route runs, so it cannot hold one of the replica's requests in flight."""

import asyncio
import json
import re
import time

import pytest
from fastapi import FastAPI, Request

from tmlsr_ray.config import Settings
from tmlsr_ray.serve import ingress


@pytest.fixture
def limits(monkeypatch, tmp_path):
    settings = Settings(weights_dir=tmp_path, data_dir=tmp_path, max_request_bytes=1024, request_body_timeout_s=0.3,
                        max_arriving_bodies=2)
    on_replica(monkeypatch, settings)
    return settings


def on_replica(monkeypatch, settings: Settings) -> ingress.Slots:
    """The bare app as a replica would run it: its settings, and its slots for bodies arriving."""
    arriving = ingress.Slots(settings.max_arriving_bodies)
    monkeypatch.setattr(ingress, "_ingress_settings", lambda: settings)
    monkeypatch.setattr(ingress, "_arriving_bodies", lambda: arriving)
    return arriving


def post(chunks, pause_s: float = 0.0, ends: bool = True, headers=(), app=ingress.api):
    """POST /tasks to the bare app (or ``app``) with the body sent in ``chunks`` (chunked: no Content-Length
    unless ``headers`` add one), ``pause_s`` before each; a body that does not ``end`` says more is
    coming after its last chunk and sends nothing more. The status and JSON body answered."""
    return answer(chunks, pause_s, ends, headers, app)[:2]


def answer(chunks, pause_s: float = 0.0, ends: bool = True, headers=(), app=ingress.api):
    """``post``'s status and JSON body, and the answer's headers (lower-case names)."""
    return asyncio.run(asyncio.wait_for(exchange(chunks, pause_s, ends, headers, app), 10))


async def exchange(chunks, pause_s: float = 0.0, ends: bool = True, headers=(), app=ingress.api):
    """``answer`` in the caller's event loop, beside other requests."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": "/tasks", "raw_path": b"/tasks", "root_path": "", "query_string": b"",
             "headers": [(b"content-type", b"application/json"), *headers], "client": ("127.0.0.1", 1),
             "server": ("127.0.0.1", 80)}
    pending = list(chunks)
    sent = []

    async def receive():
        if not pending:
            await asyncio.sleep(3600)  # a client that sends nothing more
        await asyncio.sleep(pause_s[len(chunks) - len(pending)] if isinstance(pause_s, list) else pause_s)
        chunk = pending.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(pending) or not ends}

    async def send(message):
        sent.append(message)

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    answered = {name.decode().lower(): value.decode() for name, value in start["headers"]}
    return start["status"], json.loads(b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")), answered


def test_a_chunked_body_over_max_request_bytes_is_a_413_naming_the_limit(limits):
    status, body = post([b'{"url": "' + b"a" * 600, b"a" * 600 + b'"}'])
    assert status == 413 and "1,024 bytes" in body["error"], body


def test_a_body_sent_slower_than_request_body_timeout_s_is_a_408_at_its_timeout(limits):
    start = time.monotonic()
    status, body = post([b'{"url": ', b'"http://example.com/a.png"', b"}"] * 20, pause_s=0.2)
    assert status == 408 and "0.3 s" in body["error"] and "request_body_timeout_s" in body["error"], body
    assert time.monotonic() - start < 2


def test_a_body_that_stops_arriving_is_a_408_at_its_timeout(limits):
    status, body = post([b'{"url": '], ends=False)
    assert status == 408, body


@pytest.mark.parametrize("refused", [
    {"chunks": [b'{"url": '], "ends": False},  # 408: the rest of the body never comes
    {"chunks": [b"a" * 700, b"a" * 700]},  # 413, counted as it came
    {"chunks": [b"a" * 700], "headers": [(b"content-length", b"5000000")]},  # 413, as declared
])
def test_a_refused_body_closes_the_connection_it_came_on(limits, refused):
    status, _, headers = answer(**refused)
    assert status in (408, 413) and headers.get("connection") == "close", (status, headers)


@pytest.fixture
def floor(monkeypatch, tmp_path):
    """A floor of 1,000 bytes a second over windows of 0.2 s, and 0.3 s more for any body."""
    settings = Settings(weights_dir=tmp_path, data_dir=tmp_path, request_body_timeout_s=0.3,
                        request_body_min_bytes_per_s=1000, request_body_rate_window_s=0.2)
    on_replica(monkeypatch, settings)
    return settings


def body_reader() -> FastAPI:
    """An app behind the ingress's body limit whose POST /tasks reads the body whole and answers
    how many bytes came (the service's routes need a replica around them)."""
    app = FastAPI()

    @app.post("/tasks")
    async def read_whole(request: Request):
        return {"bytes": len(await request.body())}

    app.add_middleware(ingress.BodyLimit)
    return app


def in_chunks(size: int, chunk: int):
    return [b"p" * min(chunk, size - at) for at in range(0, size, chunk)]


def test_a_body_sent_faster_than_the_floor_is_taken_whole_though_it_takes_longer_than_request_body_timeout_s(floor):
    """A phone's slow uplink sending a large batch: 3,000 bytes at 2,000 a second, 1.5 s, where a
    30 s limit for any size asked 350 KB/s of a 10 MB body."""
    start = time.monotonic()
    status, body = post(in_chunks(3000, 100), pause_s=0.05, app=body_reader())
    assert status == 200 and body == {"bytes": 3000}, body
    assert time.monotonic() - start > 1.0


def test_a_body_trickling_under_the_floor_is_a_408_after_one_window_naming_the_floor(floor):
    status, body = post(in_chunks(200, 1), pause_s=0.05)
    assert status == 408 and "request_body_min_bytes_per_s" in body["error"], body
    assert re.search(r"\d+ bytes in 0\.2\d* s", body["error"]), body


def test_a_body_paused_longer_than_a_window_is_taken_whole_where_its_bytes_keep_the_floor(floor):
    """A phone changing cells mid-upload: 1,500 bytes in 0.25 s, 0.5 s of nothing, then the rest;
    judged window by window, the silent window was a 408 whatever had come before."""
    pauses = [0.05] * 5 + [0.5] + [0.05] * 4
    status, body = post(in_chunks(3000, 300), pause_s=pauses, app=body_reader())
    assert status == 200 and body == {"bytes": 3000}, body


def test_with_no_floor_any_body_must_be_whole_within_request_body_timeout_s(floor):
    floor.request_body_min_bytes_per_s = 0
    status, body = post(in_chunks(3000, 100), pause_s=0.05)
    assert status == 408 and body["error"].endswith("within 0.3 s (request_body_timeout_s)"), body


def test_a_body_may_take_request_body_timeout_s_plus_its_declared_length_at_the_floor(floor):
    """With the floor's window longer than the body's time, the whole-body limit alone decides:
    0.3 s plus 2,000 bytes at 1,000 a second."""
    floor.request_body_rate_window_s = 60
    start = time.monotonic()
    status, body = post([b'{"url": '], ends=False, headers=[(b"content-length", b"2000")])
    assert status == 408 and "within 2.3 s" in body["error"] and "its 2,000 bytes" in body["error"], body
    assert 2.2 < time.monotonic() - start < 4


def test_bodies_arriving_past_max_arriving_bodies_get_429_at_once_and_a_slot_frees_as_a_body_ends(limits):
    """Clients trickling their bodies each held one of the replica's 200 requests in flight, counted
    nowhere: with 150 event streams open and 60 such clients, /health waited 10.5 s. Two bodies
    still arriving take both slots; a third is refused before it is read, saying which setting;
    a body whole in its first part takes none; once the two are refused (408), a body may arrive."""
    app = body_reader()

    async def scenario():
        slow = [asyncio.ensure_future(exchange([b'{"url": '], ends=False, app=app)) for _ in range(2)]
        await asyncio.sleep(0.05)
        third = await exchange([b'{"url": ', b'"x"}'], app=app)
        whole = await exchange([b'{"url": 1}'], app=app)
        refused = await asyncio.gather(*slow)
        after = await exchange([b'{"url": ', b'"http://example.com/a.png"}'], app=app)
        return third, whole, refused, after

    third, whole, refused, after = asyncio.run(asyncio.wait_for(scenario(), 10))
    status, body, headers = third
    said = body["detail"]  # the bare FastAPI app's words for an HTTP error (the service's say "error")
    assert status == 429 and "max_arriving_bodies" in said and "limit 2" in said, body
    assert headers.get("retry-after") == "5" and headers.get("connection") == "close", headers
    assert whole[:2] == (200, {"bytes": 10}), whole
    assert [answer[0] for answer in refused] == [408, 408]
    assert after[:2] == (200, {"bytes": 35}), after

