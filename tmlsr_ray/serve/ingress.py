"""``Ingress``: the REST routes (stateless; any number of replicas)."""


import asyncio
import hmac
import logging

from typing import Optional

from fastapi import FastAPI, Header, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from ray import serve
from ray.serve.handle import DeploymentHandle

from tmlsr_ray.config import Settings
from tmlsr_ray.models.base import ModelError, ModelInfo
from tmlsr_ray.models.registry import ModelCatalog, ModelNameError
from tmlsr_ray.pipeline.encode import task_codecs_available
from tmlsr_ray.pipeline.errors import FetchError
from tmlsr_ray.pipeline.fetch import check_url
from tmlsr_ray.protocol import (
    CancelResult,
    ErrorBody,
    Health,
    ModelEntry,
    ModelList,
    MonitorStats,
    TaskCreated,
    TaskRequest,
    TaskView,
)
from tmlsr_ray.serve.dashboard import PAGE, dashboard_response
from tmlsr_ray.serve.replicas import KIND_BY_NAME
from tmlsr_ray.serve.state import get_state_actor
from tmlsr_ray.state.records import new_task_id
from tmlsr_ray.storage.local import FILES_ROUTE, LocalStorage

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


class TaskFinished(Exception):
    """Canceling a task that already ended (raised to Python handle callers too)."""

    def __init__(self, message: str, status: str):
        super().__init__(message, status)  # both in args, so the exception pickles across processes
        self.status = status

    def __str__(self) -> str:
        return self.args[0]


def _error(description: str) -> dict:
    return {"model": ErrorBody, "description": description}


AUTH_RESPONSES = {401: _error("API token missing or wrong (when one is configured)")}
NOT_FOUND = {404: _error("Unknown task")}


class ApiError(Exception):
    def __init__(self, status_code: int, message: str, headers: dict | None = None, **extra):
        self.status_code, self.message, self.headers, self.extra = status_code, message, headers, extra


@api.exception_handler(ApiError)
async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
    return JSONResponse({"status": "error", "error": exc.message, "detail": exc.message, **exc.extra},
                        status_code=exc.status_code, headers=exc.headers)


@api.exception_handler(RequestValidationError)
async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    # The offending input is not echoed back: it may be a megabyte of text, or NaN, which JSON
    # cannot carry in an answer.
    errors = [{"loc": list(err["loc"]), "msg": err["msg"][:300], "type": err["type"]} for err in exc.errors()]
    message = "; ".join(
        f"{'.'.join(str(p) for p in err['loc'] if p != 'body') or 'body'}: {err['msg']}" for err in errors
    )
    return _error_response(422, message, errors)


@api.exception_handler(StarletteHTTPException)
async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    """FastAPI's and Starlette's own refusals (unparsable body, unknown route, wrong method) in the
    service's error schema too."""
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


def _error_response(status_code: int, message: str, detail=None) -> JSONResponse:
    return JSONResponse({"status": "error", "error": message, "detail": jsonable_encoder(detail or message)},
                        status_code=status_code)


class BodyLimit:
    """413 for a request body over ``max_request_bytes``, counted as it arrives (a Content-Length
    that says so is refused before any byte is read). Plain ASGI: FastAPI parses the body before
    a route could look at it."""

    def __init__(self, app):
        self._app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self._app(scope, receive, send)
        limit = _ingress_settings().max_request_bytes
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            return await _too_large(limit)(scope, receive, send)
        received = 0

        async def counted():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise _BodyTooLarge()
            return message

        try:
            await self._app(scope, counted, send)
        except _BodyTooLarge:
            await _too_large(limit)(scope, receive, send)


class _BodyTooLarge(Exception):
    pass


def _too_large(limit: int) -> JSONResponse:
    return _error_response(413, f"request body over the limit of {limit:,} bytes (max_request_bytes)")


def _ingress_settings() -> Settings:
    # The app object is pickled into the replica, so settings cannot ride on it; the replica's own
    # Ingress instance holds them.
    return serve.get_replica_context().servable_object._settings


