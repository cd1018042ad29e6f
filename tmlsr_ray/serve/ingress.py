"""``Ingress``: the REST routes (stateless; any number of replicas)."""


import asyncio
import contextvars
import hmac
import logging
import sqlite3
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from fastapi import FastAPI, Header, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import (FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response,
                               StreamingResponse)
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from ray import serve
from ray.exceptions import TaskCancelledError
from ray.serve.handle import DeploymentHandle

from tmlsr_ray.config import INGRESS_MAX_ONGOING_REQUESTS, Settings
from tmlsr_ray.errors import (CallbackRefused, FetchError, FileNotFound, InvalidRequest, KeyConflict, ModelRefused,
                              QueueFull, RequestRefused, StreamsFull, TaskFinished, TaskNotFound, Unauthorized)
from tmlsr_ray.models.base import ModelError, ModelInfo
from tmlsr_ray.models.registry import CatalogEntry, ModelCatalog, ModelNameError
from tmlsr_ray.pipeline.output_formats import CONTAINER_FORMATS, container_refusal, task_codecs_available
from tmlsr_ray.protocol import (
    MAX_PREFER_WAIT_S,
    BatchItemError,
    CancelResult,
    ErrorBody,
    Health,
    ModelEntry,
    ModelList,
    MonitorStats,
    TaskBatch,
    TaskBatchCreated,
    TaskCreated,
    TaskRequest,
    TaskView,
    model_defaults,
)
from tmlsr_ray.serve.dashboard import PAGE, dashboard_response
from tmlsr_ray.serve.direct_reads import DirectReads
from tmlsr_ray.serve.events import Change, event_stream
from tmlsr_ray.serve.headers import cancel_after_s, last_event_id, prefer_wait_s
from tmlsr_ray.serve.replicas import KIND_BY_NAME
from tmlsr_ray.serve.state import get_state_actor
from tmlsr_ray.state.records import new_task_id, request_fingerprint
from tmlsr_ray.state.store import TaskReader, monitor_stats
from tmlsr_ray.storage.local import FILES_ROUTE, LocalStorage, media_type
from tmlsr_ray.urls import RateFloor, check_url

logger = logging.getLogger("ray.serve")

api = FastAPI(
    title="TMLSR-Ray",
    description="Super-resolution of images and videos (Real-ESRGAN, SeedVR2) on Ray Serve.",
    version="0.1.0",
)


def bearer_token_ok(authorization: str | None, expected: str | None) -> bool:
    """No token configured admits everyone; otherwise the header must carry it (constant time)."""
    if not expected:
        return True
    scheme, _, given = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected.encode())


def _error(description: str) -> dict:
    return {"model": ErrorBody, "description": description}


AUTH_RESPONSES = {401: _error("API token missing or wrong (when one is configured)")}
NOT_FOUND = {404: _error("Unknown task")}
QUEUE_FULL = {429: _error("Too many pending tasks; retry after the Retry-After header's seconds")}
IDEMPOTENCY_KEY = Header(None, alias="Idempotency-Key", description="Retrying with the same key returns the same task.")


# The one place where the service's refusals become HTTP statuses.
REFUSAL_STATUS = {InvalidRequest: 422, ModelRefused: 400, CallbackRefused: 400, QueueFull: 429, StreamsFull: 429,
                  KeyConflict: 409, TaskNotFound: 404, TaskFinished: 409, Unauthorized: 401, FileNotFound: 404}


@api.exception_handler(RequestRefused)
async def _refused(_: Request, exc: RequestRefused) -> JSONResponse:
    extra, headers = {}, {}
    if isinstance(exc, KeyConflict):
        extra["task_id"] = exc.task_id
    elif isinstance(exc, TaskFinished):
        extra["task_status"] = exc.status
    elif isinstance(exc, QueueFull):
        headers["Retry-After"] = str(exc.retry_after_s)
    elif isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = "Bearer"
    return _error_response(REFUSAL_STATUS[type(exc)], str(exc), headers=headers, **extra)


@api.exception_handler(RequestValidationError)
async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    message, errors = validation_summary(exc.errors())
    content_type = request.headers.get("content-type")
    if [err["loc"] for err in errors] == [["body"]] and not _sent_as_json(content_type):
        # FastAPI read the body as bytes, and pydantic says "Input should be a valid dictionary"
        message = f"body: send it as JSON, with Content-Type: application/json (not {content_type or 'none'})"
    return _error_response(422, message, errors)


