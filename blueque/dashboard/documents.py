"""What the dashboard reads from Redis, and the JSON documents it serves.

Every document has the shape of the CLI's `--json` output for the same thing (it is built by
the same functions, `blueque.cli.output`), so a script can switch between `blueque info
--json` and `GET /api/info`. One difference, on purpose: user data (parameters, results,
progress, error messages and tracebacks) longer than the dashboard's cap is cut (`cap`),
since a page must never ship megabytes. Reads go through `blueque.aio` (the protocol's own
steps), a round trip per queue for counts, two more for workers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from blueque.aio import AsyncClient, AsyncQueue, AsyncTask
from blueque.cli.output import task_dict, worker_dict
from blueque.cli.queues import snapshot_dict
from blueque.errors import CorruptKeyError
from blueque.maintenance import QueueSnapshot, WorkerRow, valid_names
from blueque.records import QueueStats
from blueque.states import TaskState
from blueque.steps import Call, batch

FINISHED = (TaskState.COMPLETE, TaskState.FAILED, TaskState.CANCELLED)
CUT = "… (cut: {size} characters in all)"
SPARK_BUCKETS = 60
SPARK_BUCKET_S = 60


def cap(value: Any, limit: int) -> Any:
    """`value`, or when its JSON text is longer than `limit` characters, that text cut to
    `limit` with a note of its full size (a string: the view shows it as text)."""
    if value is None or isinstance(value, bool | int | float):
        return value
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if len(text) <= limit:
        return value
    return text[:limit] + CUT.format(size=len(text))


def _cap_error(error: Any, limit: int) -> Any:
    if not isinstance(error, dict):
        return error
    return {k: cap(v, limit) if isinstance(v, str) else v for k, v in error.items()}


def task_doc(task: AsyncTask, limit: int) -> dict[str, Any]:
    """`blueque status ID --json`, with user data capped."""
    doc = task_dict(task)
    for name in ("parameters", "result", "progress"):
        doc[name] = cap(doc[name], limit)
    for name in ("error", "last_error"):
        doc[name] = _cap_error(doc[name], limit)
    return doc


def worker_doc(row: WorkerRow, limit: int) -> dict[str, Any]:
    """`blueque workers QUEUE --json` for one worker, with its task's progress capped."""
    doc = worker_dict(row)
    doc["progress"] = cap(doc["progress"], limit)
    return doc


async def queue_names(client: AsyncClient, names: Sequence[str] = ()) -> list[str]:
    """`names`, or every registered queue that has a valid name (a stray registry entry is
    skipped, as `blueque info` does)."""
    return list(names) if names else valid_names(await client.queues())


async def worker_rows(queue: AsyncQueue) -> tuple[WorkerRow, ...]:
    """Each worker with the task it holds: `blueque.maintenance.worker_rows`, awaited."""
    workers = await queue.workers()
    running = {t.id: t for t in await queue.get_tasks(w.task for w in workers if w.task)}
    return tuple(WorkerRow(w, running.get(w.task) if w.task else None) for w in workers)


async def snapshot(client: AsyncClient, names: Sequence[str] = ()) -> QueueSnapshot:
    """`blueque.maintenance.snapshot`, awaited: stats of the queues and their busy workers."""
    stats: list[QueueStats] = []
    busy: list[WorkerRow] = []
    errors: list[tuple[str, str]] = []
    for name in await queue_names(client, names):
        queue = client.get_queue(name)
        try:
            queue_stats = await queue.stats()
            rows = await worker_rows(queue) if queue_stats.workers else ()
        except CorruptKeyError as exc:
            errors.append((name, str(exc)))
            continue
        stats.append(queue_stats)
        busy += [row for row in rows if row.worker.task]
    return QueueSnapshot(tuple(stats), tuple(busy), tuple(errors))


def info_doc(snap: QueueSnapshot, limit: int) -> dict[str, Any]:
    """`blueque info --json`."""
    doc = snapshot_dict(snap)
    doc["running"] = [worker_doc(row, limit) for row in snap.running]
    return doc


async def queue_state(queue: AsyncQueue, limit: int) -> dict[str, Any]:
    """What a live page shows of one queue: its stats and every worker with the task it
    runs (attempts, progress, since when). Three round trips."""
    stats = await queue.stats()
    rows = await worker_rows(queue)
    workers = []
    for row in rows:
        doc = worker_doc(row, limit)
        task = row.task
        doc["attempts"] = task.attempts if task is not None else None
        doc["losses"] = task.losses if task is not None else None
        doc["cancel_requested"] = task.cancel_requested if task is not None else False
        workers.append(doc)
    return {"queue": queue.name, "stats": stats.as_dict(), "workers": workers}


async def sparks(queue: AsyncQueue, now_ms: int) -> dict[str, Any]:
    """Tasks finished complete and failed per minute over the last hour, counted in the
    finished indexes (scored by finish time): what retention kept, in one round trip."""
    start = now_ms - SPARK_BUCKETS * SPARK_BUCKET_S * 1000
    calls = []
    for state in (TaskState.COMPLETE, TaskState.FAILED):
        key = queue.keys.finished(state)
        for i in range(SPARK_BUCKETS):
            low = start + i * SPARK_BUCKET_S * 1000
            high = low + SPARK_BUCKET_S * 1000
            calls.append(Call(("ZCOUNT", key, low, f"({high}")))
    replies = await queue.run(batch(calls))
    counts = [r if isinstance(r, int) else 0 for r in replies]
    return {
        "queue": queue.name,
        "bucket_s": SPARK_BUCKET_S,
        "end_ms": now_ms,
        "complete": counts[:SPARK_BUCKETS],
        "failed": counts[SPARK_BUCKETS:],
    }


async def finished(
    queue: AsyncQueue, state: TaskState, error_type: str | None, scan: int
) -> list[AsyncTask]:
    """The newest `scan` tasks finished in `state`, newest first; with `error_type` only
    those whose error has that type."""
    tasks = await queue.tasks(state, scan)
    if not error_type:
        return tasks
    return [t for t in tasks if (t.error or {}).get("type") == error_type]


def error_types(tasks: Sequence[AsyncTask]) -> list[str]:
    return sorted({str(t.error["type"]) for t in tasks if t.error and t.error.get("type")})


async def recent_by_worker(queue: AsyncQueue, scan: int, per_worker: int) -> dict[str, list[Any]]:
    """Per worker, the tasks it finished most recently (id, state, finished_at), from the
    newest `scan` tasks of each finished index."""
    found: list[AsyncTask] = []
    for state in FINISHED:
        found += await queue.tasks(state, scan)
    found.sort(key=lambda t: t.finished_at.timestamp() if t.finished_at else 0, reverse=True)
    recent: dict[str, list[Any]] = {}
    for task in found:
        if task.worker is None:
            continue
        mine = recent.setdefault(task.worker, [])
        if len(mine) < per_worker:
            finished_at = task.finished_at.isoformat() if task.finished_at else None
            mine.append({"id": task.id, "state": task.status, "finished_at": finished_at})
    return recent
