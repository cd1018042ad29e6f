"""``tmlsr``: the command-line client of the REST API.

    tmlsr submit URL [--type image] [--model M] [--outscale 2] [--wait]
    tmlsr status TASK_ID | tmlsr cancel TASK_ID | tmlsr stats | tmlsr serve

Exit codes: 0 done, 1 the task failed or was canceled, 2 the service refused the request
(4xx), 3 the service could not be reached or answered 5xx.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Dict, List, Optional

import requests

DEFAULT_SERVER = "http://localhost:6008"
EXIT_OK, EXIT_TASK_FAILED, EXIT_REFUSED, EXIT_UNREACHABLE = 0, 1, 2, 3


class CliError(Exception):
    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


class Client:
    def __init__(self, server: str, token: Optional[str]):
        self.server = server.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def call(self, method: str, path: str, headers: Optional[Dict[str, str]] = None, **kwargs) -> Dict[str, Any]:
        try:
            response = requests.request(method, self.server + path, headers={**self.headers, **(headers or {})},
                                        timeout=60, **kwargs)
        except requests.RequestException as exc:
            raise CliError(f"cannot reach {self.server}: {exc}", EXIT_UNREACHABLE) from exc
        try:
            body = response.json()
        except ValueError:
            body = {"error": response.text[:200]}
        if response.status_code >= 500:
            raise CliError(f"service error {response.status_code}: {body.get('error')}", EXIT_UNREACHABLE)
        if response.status_code >= 400:
            raise CliError(f"refused ({response.status_code}): {body.get('error') or body}", EXIT_REFUSED)
        return body


def _request_body(args: argparse.Namespace) -> Dict[str, Any]:
    body: Dict[str, Any] = {"url": args.url}
    for field in ("type", "model", "outscale", "output_magnification", "resolution"):
        if getattr(args, field) is not None:
            body[field] = getattr(args, field)
    if args.output_dims:
        body["output_dims"] = args.output_dims
    return body


def _progress_line(task: Dict[str, Any]) -> str:
    stage = next((s for s in task["stages"] if s["status"] == "running"), None)
    if stage is None:
        return f"{task['status']}"
    detail = stage.get("detail") or {}
    if "frames_total" not in detail:
        return f"{task['status']}: {stage['name']}"
    done, total = detail["frames_done"], max(detail["frames_total"], 1)
    bar = "#" * int(30 * done / total)
    eta = f"ETA {detail['eta_s']:.0f}s" if detail.get("eta_s") is not None else "ETA ?"
    return f"[{bar:<30}] {done}/{total} frames  {detail.get('fps', 0):.2f} fps  {eta}"


def _wait(client: Client, task_id: str, interval: float) -> Dict[str, Any]:
    while True:
        task = client.call("GET", f"/tasks/{task_id}")
        if task["status"] in ("completed", "failed", "canceled"):
            print(file=sys.stderr)
            return task
        print("\r" + _progress_line(task).ljust(78), end="", file=sys.stderr, flush=True)
        time.sleep(interval)


def _finished(task: Dict[str, Any]) -> int:
    print(json.dumps(task, indent=2))
    return EXIT_OK if task["status"] == "completed" else EXIT_TASK_FAILED


def run(args: argparse.Namespace) -> int:
    if args.command == "serve":
        from tmlsr_ray.__main__ import serve_locally
        from tmlsr_ray.config import Settings

        serve_locally(Settings.load())
        return EXIT_OK
    client = Client(args.server, args.token)
    if args.command == "submit":
        headers = {"Idempotency-Key": args.idempotency_key} if args.idempotency_key else {}
        created = client.call("POST", "/tasks", json=_request_body(args), headers=headers)
        if not args.wait:
            print(created["task_id"])
            return EXIT_OK
        return _finished(_wait(client, created["task_id"], args.interval))
    if args.command == "status":
        task = client.call("GET", f"/tasks/{args.task_id}")
        print(json.dumps(task, indent=2))
        return EXIT_OK
    if args.command == "cancel":
        print(json.dumps(client.call("DELETE", f"/tasks/{args.task_id}")))
        return EXIT_OK
    print(json.dumps(client.call("GET", "/monitor/stats"), indent=2))
    return EXIT_OK


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="tmlsr", description="Client of the TMLSR-Ray super-resolution service.")
    root.add_argument("--server", default=os.environ.get("TMLSR_SERVER", DEFAULT_SERVER),
                      help="service address (default $TMLSR_SERVER, else %(default)s)")
    root.add_argument("--token", default=os.environ.get("TMLSR_API_TOKEN"),
                      help="API token (default $TMLSR_API_TOKEN)")
    commands = root.add_subparsers(dest="command", required=True)
    submit = commands.add_parser("submit", help="submit a task")
    submit.add_argument("url")
    submit.add_argument("--type", choices=["video", "image"])
    submit.add_argument("--model")
    submit.add_argument("--outscale", type=float)
    submit.add_argument("--output-magnification", dest="output_magnification", type=float)
    submit.add_argument("--output-dims", dest="output_dims", type=int, nargs=2, metavar=("WIDTH", "HEIGHT"))
    submit.add_argument("--resolution", type=int)
    submit.add_argument("--idempotency-key", dest="idempotency_key")
    submit.add_argument("--wait", action="store_true", help="follow the task with a progress bar until it ends")
    submit.add_argument("--interval", type=float, default=1.0, help=argparse.SUPPRESS)
    for name in ("status", "cancel"):
        command = commands.add_parser(name, help=f"{name} of a task")
        command.add_argument("task_id")
    commands.add_parser("stats", help="system statistics and recent tasks")
    commands.add_parser("serve", help="run the service here (the same as `make run`)")
    return root


def main(argv: Optional[List[str]] = None) -> int:
    args = parser().parse_args(argv)
    try:
        return run(args)
    except CliError as exc:
        print(f"tmlsr: {exc}", file=sys.stderr)
        return exc.code


if __name__ == "__main__":
    sys.exit(main())