def _sent_as_json(content_type: str | None) -> bool:
    """The types FastAPI parses as JSON: application/json and application/*+json."""
    kind = (content_type or "").split(";")[0].strip().lower()
    return kind == "application/json" or (kind.startswith("application/") and kind.endswith("+json"))


def validation_summary(raw_errors) -> Tuple[str, List[Dict[str, Any]]]:
    """A message naming each offending field, and the errors without their inputs: an input may
    be a megabyte of text, or NaN, which JSON cannot carry in an answer."""
    errors = [_readable(err) for err in raw_errors]
    message = "; ".join(
        f"{'.'.join(str(p) for p in err['loc'] if p != 'body') or 'body'}: {err['msg']}" for err in errors
    )
    return message, errors


def _shown(value: Any) -> str:
    return "an empty list" if value in ([], ()) else f"a {type(value).__name__}"


def _readable(err: Dict[str, Any]) -> Dict[str, Any]:
    if err["type"] == "json_invalid":  # FastAPI places it at the character, ("body", 5): the body is what is wrong
        where = err["loc"][-1] if len(err["loc"]) > 1 else "?"
        reason = (err.get("ctx") or {}).get("error", "")
        return {"loc": ["body"], "msg": f"not JSON ({reason} at character {where})"[:300], "type": err["type"]}
    return {"loc": list(err["loc"]), "msg": err["msg"][:300], "type": err["type"]}


def _batch_error(exc: ValidationError | RequestRefused) -> BatchItemError:
    """The error item of a batch body: what POST /tasks would have said of it alone."""
    if isinstance(exc, ValidationError):
        message, errors = validation_summary(exc.errors())
        return BatchItemError(error=message, detail=errors)
    return BatchItemError(error=str(exc), detail=str(exc))


@api.exception_handler(StarletteHTTPException)
async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    """FastAPI's and Starlette's own refusals (unparsable body, unknown route, wrong method) in the
    service's error schema too."""
    if isinstance(exc.__cause__, RecursionError):  # FastAPI's parser calls any failure a 400
        return await _too_deep(_, exc.__cause__)
    if isinstance(exc.__cause__, UnicodeDecodeError):  # not UTF-8, so not JSON either
        return _error_response(422, f"body: not JSON (not UTF-8 text: {exc.__cause__.reason} at byte "
                                    f"{exc.__cause__.start})")
    if isinstance(exc.__cause__, ValueError):  # JSON Python's reader refuses: an integer over 4300 digits
        return _error_response(422, f"body: not JSON this service reads ({str(exc.__cause__).split(';')[0]})")
    response = _error_response(exc.status_code, str(exc.detail))
    response.headers.update(exc.headers or {})
    return response


@api.exception_handler(RecursionError)
async def _too_deep(_: Request, exc: RecursionError) -> JSONResponse:
    return _error_response(422, "body: JSON nested too deeply")


@api.exception_handler(Exception)
async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    """A true bug: logged with its traceback; the client gets the error schema and a short reason."""
    logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return _error_response(500, f"internal error ({type(exc).__name__}); the service logged the details")


def _unchanged_for(http: Request, etag: str) -> bool:
    """The client's copy is this file (If-None-Match, weak or strong, as RFC 9110 compares it)."""
    tags = [tag.strip().removeprefix("W/") for tag in http.headers.get("if-none-match", "").split(",")]
    return "*" in tags or etag.removeprefix("W/") in tags


def _error_response(status_code: int, message: str, detail=None, headers: dict | None = None,
                    **extra) -> JSONResponse:
    body = ErrorBody(error=message, detail=jsonable_encoder(detail or message), **extra)
    return JSONResponse(body.model_dump(mode="json", exclude_none=True), status_code=status_code, headers=headers)


CLOSE_CONNECTION = {"Connection": "close"}


