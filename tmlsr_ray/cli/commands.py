"""The ``tmlsr`` commands (Click). ``--server``, ``--token`` and ``--json`` are taken before or
after the command's name; the server and token also from ``$TMLSR_SERVER`` and ``$TMLSR_TOKEN``."""

from __future__ import annotations

import threading
import typing
from dataclasses import dataclass
from enum import Enum
from typing import Any, Callable, Dict, List, Optional, Sequence
from urllib.parse import urlsplit

import click

from tmlsr_ray.cli.client import (EXIT_OK, EXIT_REFUSED, EXIT_TASK_FAILED, ApiClient, CliError, Submission,
                                  TaskView, shown_url, task_path)
from tmlsr_ray.cli.output import (models_text, print_json, refusal_line, stats_text, task_line, task_text)
from tmlsr_ray.cli.progress import TaskBars
from tmlsr_ray.protocol import TaskRequest, TaskStatus

DEFAULT_SERVER = "http://localhost:6008"
EXIT_INTERRUPTED = 130  # the shell's code for Ctrl-C (128 + SIGINT); 1 would read as a failed task
MAX_FOLLOWED_AT_ONCE = 32  # open streams (or pollers) of one `submit --wait`; the others wait their turn


@dataclass
class Connection:
    server: str = DEFAULT_SERVER
    token: Optional[str] = None
    json_output: bool = False

    def client(self) -> ApiClient:
        return ApiClient(self.server, self.token)


def _remember(field: str):
    """Stores a connection option where the command finds it; one given after the command's name
    wins over one given before it (or from the environment)."""

    def store(ctx: click.Context, _param: click.Parameter, value: Any) -> None:
        if value is not None and value is not False:
            setattr(ctx.ensure_object(Connection), field, value)

    return store


def _server_address(ctx: click.Context, param: click.Parameter, value: Optional[str]) -> None:
    """A mistyped address is the command line's fault (exit 2), not an unreachable service (3)."""
    if value is None:
        return
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 -- reading it checks it
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise click.BadParameter(f"{shown_url(value)!r} is not an http(s) address such as {DEFAULT_SERVER}",
                                 ctx, param)
    _remember("server")(ctx, param, value)


def connection_options(root: bool = False):
    """The options of the group (with defaults and environment variables) and, repeated without
    them, of every command, so that they are accepted where users type them."""
    return _options([
        click.option("--server", default=DEFAULT_SERVER if root else None, envvar="TMLSR_SERVER" if root else None,
                     expose_value=False, callback=_server_address,
                     help="Service address (default $TMLSR_SERVER, else http://localhost:6008)."),
        click.option("--token", envvar=["TMLSR_TOKEN", "TMLSR_API_TOKEN"] if root else None, expose_value=False,
                     callback=_remember("token"), help="API token (default $TMLSR_TOKEN or $TMLSR_API_TOKEN)."),
        click.option("--json", "json_output", is_flag=True, expose_value=False, callback=_remember("json_output"),
                     help="Machine-readable JSON on stdout, and nothing else there."),
    ])


def _options(options: List[Callable]) -> Callable:
    """One decorator for a list of options, in the list's order in the help."""

    def decorate(command):
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@connection_options(root=True)
def cli() -> None:
    """Client of the TMLSR-Ray super-resolution service.

    Exit codes: 0 done, 1 a task failed or was canceled, 2 the service refused the request (4xx),
    3 the service could not be reached or failed (5xx).
    """


def _choice(field: str) -> click.Choice:
    """The values ``POST /tasks`` takes for ``field`` (its enum or literal), for checking and completion."""
    annotation = TaskRequest.model_fields[field].annotation
    kinds = (annotation,) if typing.get_origin(annotation) is typing.Literal else typing.get_args(annotation)
    for kind in kinds or (annotation,):
        if isinstance(kind, type) and issubclass(kind, Enum):
            return click.Choice([member.value for member in kind])
        if typing.get_origin(kind) is typing.Literal:
            return click.Choice(typing.get_args(kind))
    raise TypeError(f"{field} has no fixed choices")


# Named like the fields of POST /tasks, which validates them (a 422 names the field).
TASK_OPTIONS = [
    click.option("--type", type=_choice("type"), help="video (the service's default) or image."),
    click.option("--model", help="Model file name (`tmlsr models` lists them)."),
    click.option("--outscale", type=float),
    click.option("--output-magnification", type=float),
    click.option("--output-dims", type=(int, int), metavar="WIDTH HEIGHT"),
    click.option("--resolution", type=int, help="Output height (models of any scale, such as SeedVR2)."),
    click.option("--seed", type=int, help="Noise seed (seeded models)."),
    click.option("--output-format", type=_choice("output_format")),
    click.option("--output-quality", type=int),
    click.option("--video-codec", type=_choice("video_codec")),
    click.option("--crf", type=int),
    click.option("--hdr", type=_choice("hdr"),
                 help="HDR video or photo (PQ, HLG): keep it HDR (the default) or tone-map it to sdr."),
    click.option("--denoise-strength", type=float,
                 help="realesr-general-x4v3 with its weak-denoise twin: 0 keeps noise, 1 (the default) denoises fully."),
    click.option("--damaged-frames", type=_choice("damaged_frames"),
                 help="Frames the decoder cannot read: fail the task (the default) or repeat the frame before."),
]


task_options = _options(TASK_OPTIONS)


