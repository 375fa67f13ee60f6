"""How the CLI shows things: human times and JSON documents (the tables are in `tables.py`).

Pure functions of library records (`Task`, `QueueStats`, `WorkerInfo`), so they are tested
without Redis. People get tables with ages like "3m12s"; scripts get `--json`, whose
documents hold full ISO timestamps and numbers of seconds instead. Nothing here imports
rich: `blueque worker` loads this module's neighbours, never the table library.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import click

from blueque.maintenance import WorkerRow
from blueque.records import ErrorInfo, TaskSnapshot


def format_duration(seconds: float | None) -> str:
    """A short human duration: 0.4s, 12s, 3m12s, 2h05m, 3d04h; '-' when unknown."""
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def since(moment: datetime | None, now: datetime | None = None) -> float | None:
    if moment is None:
        return None
    return ((now or datetime.now(UTC)) - moment).total_seconds()


def format_age(moment: datetime | None, now: datetime | None = None) -> str:
    """'3m12s ago' for the past, 'in 12s' for the future, '-' when unknown."""
    delta = since(moment, now)
    if delta is None:
        return "-"
    return f"in {format_duration(-delta)}" if delta < 0 else f"{format_duration(delta)} ago"


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def compact(value: Any, limit: int = 60) -> str:
    """A JSON value on one line, cut to `limit` characters; '-' for None."""
    if value is None:
        return "-"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def error_line(error: ErrorInfo | None) -> str:
    if not error:
        return "-"
    kind, message = error.get("type", "Error"), error.get("message", "")
    return f"{kind}: {message}" if message else kind


# -- JSON documents -------------------------------------------------------------------------


def task_dict(task: TaskSnapshot) -> dict[str, Any]:
    return {
        "id": task.id,
        "queue": task.queue,
        "state": task.status,
        "attempts": task.attempts,
        "retries": task.retries,
        "worker": task.worker,
        "pid": task.pid,
        "parameters": task.parameters,
        "result": task.result,
        "error": task.error,
        "last_error": task.last_error,
        "progress": task.progress,
        "progress_at": iso(task.progress_at),
        "cancel_requested": task.cancel_requested,
        "enqueued_at": iso(task.enqueued_at),
        "queued_at": iso(task.queued_at),
        "due_at": iso(task.due_at),
        "started_at": iso(task.started_at),
        "finished_at": iso(task.finished_at),
        "runtime_s": task.runtime_s,
        "corrupt": task.corrupt,
    }


def worker_dict(row: WorkerRow) -> dict[str, Any]:
    worker, task = row.worker, row.task
    doc = worker.as_dict()
    doc["busy_for_s"] = since(worker.task_started_at) if worker.task else None
    doc["heartbeat_age_s"] = since(worker.heartbeat_at)
    doc["progress"] = task.progress if task is not None else None
    return doc


def echo_json(document: Any) -> None:
    click.echo(json.dumps(document, indent=2, ensure_ascii=False, default=str))


def task_detail(task: TaskSnapshot) -> str:
    """The one thing worth knowing about a task in a list, by state."""
    if task.corrupt:
        return task.corrupt
    if task.status == "failed" or (task.status == "cancelled" and task.error):
        return error_line(task.error)
    if task.status == "complete":
        return compact(task.result, 50)
    if task.status == "scheduled":
        due = f"due {format_age(task.due_at)}"
        if task.retries:
            return f"{due}, retry {task.retries}: {error_line(task.last_error)}"
        return due
    if task.status == "running" and task.progress is not None:
        return f"progress {compact(task.progress, 40)}"
    return compact(task.parameters, 50)
