"""The rich tables and views of the CLI, for people (`--json` is in `output.py`).

Imported by the commands that print them, when they run: rich costs tens of milliseconds to
import, and `blueque worker` (the entry point of every worker container) prints no table.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from blueque.cli.app import describe
from blueque.cli.output import compact, error_line, format_age, format_duration, since, task_detail
from blueque.maintenance import QueueSnapshot, WorkerRow
from blueque.records import QueueStats
from blueque.task import Task

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


def queues_table(stats: Sequence[QueueStats]) -> Table:
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
    rows: Sequence[WorkerRow], title: str = "Workers", show_queue: bool = False
) -> Table:
    columns = ["WORKER", "STATE", "TASK", "FOR", "PROGRESS", "HEARTBEAT", "HOST", "PID"]
    if show_queue:
        columns.insert(1, "QUEUE")
    table = _table(title, *columns)
    for worker, task in ((row.worker, row.task) for row in rows):
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


def render_snapshot(snap: QueueSnapshot) -> RenderableType:
    """`blueque info`: the queues, then what runs where."""
    parts: list[RenderableType] = [queues_table(list(snap.stats))]
    parts += [Text(f"{name}: {error}", style="red") for name, error in snap.errors]
    if snap.running:
        parts += [Text(""), workers_table(snap.running, "Running tasks", show_queue=True)]
    return Group(*parts)


def watch_live(read: Callable[[], QueueSnapshot], interval: float) -> None:
    """Redraws every `interval`; while Redis is unreachable it says so and keeps trying."""
    with Live(Text("connecting…"), console=console(), auto_refresh=False) as live:
        last: RenderableType | None = None
        while True:
            try:
                last = render_snapshot(read())
                live.update(last, refresh=True)
            except Exception as exc:
                message = describe(exc)
                if message is None:
                    raise
                note = Text(f"{message} (retrying)", style="red")
                live.update(Group(last, note) if last else note, refresh=True)
            time.sleep(interval)
