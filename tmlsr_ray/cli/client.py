"""The REST API as the CLI uses it: calls with their failures as exit codes, several tasks in one
call (``POST /tasks/batch``, else one ``POST /tasks`` each), and following a task to its end (its
event stream, else polling ``GET /tasks/{id}``)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional
from urllib.parse import quote

import requests

from tmlsr_ray.cli.events import EventStreamParser
from tmlsr_ray.protocol import TaskStatus

EXIT_OK, EXIT_TASK_FAILED, EXIT_REFUSED, EXIT_UNREACHABLE = 0, 1, 2, 3
CALL_TIMEOUT_S = 60
# The stream's heartbeats come far more often; a silence this long is a stream that broke.
STREAM_SILENCE_S = 60
# The service's defaults for one POST /tasks/batch are 100 bodies and 64 KiB: these stay within both.
BATCH_BODIES, BATCH_BYTES = 100, 48 * 1024

TaskView = Dict[str, Any]


class CliError(Exception):
    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Submission:
    """One URL's answer: its task, or why the service refused it."""

    url: str
    task_id: Optional[str] = None
    error: Optional[str] = None

    def as_json(self) -> Dict[str, Any]:
        if self.task_id is not None:
            return {"url": shown_url(self.url), "status": "ok", "task_id": self.task_id}
        return {"url": shown_url(self.url), "status": "error", "error": self.error}


def shown_url(url: str) -> str:
    """A URL as the CLI prints it: credentials hidden, as the service shows them (terminals and CI
    logs are read by others). Imported here: the urls module brings aiohttp, slow for every command."""
    from tmlsr_ray.urls import without_credentials

    return without_credentials(url)


def task_path(task_id: str, tail: str = "") -> str:
    """``/tasks/{id}``: an id as typed is one path segment, so ``ID#x``, ``ID?x`` or ``../monitor/stats``
    name no other task or route."""
    return f"/tasks/{quote(task_id, safe='')}{tail}"


def batches(bodies: List[Dict[str, Any]]) -> Iterator[List[Dict[str, Any]]]:
    """The bodies in order, in batches the service takes by default: at most ``max_batch_tasks``
    (100) bodies, and well within ``max_request_bytes`` (64 KiB: long signed URLs fill it first)."""
    batch: List[Dict[str, Any]] = []
    size = 0
    for body in bodies:
        body_bytes = len(json.dumps(body)) + 2  # and its separator
        if batch and (len(batch) == BATCH_BODIES or size + body_bytes > BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(body)
        size += body_bytes
    if batch:
        yield batch


def is_final(view: TaskView) -> bool:
    return TaskStatus(view["status"]).finished


class ApiClient:
    """Plain ``requests`` calls, no shared session: tasks are followed from several threads."""

    def __init__(self, server: str, token: Optional[str]):
        self.server = server.rstrip("/")
        self._auth = {"Authorization": f"Bearer {token}"} if token else {}

    def call(self, method: str, path: str, **kwargs) -> Dict[str, Any]:
        """The JSON answer; 4xx raises a refusal (exit 2), 5xx or no answer raises exit 3."""
        return _json_or_raise(self._send(method, path, **kwargs))

    def _send(self, method: str, path: str, headers: Optional[Dict[str, str]] = None, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", CALL_TIMEOUT_S)
        try:
            return requests.request(method, self.server + path, headers={**self._auth, **(headers or {})}, **kwargs)
        except requests.RequestException as exc:
            raise CliError(f"cannot reach {shown_url(self.server)}: {exc}", EXIT_UNREACHABLE) from exc

    # -- submitting ---------------------------------------------------------------------------

    def submit(self, bodies: List[Dict[str, Any]], idempotency_key: Optional[str] = None) -> List[Submission]:
        """One task per body, in order. One body: ``POST /tasks`` (a refusal raises). Several: the
        batch route, each body's refusal in its own answer; a service without it (404/405) gets
        one ``POST /tasks`` per body."""
        if len(bodies) == 1:
            headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
            created = self.call("POST", "/tasks", json=bodies[0], headers=headers)
            return [Submission(bodies[0]["url"], task_id=created["task_id"])]
        return [submission for batch in batches(bodies) for submission in self._submit_batch(batch)]

    def _submit_batch(self, bodies: List[Dict[str, Any]]) -> List[Submission]:
        response = self._send("POST", "/tasks/batch", json={"tasks": bodies})
        if response.status_code in (404, 405):
            return [self._submit_alone(body) for body in bodies]
        items = _json_or_raise(response)["tasks"]
        return [Submission(body["url"], task_id=item.get("task_id"), error=item.get("error"))
                for body, item in zip(bodies, items)]

    def _submit_alone(self, body: Dict[str, Any]) -> Submission:
        try:
            return Submission(body["url"], task_id=self.call("POST", "/tasks", json=body)["task_id"])
        except CliError as exc:
            if exc.code != EXIT_REFUSED:
                raise
            return Submission(body["url"], error=str(exc))

    # -- following ----------------------------------------------------------------------------

    def follow(self, task_id: str, on_view: Callable[[TaskView], None], poll_interval: float,
               stream: bool = True) -> TaskView:
        """The task's final view; ``on_view`` sees each view on the way. The event stream when
        ``stream`` and the service has it, polling when it has not or the stream breaks."""
        if stream:
            final = self._follow_stream(task_id, on_view)
            if final is not None:
                return final
        return self._poll(task_id, on_view, poll_interval)

    def _follow_stream(self, task_id: str, on_view: Callable[[TaskView], None]) -> Optional[TaskView]:
        """The final view from ``GET /tasks/{id}/events``; ``None`` when there is no such route or
        the stream ended before its final event."""
        try:
            with self._send("GET", task_path(task_id, "/events"), stream=True, headers={"Accept": "text/event-stream"},
                            timeout=(CALL_TIMEOUT_S, STREAM_SILENCE_S)) as response:
                if response.status_code != 200 or not response.headers.get("Content-Type", "").startswith(
                        "text/event-stream"):
                    return None
                return _read_to_end(response, on_view)
        except (CliError, requests.RequestException, ValueError):
            return None  # polling tells an unreachable service from a broken stream

    def _poll(self, task_id: str, on_view: Callable[[TaskView], None], interval: float) -> TaskView:
        while True:
            view = self.call("GET", task_path(task_id))
            on_view(view)
            if is_final(view):
                return view
            time.sleep(interval)


def _read_to_end(response: requests.Response, on_view: Callable[[TaskView], None]) -> Optional[TaskView]:
    parser = EventStreamParser()
    response.encoding = "utf-8"
    for chunk in response.iter_content(chunk_size=None, decode_unicode=True):
        for event in parser.feed(chunk):
            view = json.loads(event.data)
            on_view(view)
            if event.kind == "end":
                return view
    return None


def _json_or_raise(response: requests.Response) -> Dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):  # a proxy's error page, or a web server that is not the service
        if response.status_code < 400:
            raise CliError(f"{shown_url(response.url)} did not answer as the TMLSR service does "
                           f"(HTTP {response.status_code}, {response.headers.get('Content-Type') or 'no type'}, "
                           f"not a JSON object): {response.text[:200]!r}", EXIT_UNREACHABLE)
        body = {"error": response.text[:200]}
    if response.status_code >= 500:
        raise CliError(f"service error {response.status_code}: {body.get('error')}", EXIT_UNREACHABLE)
    if response.status_code >= 400:
        raise CliError(f"refused ({response.status_code}): {body.get('error') or body}", EXIT_REFUSED)
    return body