class BodyLimit:
    """413 for a request body over ``max_request_bytes``, counted as it arrives (a Content-Length
    that says so is refused before any byte is read), and 408 for one arriving too slowly (see
    ``_BodyArrival``): while its body arrives a request holds one of the replica's
    ``max_ongoing_requests``, and enough clients trickling theirs would leave none, not even for
    /health. Plain ASGI: FastAPI parses the body before a route could look at it. The refusals
    are raised as HTTP errors because FastAPI turns any other exception from its read of the body
    into a 400 that says nothing of the limit. Each closes the connection (RFC 9110, 408 and 413):
    the rest of a refused body would otherwise still be awaited on it, so a client trickling a
    chunked body kept its connection to the proxy, and a kept-alive client's next request waited
    behind a body nobody reads."""

    def __init__(self, app):
        self._app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self._app(scope, receive, send)
        settings = _ingress_settings()
        declared = dict(scope.get("headers") or []).get(b"content-length")
        declared = int(declared) if declared and declared.isdigit() else None
        if declared is not None and declared > settings.max_request_bytes:
            return await _too_large(settings.max_request_bytes)(scope, receive, send)
        arrival = _BodyArrival(settings, declared)
        arriving = _arriving_bodies()
        whole = held = False

        async def counted():
            nonlocal whole, held
            if whole:  # later reads wait for the client to hang up, for as long as the answer takes
                return await receive()
            message = await arrival.next(receive)
            whole = not message.get("more_body", False)
            if not whole and not held:
                _take_arriving_slot(arriving, settings)
                held = True
            arrival.count(len(message.get("body", b"")), whole)
            if whole and held:
                arriving.release()
                held = False
            return message

        try:
            await self._app(scope, counted, send)
        finally:
            if held:  # refused, or the client hung up, before the body was whole
                arriving.release()


class Slots:
    """Requests of one kind a replica holds, against a limit; taken and checked with no await
    between, so requests arriving at the same instant cannot all pass."""

    def __init__(self, limit: int):
        self.limit = limit
        self.taken = 0

    def take(self) -> bool:
        if self.taken >= self.limit:
            return False
        self.taken += 1
        return True

    def release(self) -> None:
        self.taken -= 1


def _take_arriving_slot(arriving: Slots, settings: Settings) -> None:
    """A slot for a body still arriving after its first part, or a 429 where all are taken: such
    bodies are the ones a slow or trickling client holds a request in flight with."""
    if not arriving.take():
        raise StarletteHTTPException(
            429, f"too many request bodies arriving at once on this replica (limit {arriving.limit}, "
                 f"max_arriving_bodies); retry after {settings.retry_after_s} s",
            {**CLOSE_CONNECTION, "Retry-After": str(settings.retry_after_s)})


class _BodyArrival:
    """The pace a request body must keep: at least ``request_body_min_bytes_per_s`` on average
    since the request's start, ``request_body_rate_window_s`` of it allowed behind (a ``RateFloor``),
    so a trickle is cut after one window while a large body on a slow uplink, or one paused a while,
    arrives whole; and whole within
    ``request_body_timeout_s`` plus the time its length (its Content-Length, or the bytes come so
    far) takes at that rate, which alone bounds it when the floor is 0. A 30 s limit for any size
    asked a client 350 KB/s to send a legal 10 MB body. Each breach is a 408 (413 past
    ``max_request_bytes``)."""

    def __init__(self, settings: Settings, declared: Optional[int]):
        self._settings = settings
        self._declared = declared
        self._began = time.monotonic()
        self._floor = RateFloor(settings.request_body_min_bytes_per_s, settings.request_body_rate_window_s,
                                since_start=True)
        self._floor.start()

    async def next(self, receive):
        """The body's next message, or a 408 where the floor or the whole-body limit is passed first."""
        while True:
            whole_by = self._whole_by()
            try:
                async with asyncio.timeout(max(0.0, min(whole_by, self._floor.judged_at) - time.monotonic())):
                    return await receive()
            except TimeoutError:
                if time.monotonic() >= whole_by:
                    raise _too_slow(self._late_message(whole_by)) from None
                self._judge()

    def count(self, size: int, whole: bool) -> None:
        self._floor.count(size)
        if self._floor.counted > self._settings.max_request_bytes:
            raise StarletteHTTPException(413, _too_large_message(self._settings.max_request_bytes), CLOSE_CONNECTION)
        if not whole:  # a body now whole is taken, however it came: nothing of it is held any more
            self._judge()

    def _judge(self) -> None:
        short = self._floor.shortfall()
        if short is not None:
            sent, elapsed = short
            raise _too_slow(f"request body arriving slower than the floor of {self._floor.bytes_per_s:,.0f} "
                            f"bytes a second (request_body_min_bytes_per_s): {sent:,} bytes in {elapsed:,.1f} s")

    def _length(self) -> int:
        return self._floor.counted if self._declared is None else self._declared

    def _whole_by(self) -> float:
        rate = self._settings.request_body_min_bytes_per_s
        return self._began + self._settings.request_body_timeout_s + (self._length() / rate if rate else 0.0)

    def _late_message(self, whole_by: float) -> str:
        timeout_s = self._settings.request_body_timeout_s
        if not self._settings.request_body_min_bytes_per_s:
            return f"request body not received whole within {timeout_s:g} s (request_body_timeout_s)"
        return (f"request body not received whole within {whole_by - self._began:,.1f} s "
                f"(request_body_timeout_s, {timeout_s:g} s, plus its {self._length():,} bytes at "
                f"request_body_min_bytes_per_s)")


