"""The ingress's request-body limits, on its ASGI app alone (no Ray): a body too large or too slow
is refused before a route runs, so it cannot hold one of the replica's requests in flight."""

import asyncio
import json
import time

import pytest

from tmlsr_ray.config import Settings
from tmlsr_ray.serve import ingress


@pytest.fixture
def limits(monkeypatch, tmp_path):
    settings = Settings(weights_dir=tmp_path, data_dir=tmp_path, max_request_bytes=1024, request_body_timeout_s=0.3)
    monkeypatch.setattr(ingress, "_ingress_settings", lambda: settings)
    return settings


def post(chunks, pause_s: float = 0.0, ends: bool = True, headers=()):
    """POST /tasks to the bare app with the body sent in ``chunks`` (chunked: no Content-Length
    unless ``headers`` add one), ``pause_s`` before each; a body that does not ``end`` says more is
    coming after its last chunk and sends nothing more. The status and JSON body answered."""
    return answer(chunks, pause_s, ends, headers)[:2]


def answer(chunks, pause_s: float = 0.0, ends: bool = True, headers=()):
    """``post``'s status and JSON body, and the answer's headers (lower-case names)."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": "/tasks", "raw_path": b"/tasks", "root_path": "", "query_string": b"",
             "headers": [(b"content-type", b"application/json"), *headers], "client": ("127.0.0.1", 1),
             "server": ("127.0.0.1", 80)}
    pending = list(chunks)
    sent = []

    async def receive():
        if not pending:
            await asyncio.sleep(3600)  # a client that sends nothing more
        await asyncio.sleep(pause_s)
        chunk = pending.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(pending) or not ends}

    async def send(message):
        sent.append(message)

    asyncio.run(asyncio.wait_for(ingress.api(scope, receive, send), 10))
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
