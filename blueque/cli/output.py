"""How the CLI shows things: human times, JSON documents, rich tables.

Pure functions of library records (`Task`, `QueueStats`, `WorkerInfo`), so they are tested
without Redis. People get tables with ages like "3m12s"; scripts get `--json`, whose
documents hold full ISO timestamps and numbers of seconds instead.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any

import click
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from blueque.records import ErrorInfo, QueueStats, WorkerInfo
from blueque.task import Task


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


def task_dict(task: Task) -> dict[str, Any]:
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


def worker_dict(worker: WorkerInfo, task: Task | None = None) -> dict[str, Any]:
    doc = worker.as_dict()
    doc["busy_for_s"] = since(worker.task_started_at) if worker.task else None
    doc["heartbeat_age_s"] = since(worker.heartbeat_at)
    doc["progress"] = task.progress if task is not None else None
    return doc


def echo_json(document: Any) -> None:
    click.echo(json.dumps(document, indent=2, ensure_ascii=False, default=str))


# -- tables ---------------------------------------------------------------------------------


def console() -> Console:
    """A console on the current stdout; wide when piped, so ids are never cut."""
    out = Console(file=sys.stdout)
    if not out.is_terminal:
        out = Console(file=sys.stdout, width=240)
    return out


class _PlainTable(Table):
    """A table whose cells are plain text: task data is never read as rich markup."""

    def add_row(self, *cells: RenderableType | None, **options: Any) -> None:
        super().add_row(*(Text(c) if isinstance(c, str) else c for c in cells), **options)


def _table(title: str | None, *columns: str) -> Table:
    table = _PlainTable(title=title, title_justify="left", box=None, header_style="bold")
    for name in columns:
        numeric = name in NUMERIC_COLUMNS
        table.add_column(name, justify="right" if numeric else "left", overflow="fold")
    return table


NUMERIC_COLUMNS = frozenset(
    {
        "PENDING",
        "RESERVED",
        "RUNNING",
        "SCHEDULED",
        "COMPLETE",
        "FAILED",
        "CANCELLED",
        "WORKERS",
        "DRAINING",
        "ATTEMPTS",
    }
)


def queues_table(stats: list[QueueStats]) -> Table:
    table = _table(
        "Queues",
        "QUEUE",
        "PENDING",
        "RESERVED",
        "RUNNING",
        "SCHEDULED",
        "COMPLETE",
        "FAILED",
        "CANCELLED",
        "WORKERS",
        "DRAINING",
        "OLDEST PENDING",
    )
    for s in stats:
        table.add_row(
            s.queue,
            str(s.pending),
            str(s.reserved),
            str(s.running),
            str(s.scheduled),
            str(s.complete),
            str(s.failed),
            str(s.cancelled),
            str(s.workers),
            str(s.draining),
            format_duration(s.oldest_pending_age_s),
        )
    if not stats:
        table.caption = "no queues yet"
    return table


def workers_table(
    rows: list[tuple[WorkerInfo, Task | None]], title: str = "Workers", show_queue: bool = False
) -> Table:
    columns = ["WORKER", "STATE", "TASK", "FOR", "PROGRESS", "HEARTBEAT", "HOST", "PID"]
    if show_queue:
        columns.insert(1, "QUEUE")
    table = _table(title, *columns)
    for worker, task in rows:
        state = worker.state if worker.alive else f"{worker.state} (dead?)"
        cells = [
            worker.id,
            state,
            worker.task or (", ".join(worker.holding) if worker.holding else "-"),
            format_duration(since(worker.task_started_at)) if worker.task else "-",
            compact(task.progress, 40) if task is not None else "-",
            format_age(worker.heartbeat_at),
            worker.pod or worker.host or "-",
            str(worker.pid) if worker.pid else "-",
        ]
        if show_queue:
            cells.insert(1, worker.queue)
        table.add_row(*cells)
    if not rows:
        table.caption = "no workers"
    return table


def tasks_table(tasks: list[Task], title: str) -> Table:
    table = _table(title, "ID", "STATE", "ATTEMPTS", "ENQUEUED", "WORKER", "FOR", "DETAIL")
    for task in tasks:
        table.add_row(
            task.id,
            f"{task.status} (corrupt)"
            if task.corrupt and task.status != "corrupt"
            else task.status,
            str(task.attempts),
            format_age(task.enqueued_at),
            task.worker or "-",
            format_duration(task.runtime_s),
            task_detail(task),
        )
    if not tasks:
        table.caption = "no tasks"
    return table


def task_detail(task: Task) -> str:
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


def task_view(task: Task) -> RenderableType:
    """`status`: every field of one task, then its traceback as plain text."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")

    def row(name: str, value: str | None) -> None:
        if value not in (None, "", "-"):
            grid.add_row(name, Text(value or ""))

    pending_cancel = task.cancel_requested and not task.finished
    state = task.status + (" (cancel requested)" if pending_cancel else "")
    row("id", task.id)
    row("queue", task.queue)
    row("state", state)
    row("corrupt", task.corrupt)
    row("attempts", str(task.attempts))
    row("retries", str(task.retries) if task.retries else None)
    row("worker", task.worker)
    row("pid", str(task.pid) if task.pid else None)
    if task.progress is not None:
        row("progress", f"{compact(task.progress, 200)} ({format_age(task.progress_at)})")
    row("enqueued", _when(task.enqueued_at))
    row("due", _when(task.due_at) if task.status == "scheduled" else None)
    row("started", _when(task.started_at))
    row("finished", _when(task.finished_at))
    row("runtime", format_duration(task.runtime_s) if task.started_at else None)
    row("parameters", compact(task.parameters, 400))
    if task.status == "complete":
        row("result", compact(task.result, 400))
    row("error", error_line(task.error) if task.error else None)
    if task.error and task.error.get("signal"):
        row("signal", task.error.get("signal"))
    row("last error", error_line(task.last_error) if task.last_error else None)
    parts: list[RenderableType] = [grid]
    traceback = (task.error or task.last_error or {}).get("traceback")
    if traceback:
        parts.append(Text("\n" + traceback.rstrip()))
    return Group(*parts)


def _when(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    local = moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    return f"{local} ({format_age(moment)})"
