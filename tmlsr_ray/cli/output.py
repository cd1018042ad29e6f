"""What the CLI prints: JSON for scripts (``--json``), else short text and tables for people."""

from __future__ import annotations

import json
from typing import Any, Dict, List, Sequence

import click

from tmlsr_ray.cli.client import Submission, TaskView, shown_url


def print_json(document: Any) -> None:
    click.echo(json.dumps(document, indent=2))


def table(headers: Sequence[str], rows: List[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [["" if value is None else str(value) for value in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join("  ".join(value.ljust(width) for value, width in zip(row, widths)).rstrip() for row in cells)


def task_line(view: TaskView) -> str:
    """``ID  STATUS  OUTPUT-URL or ERROR``: a finished task in one line."""
    output = (view.get("output") or {}).get("url") or ""
    return "  ".join(part for part in (view["task_id"], view["status"], view.get("error") or output) if part)


def refusal_line(submission: Submission) -> str:
    return f"tmlsr: {shown_url(submission.url)}: {submission.error}"


def task_text(view: TaskView) -> str:
    params = view.get("params") or {}
    lines = [f"task    {view['task_id']}  {view['status']}  ({params.get('type')}, {params.get('model')})",
             f"input   {params.get('url')}"]
    for stage in view.get("stages", []):
        duration = f"{stage['duration']:.2f} s" if stage.get("duration") is not None else ""
        frames = (stage.get("detail") or {}).get("frames_total")
        done = f"{stage['detail']['frames_done']}/{frames} frames" if frames else ""
        lines.append("  ".join(part for part in (f"  {stage['name']:<8}", stage["status"], duration, done) if part))
    output = view.get("output") or {}
    if output.get("url"):
        facts = output.get("metadata") or {}
        size = f"{facts['width']}x{facts['height']}" if facts.get("width") else ""
        lines.append("  ".join(p for p in ("output ", output["url"], size, facts.get("format") or "") if p))
    elif output.get("expired"):
        lines.append("output  expired (retention)")
    if view.get("error"):
        lines.append(f"error   {view['error']}")
    return "\n".join(lines)


def stats_text(stats: Dict[str, Any]) -> str:
    system = stats["system"]
    counts = "  ".join(f"{status} {count}" for status, count in stats["stats"].items())
    recent = [(view["task_id"][:8], view["status"], (view.get("params") or {}).get("type"),
               (view.get("params") or {}).get("model"), view["created_at"]) for view in stats.get("tasks", [])]
    workers = f"workers {system['active_workers']} / {system['max_workers']} busy, {system['queue_size']} queued"
    return "\n".join([workers, counts, "", table(("TASK", "STATUS", "TYPE", "MODEL", "CREATED"), recent)])


def models_text(models: List[Dict[str, Any]]) -> str:
    rows = [(m["name"], m.get("family") or "-", m.get("architecture") or "-",
             f"x{m['scale']}" if m.get("scale") else ("any" if m.get("family") else "-"),
             "yes" if m.get("loaded") else "no", m.get("error") or "") for m in models]
    return table(("NAME", "FAMILY", "ARCHITECTURE", "SCALE", "LOADED", "ERROR"), rows)