def _too_slow(message: str) -> StarletteHTTPException:
    return StarletteHTTPException(408, message, CLOSE_CONNECTION)


class HeadAsGet:
    """HEAD answered wherever GET is, with the GET's status and headers and no body (HTTP asks it
    of every server; ``curl -I`` and download tools read an output's size and type so). The
    route stops once its headers are out: an event stream would otherwise run on."""

    def __init__(self, app):
        self._app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "HEAD":
            return await self._app(scope, receive, send)

        async def headers_only(message):
            if message["type"] == "http.response.start":
                await send(message)
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                raise _HeadersSent()

        try:
            await self._app({**scope, "method": "GET"}, receive, headers_only)
        except _HeadersSent:
            pass


class _HeadersSent(Exception):
    pass


class ClientGone:
    """Serve cancels a request whose client hung up (an event stream closed, a ``Prefer: wait``
    given up): what the request was waiting on raises ``TaskCancelledError``. No fault of the
    service, and nobody to answer: not an internal error with a traceback in the log."""

    def __init__(self, app):
        self._app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self._app(scope, receive, send)
        try:
            await self._app(scope, receive, send)
        except* TaskCancelledError:  # a streaming response raises one from each of its two tasks, grouped
            logger.info("%s %s: the client went away", scope["method"], scope["path"])


class _CountedStream(StreamingResponse):
    """An event stream that says when it is over, however it ends: sent to its end, or cut off
    by its client hanging up (Serve cancels the request), before or after its first event."""

    def __init__(self, content, on_close: Callable[[], None], **kwargs):
        super().__init__(content, **kwargs)
        self._on_close = on_close

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()


def _too_large(limit: int) -> JSONResponse:
    return _error_response(413, _too_large_message(limit), headers=CLOSE_CONNECTION)


def _too_large_message(limit: int) -> str:
    return f"request body over the limit of {limit:,} bytes (max_request_bytes)"


def _ingress_settings() -> Settings:
    # The app object is pickled into the replica, so settings cannot ride on it; the replica's own
    # Ingress instance holds them.
    return serve.get_replica_context().servable_object._settings


def _arriving_bodies() -> Slots:
    return serve.get_replica_context().servable_object._arriving_bodies


api.add_middleware(BodyLimit)
api.add_middleware(HeadAsGet)
api.add_middleware(ClientGone)