def request_bodies(urls: Sequence[str], fields: Dict[str, Any]) -> List[Dict[str, Any]]:
    given = {name: list(value) if isinstance(value, tuple) else value
             for name, value in fields.items() if value is not None}
    return [{"url": url, **given} for url in urls]


@cli.command()
@click.argument("urls", nargs=-1, required=True, metavar="URL...")
@task_options
@click.option("--idempotency-key", help="Retrying with the same key returns the same task (one URL only).")
@click.option("--wait", is_flag=True, help="Follow each task with a progress bar until it ends.")
@click.option("--poll", is_flag=True, help="With --wait: poll GET /tasks/{id} instead of following the event stream.")
@click.option("--interval", type=float, default=1.0, hidden=True)
@connection_options()
@click.pass_obj
def submit(connection: Connection, urls: Sequence[str], idempotency_key: Optional[str], wait: bool, poll: bool,
           interval: float, **fields: Any) -> int:
    """Submit one task per URL (several in one call: the batch route)."""
    if idempotency_key and len(urls) > 1:
        raise click.UsageError("--idempotency-key names one task: give one URL with it")
    client = connection.client()
    submissions = client.submit(request_bodies(urls, fields), idempotency_key)
    task_ids = [s.task_id for s in submissions if s.task_id is not None]
    try:
        finals = _follow_all(client, task_ids, interval, stream=not poll) if wait and task_ids else {}
    except (KeyboardInterrupt, CliError):  # the tasks go on: without their ids they could be neither found nor canceled
        _report_submissions(connection, submissions, {})
        click.echo("tmlsr: stopped waiting; the tasks go on (tmlsr cancel TASK_ID stops one)", err=True)
        raise
    _report_submissions(connection, submissions, finals)
    refused = EXIT_REFUSED if len(task_ids) < len(submissions) else EXIT_OK
    completed = all(view["status"] == TaskStatus.completed.value for view in finals.values())
    failed = EXIT_OK if completed else EXIT_TASK_FAILED
    return max(refused, failed)


def _follow_all(client: ApiClient, task_ids: List[str], interval: float, stream: bool) -> Dict[str, TaskView]:
    """Each task's final view, all followed at once. Daemon threads, so that Ctrl-C ends the
    command at once instead of waiting for the tasks."""
    finals: Dict[str, TaskView] = {}
    errors: List[CliError] = []
    slots = threading.BoundedSemaphore(MAX_FOLLOWED_AT_ONCE)
    bars = TaskBars(task_ids)

    def follow(task_id: str) -> None:
        with slots:
            try:
                finals[task_id] = client.follow(task_id, bars.show, interval, stream)
            except CliError as exc:
                errors.append(exc)

    threads = [threading.Thread(target=follow, args=(task_id,), daemon=True) for task_id in task_ids]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        bars.close()
    if errors:
        raise errors[0]
    return finals


def _report_submissions(connection: Connection, submissions: List[Submission], finals: Dict[str, TaskView]) -> None:
    if connection.json_output:
        print_json({"tasks": [finals.get(s.task_id) or s.as_json() for s in submissions]})
        return
    for submission in submissions:
        if submission.task_id is None:
            click.echo(refusal_line(submission), err=True)
        elif submission.task_id in finals:
            click.echo(task_line(finals[submission.task_id]))
        else:
            click.echo(submission.task_id)


def _show(connection: Connection, answer: Dict[str, Any], as_text: Callable[[Dict[str, Any]], str]) -> None:
    if connection.json_output:
        print_json(answer)
    else:
        click.echo(as_text(answer))


@cli.command()
@click.argument("task_id")
@connection_options()
@click.pass_obj
def status(connection: Connection, task_id: str) -> int:
    """Show a task: its status, stages, output or error."""
    _show(connection, connection.client().call("GET", task_path(task_id)), task_text)
    return EXIT_OK


@cli.command()
@click.argument("task_id")
@connection_options()
@click.pass_obj
def cancel(connection: Connection, task_id: str) -> int:
    """Cancel a pending or processing task."""
    _show(connection, connection.client().call("DELETE", task_path(task_id)), lambda _: f"canceled {task_id}")
    return EXIT_OK


@cli.command()
@connection_options()
@click.pass_obj
def stats(connection: Connection) -> int:
    """System statistics, task counts by status and recent tasks."""
    _show(connection, connection.client().call("GET", "/monitor/stats"), stats_text)
    return EXIT_OK


@cli.command()
@connection_options()
@click.pass_obj
def models(connection: Connection) -> int:
    """The model files of the service: family, architecture, scale, whether one is loaded."""
    _show(connection, connection.client().call("GET", "/models"), lambda answer: models_text(answer["models"]))
    return EXIT_OK


@cli.command()
def serve() -> int:
    """Run the service here, in the foreground (the same as `make run`)."""
    from tmlsr_ray.cli.local_service import serve_locally
    from tmlsr_ray.config import Settings

    serve_locally(Settings.load())
    return EXIT_OK


def main(argv: Optional[List[str]] = None) -> int:
    """The console script: the command's exit code (shell completion, when asked for through
    ``_TMLSR_COMPLETE``, exits on its own)."""
    try:
        return cli.main(args=argv, prog_name="tmlsr", standalone_mode=False) or EXIT_OK
    except CliError as exc:
        click.echo(f"tmlsr: {exc}", err=True)
        return exc.code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort:
        click.echo("Aborted!", err=True)
        return EXIT_INTERRUPTED