api.add_middleware(BodyLimit)


@serve.deployment(max_ongoing_requests=200)
@serve.ingress(api)
class Ingress:
    async def __init__(self, settings: Settings, runner: DeploymentHandle):
        self._settings = settings
        self._runner = runner
        self._state = get_state_actor(settings)
        self._storage = LocalStorage(settings.data_dir / "outputs")
        self._catalog = ModelCatalog(settings.weights_dir)
        self._video_codecs = await asyncio.to_thread(task_codecs_available)
        await self._redispatch_pending()

    async def _redispatch_pending(self) -> None:
        """Pending tasks whose run request was lost (an app restart) are handed out again; for a
        task still waiting for a slot, this dispatch takes the place of the old one (whose runner
        may be gone), so exactly one runs it."""
        for task_id in await self._state.pending_ids.remote():
            self._runner.run_task.remote(task_id)

    # -- routes -----------------------------------------------------------------------------

    @api.get("/health", response_model=Health)
    async def health(self) -> Health:
        return Health()

    @api.post("/tasks", response_model=TaskCreated,
              responses={400: _error("Unknown model, or a callback_url that may not be called"),
                         409: _error("Idempotency-Key reused for another request"),
                         413: _error("Request body over max_request_bytes"),
                         422: _error("Invalid body: the message names the field"),
                         429: _error("Too many pending tasks; retry after the Retry-After header's seconds"),
                         **AUTH_RESPONSES})
    async def create_task(
        self, request: TaskRequest, http: Request,
        idempotency_key: Optional[str] = Header(
            None, alias="Idempotency-Key", description="Retrying with the same key returns the same task."),
    ) -> TaskCreated:
        self._authorize(http)
        return await self.submit_task(request, idempotency_key)

    @api.get("/tasks/{task_id}", response_model=TaskView, responses={**NOT_FOUND, **AUTH_RESPONSES})
    async def read_task(self, task_id: str, http: Request) -> TaskView:
        self._authorize(http)
        view = await self.get_task(task_id)
        if view is None:
            raise ApiError(404, f"task {task_id} not found")
        return self._with_absolute_urls(view, http)

    @api.delete("/tasks/{task_id}", response_model=CancelResult,
                responses={**NOT_FOUND, 409: _error("The task already finished"), **AUTH_RESPONSES})
    async def delete_task(self, task_id: str, http: Request) -> CancelResult:
        self._authorize(http)
        try:
            return await self.cancel_task(task_id)
        except LookupError as exc:
            raise ApiError(404, str(exc)) from exc
        except TaskFinished as exc:
            raise ApiError(409, str(exc), task_status=exc.status) from exc

    @api.get("/models", response_model=ModelList, responses=AUTH_RESPONSES)
    async def models(self, http: Request) -> ModelList:
        self._authorize(http)
        return await self.list_models()

    @api.get("/monitor/stats", response_model=MonitorStats, responses=AUTH_RESPONSES)
    async def monitor_stats(self, http: Request) -> MonitorStats:
        self._authorize(http)
        stats = await self._state.monitor.remote()
        stats.tasks = [self._with_absolute_urls(view, http) for view in stats.tasks]
        return stats

    @api.get(FILES_ROUTE + "/{key:path}", response_class=FileResponse,
             responses={404: _error("No such output (expired, or never stored here)"), **AUTH_RESPONSES})
    async def files(self, key: str, http: Request) -> FileResponse:
        self._authorize(http)
        path = self._storage.open_path(key)
        if path is None:
            raise ApiError(404, "file not found")
        return FileResponse(path)

    @api.get("/dashboard", response_class=HTMLResponse)
    async def dashboard(self) -> FileResponse:
        return await self.dashboard_file(PAGE)

    @api.get("/dashboard/{name}", include_in_schema=False)
    async def dashboard_file(self, name: str) -> FileResponse:
        response = dashboard_response(name)
        if response is None:
            raise ApiError(404, f"no dashboard file {name}")
        return response

    # -- methods shared by routes and Python handle callers ---------------------------------

    async def submit_task(self, request: TaskRequest | dict, idempotency_key: str | None = None) -> TaskCreated:
        """Creates a task (or, for a known ``idempotency_key``, returns the task it created)."""
        if isinstance(request, dict):
            request = TaskRequest.model_validate(request)
        try:
            request.check_bounds(self._settings.max_output_pixels)
        except ValueError as exc:
            raise ApiError(422, str(exc)) from exc
        if request.video_codec and request.video_codec not in self._video_codecs:
            raise ApiError(422, f"video_codec: {request.video_codec} has no encoder in this build; "
                           f"it has {', '.join(self._video_codecs)}")
        model = request.model or self._settings.default_model
        await self._check_model(model)
        if request.callback_url:
            try:  # the input rules; names are checked again when the webhook connects
                check_url(request.callback_url, self._settings.allow_private_urls, tuple(self._settings.url_allowlist))
            except FetchError as exc:
                raise ApiError(400, f"callback_url: {exc}") from exc
        params = request.model_dump(mode="json")
        params["model"] = model
        task_id, outcome = await self._state.admit.remote(new_task_id(), params, idempotency_key)
        if outcome == "queue_full":
            raise ApiError(429, f"too many pending tasks (limit {self._settings.max_pending_tasks}); "
                           "retry later", headers={"Retry-After": str(self._settings.retry_after_s)})
        if outcome == "key_conflict":
            raise ApiError(409, "this Idempotency-Key was already used for a different request",
                           task_id=task_id)
        if outcome == "created":
            self._runner.run_task.remote(task_id)  # fired, not awaited: the task outlives this request
        return TaskCreated(task_id=task_id)

    async def list_models(self) -> ModelList:
        """Every model file of the weights directory: what it is (or why it cannot be served),
        and whether a replica holds it loaded."""
        entries = await asyncio.to_thread(self._catalog.entries)
        held = set(await self._state.models_held.remote())
        models = [ModelEntry(**(entry.info.public() if entry.info else {"name": entry.name, "bytes": entry.bytes}),
                             error=entry.error, loaded=entry.name in held) for entry in entries]
        return ModelList(models=models)

    async def _check_model(self, name: str) -> ModelInfo:
        """A model this service can run, or 400 naming the file and the reason."""
        try:
            info = await asyncio.to_thread(self._catalog.info, name)
        except (ModelNameError, ModelError) as exc:
            raise ApiError(400, str(exc)) from exc
        if not KIND_BY_NAME[info.replica_kind].parallelism(self._settings):
            raise ApiError(400, f"model {name} is a {info.family} model, and no {info.replica_kind} "
                           "replicas run here (their replica count is 0)")
        return info

    async def get_task(self, task_id: str) -> TaskView | None:
        """The task's record (output URLs of local storage are service-relative), or ``None``."""
        return await self._state.get.remote(task_id)

    async def cancel_task(self, task_id: str) -> CancelResult:
        """Cancels a pending or processing task; raises ``LookupError`` for an unknown task and
        ``TaskFinished`` for one that already ended."""
        canceled, before = await self._state.cancel.remote(task_id)
        if before is None:
            raise LookupError(f"task {task_id} not found")
        if not canceled:
            raise TaskFinished(f"task {task_id} is already {before.value}", before.value)
        return CancelResult()

    def _authorize(self, http: Request) -> None:
        if not bearer_token_ok(http.headers.get("authorization"), self._settings.api_token):
            raise ApiError(401, "missing or wrong API token (send 'Authorization: Bearer <token>')",
                           headers={"WWW-Authenticate": "Bearer"})

    def _with_absolute_urls(self, view: TaskView, http: Request) -> TaskView:
        return view.with_output_base(self._settings.public_base_url or str(http.base_url))