@serve.deployment(max_ongoing_requests=INGRESS_MAX_ONGOING_REQUESTS)
@serve.ingress(api)
class Ingress:
    async def __init__(self, settings: Settings, runner: DeploymentHandle):
        self._settings = settings
        self._runner = runner
        self._state = await get_state_actor(settings)
        self._storage = LocalStorage(settings.data_dir / "outputs")
        self._catalog = ModelCatalog(settings.weights_dir)
        self._direct_reads = DirectReads(settings, self._state)
        self._video_codecs = await asyncio.to_thread(task_codecs_available)
        self._held_requests = Slots(settings.max_held_requests)
        self._arriving_bodies = Slots(settings.max_arriving_bodies)
        await self._redispatch_pending()

    def __del__(self):
        """Serve calls this when the replica stops: the task database's read connections close."""
        direct_reads = getattr(self, "_direct_reads", None)
        if direct_reads is not None:
            direct_reads.close()

    async def _redispatch_pending(self) -> None:
        """Pending tasks whose run request was lost (an app restart) are handed out again; for a
        task still waiting for a slot, this dispatch takes the place of the old one (whose runner
        may be gone), so exactly one runs it."""
        for task_id in await self._state.pending_ids():
            self._dispatch(task_id)

    def _dispatch(self, task_id: str) -> None:
        """Hands the task to a runner, fired and not awaited, from outside the calling request's
        context: Serve cancels the calls a request made when its client hangs up (a dropped
        ``Prefer: wait``), and the task outlives the request."""
        contextvars.Context().run(self._runner.run_task.remote, task_id)

    # -- routes -----------------------------------------------------------------------------

    @api.get("/health", response_model=Health)
    async def health(self) -> Health:
        return Health()

    @api.post("/tasks", response_model=TaskCreated,
              responses={202: {"model": TaskView, "description": "Prefer: wait=N and the task did not end "
                               "within N s: its view now; Location names it (with Prefer and an end "
                               "in time, the 200 is the TaskView)"},
                         400: _error("Unknown model, or a callback_url that may not be called"),
                         409: _error("Idempotency-Key reused for another request"),
                         413: _error("Request body over max_request_bytes"),
                         422: _error("Invalid body or header: the message names the field or header"),
                         **QUEUE_FULL, **AUTH_RESPONSES})
    async def create_task(
        self, request: TaskRequest, http: Request,
        idempotency_key: Optional[str] = IDEMPOTENCY_KEY,
        prefer: Optional[str] = Header(
            None, alias="Prefer", description=f"wait=N: answer with the task's view when it ends within N s "
            f"(at most {MAX_PREFER_WAIT_S}; more is shortened to it), else its view now with 202."),
        cancel_after: Optional[str] = Header(
            None, alias="Cancel-After", description="30s, 5m, 1h (or seconds): cancel the task if it has "
            "not finished by then; with deadline_s too, the sooner wins."),
    ):
        self._authorize(http)
        wait_s, deadline_s = prefer_wait_s(prefer), cancel_after_s(cancel_after)
        created = await self.submit_task(request.with_deadline(deadline_s), idempotency_key)
        if wait_s is None:
            return created
        view = self._with_absolute_urls(await self._held_wait(created.task_id, wait_s), http)
        if view.status.finished:
            return JSONResponse(view.model_dump(mode="json"))
        location = f"{self._base_url(http).rstrip('/')}/tasks/{view.task_id}"
        return JSONResponse(view.model_dump(mode="json"), status_code=202, headers={"Location": location})

    @api.post("/tasks/batch", response_model=TaskBatchCreated,
              responses={413: _error("Request body over max_request_bytes"),
                         422: _error("Not a batch, or more bodies than max_batch_tasks"),
                         **QUEUE_FULL, **AUTH_RESPONSES})
    async def create_tasks(self, batch: TaskBatch, http: Request,
                           idempotency_key: Optional[str] = IDEMPOTENCY_KEY) -> TaskBatchCreated:
        self._authorize(http)
        return await self.submit_batch(batch.tasks, idempotency_key)

    @api.get("/tasks/{task_id}", response_model=TaskView, responses={**NOT_FOUND, **AUTH_RESPONSES})
    async def read_task(self, task_id: str, http: Request) -> TaskView:
        self._authorize(http)
        view = await self.get_task(task_id)
        if view is None:
            raise TaskNotFound(f"task {task_id} not found")
        return self._with_absolute_urls(view, http)

    @api.get("/tasks/{task_id}/events", response_class=StreamingResponse,
             responses={200: {"content": {"text/event-stream": {}},
                              "description": "Server-sent events: id (revision), event (TaskEventKind), "
                              "data (the TaskView); the last is 'end'"},
                        422: _error("A Last-Event-ID this stream did not send"), **NOT_FOUND,
                        429: _error("max_held_requests streams and waits open on this replica; retry after the "
                                    "Retry-After header's seconds"), **AUTH_RESPONSES})
    async def task_events(
        self, task_id: str, http: Request,
        last_seen: Optional[str] = Header(None, alias="Last-Event-ID",
                                          description="Resume after this event (browsers send it on reconnect)."),
    ) -> StreamingResponse:
        self._authorize(http)
        resumed_from = last_event_id(last_seen)
        current = await self._change(task_id)
        if not self._held_requests.take():
            raise StreamsFull(f"too many event streams and waits held open (limit {self._settings.max_held_requests}, "
                              f"max_held_requests); follow the task with GET /tasks/{{id}} meanwhile",
                              self._settings.retry_after_s)
        stream = event_stream(lambda after, timeout_s: self._change(task_id, after, timeout_s), current,
                              resumed_from, self._settings.events_heartbeat_s,
                              lambda view: self._with_absolute_urls(view, http))
        # no-cache and X-Accel-Buffering: proxies (nginx) must pass events on as they come
        return _CountedStream(stream, self._held_requests.release, media_type="text/event-stream",
                              headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def _held_wait(self, task_id: str, wait_s: float) -> TaskView:
        """A ``Prefer: wait`` holds its request like a stream and counts with the streams; past
        ``max_held_requests`` it is answered at once (RFC 7240 lets a server honour a preference in
        part)."""
        if not self._held_requests.take():
            return await self.wait_task(task_id, 0)
        try:
            return await self.wait_task(task_id, wait_s)
        finally:
            self._held_requests.release()

    @api.delete("/tasks/{task_id}", response_model=CancelResult,
                responses={**NOT_FOUND, 409: _error("The task already finished"), **AUTH_RESPONSES})
    async def delete_task(self, task_id: str, http: Request) -> CancelResult:
        self._authorize(http)
        return await self.cancel_task(task_id)

    @api.get("/models", response_model=ModelList, responses=AUTH_RESPONSES)
    async def models(self, http: Request) -> ModelList:
        self._authorize(http)
        return await self.list_models()

    @api.get("/monitor/stats", response_model=MonitorStats, responses=AUTH_RESPONSES)
    async def monitor_stats(self, http: Request) -> MonitorStats:
        self._authorize(http)
        stats = await self._read(
            lambda reader: monitor_stats(reader, self._settings.max_workers, self._settings.recent_tasks_limit),
            self._state.monitor)
        stats.tasks = [self._with_absolute_urls(view, http) for view in stats.tasks]
        return stats

    @api.get(FILES_ROUTE + "/{key:path}", response_class=FileResponse,
             responses={404: _error("No such output (expired, or never stored here)"), **AUTH_RESPONSES})
    async def files(self, key: str, http: Request) -> FileResponse:
        self._authorize(http)
        path = self._storage.open_path(key)
        if path is None:
            raise FileNotFound("file not found")
        try:
            # its ETag is set now, not when sent
            response = FileResponse(path, stat_result=path.stat(), media_type=media_type(path))
        except FileNotFoundError:  # retention removed it just now
            raise FileNotFound("file not found") from None
        if _unchanged_for(http, response.headers["etag"]):
            return Response(status_code=304, headers={"etag": response.headers["etag"]})
        return response

    @api.get("/dashboard", response_class=HTMLResponse)
    async def dashboard(self) -> FileResponse:
        return dashboard_response(PAGE)

    @api.get("/dashboard/{name}", include_in_schema=False)
    async def dashboard_file(self, name: str) -> Response:
        if name == PAGE:  # the page's links are relative to /dashboard: served here, every one broke
            return RedirectResponse("../dashboard", status_code=308)
        response = dashboard_response(name)
        if response is None:
            raise FileNotFound(f"no dashboard file {name}")
        return response

    # -- methods shared by routes and Python handle callers ---------------------------------

    async def submit_task(self, request: TaskRequest | dict, idempotency_key: str | None = None) -> TaskCreated:
        """Creates a task (or, for a known ``idempotency_key``, returns the task it created)."""
        try:
            params, fingerprint = await self._checked_params(request)
        except ValidationError as exc:  # a handle caller's dict: a typed refusal, as every other one
            raise InvalidRequest(validation_summary(exc.errors())[0]) from None
        admission = (params, new_task_id(), idempotency_key, fingerprint)
        ((task_id, outcome),) = await self._admit_and_dispatch([admission])
        return self._created(task_id, outcome)

    async def submit_batch(self, requests: List[TaskRequest | dict],
                           idempotency_key: str | None = None) -> TaskBatchCreated:
        """Creates one task per valid request, all of them or, when the queue cannot take them
        all, none (``QueueFull``); an invalid request gets its error in its place. With
        ``idempotency_key``, request i uses the key ``<key>/<i>``: a retried batch returns its tasks."""
        if not isinstance(requests, (list, tuple)) or not requests:
            raise InvalidRequest(f"tasks: a non-empty list of task bodies, not {_shown(requests)}")
        if len(requests) > self._settings.max_batch_tasks:
            raise InvalidRequest(f"tasks: {len(requests)} bodies, over max_batch_tasks "
                                 f"({self._settings.max_batch_tasks})")
        items: List[TaskCreated | BatchItemError | None] = []
        admissions, places = [], []
        for index, request in enumerate(requests):
            try:
                params, fingerprint = await self._checked_params(request)
            except (ValidationError, RequestRefused) as exc:
                items.append(_batch_error(exc))
                continue
            places.append(len(items))
            items.append(None)
            admissions.append((params, new_task_id(), f"{idempotency_key}/{index}" if idempotency_key else None,
                               fingerprint))
        outcomes = await self._admit_and_dispatch(admissions) if admissions else []
        if any(outcome == "queue_full" for _, outcome in outcomes):
            raise self._queue_full()
        for place, (task_id, outcome) in zip(places, outcomes):
            try:
                items[place] = self._created(task_id, outcome)
            except KeyConflict as exc:
                items[place] = _batch_error(exc)
        return TaskBatchCreated(tasks=items)

    async def wait_task(self, task_id: str, timeout_s: float) -> TaskView:
        """The task's view once it has finished, or as it is after ``timeout_s``; raises
        ``TaskNotFound`` for an unknown task."""
        loop = asyncio.get_running_loop()
        until = loop.time() + timeout_s
        revision, view = await self._change(task_id)
        while not view.status.finished and (left := until - loop.time()) > 0:
            revision, view = await self._change(task_id, revision, left)
        return view

    async def _change(self, task_id: str, after: Optional[int] = None, timeout_s: float = 0.0) -> Change:
        change = await self._state.wait_change(task_id, after, timeout_s)
        if change is None:
            raise TaskNotFound(f"task {task_id} not found")
        return change

    async def _admit_and_dispatch(self, admissions: List[tuple]) -> List[Tuple[str, str]]:
        """Admits the tasks and hands each new one to a runner, as one piece of work that goes on if
        the request is cancelled meanwhile (its client hung up): a task the state actor admitted
        must not be left for the sweeper to find a heartbeat timeout later."""
        async def admit() -> List[Tuple[str, str]]:
            outcomes = await self._state.admit_many(admissions)  # one admission is admit's own case
            for task_id, outcome in outcomes:
                if outcome == "created":
                    self._dispatch(task_id)
            return outcomes

        return await asyncio.shield(asyncio.create_task(admit(), context=contextvars.Context()))

    def _created(self, task_id: str, outcome: str) -> TaskCreated:
        """The answer to an admission."""
        if outcome == "queue_full":
            raise self._queue_full()
        if outcome == "key_conflict":
            raise KeyConflict("this Idempotency-Key was already used for a different request", task_id)
        return TaskCreated(task_id=task_id)

    def _queue_full(self) -> QueueFull:
        return QueueFull(f"too many pending tasks (limit {self._settings.max_pending_tasks}); retry later",
                         self._settings.retry_after_s)

    async def _checked_params(self, request: TaskRequest | dict) -> Tuple[Dict[str, Any], str]:
        """The task's params once the request passed every check made at submission, and the
        fingerprint of the request as sent (a retry is that request again, whatever the model's
        defaults became in between)."""
        if not isinstance(request, TaskRequest):  # a dict from a handle caller, any JSON from a batch
            request = TaskRequest.model_validate(request)
        try:
            request.check_bounds(self._settings.max_output_pixels)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from exc
        if request.video_codec and request.video_codec not in self._video_codecs:
            raise InvalidRequest(f"video_codec: {request.video_codec} has no encoder in this build; "
                           f"it has {', '.join(self._video_codecs)}")
        if request.video_codec and request.output_format in CONTAINER_FORMATS:
            refusal = container_refusal(CONTAINER_FORMATS[request.output_format], request.video_codec)
            if refusal:
                raise InvalidRequest(f"output_format: {refusal}")
        model = request.model or self._settings.default_model
        info = await self._check_model(model)
        if request.denoise_strength not in (None, 1):  # 1: the file as it is, as Real-ESRGAN's script reads it
            await asyncio.to_thread(self._check_denoise_twin, model, info)
        if request.callback_url:
            try:  # the input rules; names are checked again when the webhook connects
                check_url(request.callback_url, self._settings.fetch_policy())
            except FetchError as exc:
                raise CallbackRefused(f"callback_url: {exc}") from exc
        sent = {**request.model_dump(mode="json"), "model": model}
        params = {**sent, **model_defaults(sent, info.scale, info.seeded, self._settings.seedvr2_seed)}
        return params, request_fingerprint(sent)

    async def list_models(self) -> ModelList:
        """Every model file of the weights directory: what it is (or why it cannot be served),
        and whether a replica holds it loaded."""
        entries = await asyncio.to_thread(self._listed_entries)
        held = set(await self._state.models_held())
        models = [ModelEntry(**(entry.info.public() if entry.info else {"name": entry.name, "bytes": entry.bytes}),
                             error=entry.error, loaded=entry.name in held, denoise_strength=takes_denoise)
                  for entry, takes_denoise in entries]
        return ModelList(models=models)

    def _listed_entries(self) -> List[Tuple[CatalogEntry, bool]]:
        """Every model file's entry, and whether a task may give it a denoise_strength (as submission checks)."""
        return [(entry, entry.info is not None and self._catalog.denoise_refusal(entry.name, entry.info) is None)
                for entry in self._catalog.entries()]

    async def _check_model(self, name: str) -> ModelInfo:
        """A model this service can run, or 400 naming the file and the reason."""
        try:
            info = await asyncio.to_thread(self._catalog.info, name)
        except (ModelNameError, ModelError) as exc:
            raise ModelRefused(str(exc)) from exc
        if not KIND_BY_NAME[info.replica_kind].parallelism(self._settings):
            raise ModelRefused(f"model {name} is a {info.family} model, and no {info.replica_kind} "
                           "replicas run here (their replica count is 0)")
        return info

    def _check_denoise_twin(self, name: str, info: ModelInfo) -> None:
        """400 for a denoise strength asked of a model with no weak-denoise twin of its own network."""
        refusal = self._catalog.denoise_refusal(name, info)
        if refusal:
            raise ModelRefused(f"denoise_strength: {refusal}")

    async def get_task(self, task_id: str) -> TaskView | None:
        """The task's record (output URLs of local storage are service-relative), or ``None``."""
        return await self._read(lambda reader: reader.view(task_id), lambda: self._state.get(task_id))

    async def cancel_task(self, task_id: str) -> CancelResult:
        """Cancels a pending or processing task; raises ``TaskNotFound`` for an unknown task and
        ``TaskFinished`` for one that already ended."""
        canceled, before = await self._state.cancel(task_id)
        if before is None:
            raise TaskNotFound(f"task {task_id} not found")
        if not canceled:
            raise TaskFinished(f"task {task_id} is already {before.value}", before.value)
        return CancelResult()

    async def _read(self, local: Callable[[TaskReader], Any], remote: Callable[[], Any]) -> Any:
        """From the task database when it is on this node (no queueing behind the actor's
        writes), else — or if that read fails — from the state actor."""
        reader = await self._direct_reads.reader()
        if reader is not None:
            try:
                found = await asyncio.to_thread(local, reader)
                if found is not None:  # else the actor, which may have moved since the last check, knows
                    return found
            except sqlite3.Error as exc:
                logger.warning("direct read of the task database failed (%s); asking the state actor", exc)
        return await remote()

    def _authorize(self, http: Request) -> None:
        if not bearer_token_ok(http.headers.get("authorization"), self._settings.api_token):
            raise Unauthorized("missing or wrong API token (send 'Authorization: Bearer <token>')")

    def _with_absolute_urls(self, view: TaskView, http: Request) -> TaskView:
        return view.with_output_base(self._base_url(http))

    def _base_url(self, http: Request) -> str:
        return self._settings.public_base_url or str(http.base_url)
