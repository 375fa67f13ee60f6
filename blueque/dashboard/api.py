"""The JSON API (documents shaped like the CLI's `--json`) and the actions.

Read routes: `/api/info`, `/api/queues`, `/api/queues/{queue}/workers|tasks|config|recent`,
`/api/tasks/{id}`, `/api/scaling`. Action routes (`--allow-actions` only; POST, checked by
`Guard.cross_site`): cancel and retry one task, retry the failed or cancelled tasks of a
queue that match a filter. A user mistake answers JSON `{"error": ...}` with a 4xx status,
Redis unavailable a 503.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from blueque.aio import AsyncQueue
from blueque.connection import redact
from blueque.dashboard import documents
from blueque.dashboard.state import dashboard, task_of
from blueque.errors import (
    ConnectionFailedError,
    CorruptKeyError,
    InvalidArgumentError,
    InvalidNameError,
    InvalidStateError,
    TaskNotFoundError,
)
from blueque.states import HELD, LISTABLE, TaskState

MAX_LIMIT = 1000
BULK_MAX = 1000
Handler = Callable[[Request], Awaitable[Response]]


def _status(exc: Exception) -> int:
    if isinstance(exc, TaskNotFoundError | InvalidNameError):
        return 404
    if isinstance(exc, InvalidStateError):
        return 409
    if isinstance(exc, InvalidArgumentError):
        return 400
    if isinstance(exc, CorruptKeyError):
        return 500
    return 503


def handled(handler: Handler) -> Handler:
    """Answers a known failure as JSON with its status instead of a traceback."""

    async def run(request: Request) -> Response:
        try:
            return await handler(request)
        except (
            TaskNotFoundError,
            InvalidNameError,
            InvalidStateError,
            InvalidArgumentError,
            CorruptKeyError,
            ConnectionFailedError,
        ) as exc:
            return JSONResponse({"error": redact(str(exc))}, status_code=_status(exc))

    return run


def queue_of(request: Request) -> AsyncQueue:
    return dashboard(request).client.get_queue(str(request.path_params["queue"]))


def _limit(request: Request, default: int = 50) -> int:
    raw = request.query_params.get("limit", str(default))
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise InvalidArgumentError(f"limit must be 1-{MAX_LIMIT}, got {raw!r}")
    return int(raw)


@handled
async def info(request: Request) -> Response:
    d = dashboard(request)
    names = request.query_params.getlist("queue")
    snap = await documents.snapshot(d.client, names)
    return JSONResponse(documents.info_doc(snap, d.settings.max_value_chars))


@handled
async def queues(request: Request) -> Response:
    return JSONResponse({"queues": await documents.queue_names(dashboard(request).client)})


@handled
async def workers(request: Request) -> Response:
    limit = dashboard(request).settings.max_value_chars
    rows = await documents.worker_rows(queue_of(request))
    return JSONResponse([documents.worker_doc(row, limit) for row in rows])


@handled
async def tasks(request: Request) -> Response:
    """`blueque tasks QUEUE --state STATE --limit N --json`."""
    queue = queue_of(request)
    state = request.query_params.get("state", "pending")
    limit = _limit(request)
    words = {s.value for s in (*LISTABLE, *HELD)}
    if state not in words:
        raise InvalidArgumentError(f"state must be one of {', '.join(sorted(words))}")
    if state in {s.value for s in HELD}:
        ids: list[str] = []
        for worker in await queue.workers():
            if state == TaskState.RUNNING:
                ids += [worker.task] if worker.task else []
            else:
                ids += [t for t in worker.holding if t != worker.task]
        found = await queue.get_tasks(ids[:limit])
    else:
        found = await queue.tasks(state, limit)
    cap = dashboard(request).settings.max_value_chars
    return JSONResponse([documents.task_doc(t, cap) for t in found])


@handled
async def config(request: Request) -> Response:
    return JSONResponse((await queue_of(request).config()).as_dict())


@handled
async def recent(request: Request) -> Response:
    scan = dashboard(request).settings.finished_scan
    found = await documents.recent_by_worker(queue_of(request), min(scan, 200), 5)
    return JSONResponse(found)


@handled
async def task(request: Request) -> Response:
    """`blueque status ID --json`."""
    found = await task_of(request)
    return JSONResponse(documents.task_doc(found, dashboard(request).settings.max_value_chars))


async def scaling(request: Request) -> Response:
    return JSONResponse(dashboard(request).hub.extras.get("scaling", {"enabled": False}))


# -- actions ---------------------------------------------------------------------------------


@handled
async def cancel(request: Request) -> Response:
    """`blueque cancel ID --json`."""
    found = await task_of(request)
    outcome = await found.cancel()
    return JSONResponse(
        {"id": found.id, "outcome": outcome, "state": (await found.refresh()).status}
    )


@handled
async def retry(request: Request) -> Response:
    """`blueque retry ID --json`."""
    found = await task_of(request)
    if found.status not in (TaskState.FAILED, TaskState.CANCELLED):
        raise InvalidStateError(
            f"task {found.id} is {found.status}: only failed or cancelled tasks can be retried"
        )
    await found.retry()
    return JSONResponse({"id": found.id, "state": "pending"})


async def json_body(request: Request) -> dict[str, str]:
    """A small JSON object body as text fields (none: empty)."""
    raw = await request.body()
    if not raw:
        return {}
    if len(raw) > 4096:
        raise InvalidArgumentError("request body too large")
    try:
        body = json.loads(raw)
    except ValueError:
        raise InvalidArgumentError("the request body is not JSON") from None
    if not isinstance(body, dict):
        raise InvalidArgumentError("the request body must be a JSON object")
    return {str(k): "" if v is None else str(v) for k, v in body.items()}


@handled
async def bulk_retry(request: Request) -> Response:
    """Retries the newest failed (or cancelled) tasks of a queue whose error type matches;
    query or JSON body fields `state` (failed by default), `error_type` (any), `limit`."""
    queue = queue_of(request)
    fields = {**request.query_params, **(await json_body(request))}
    state = fields.get("state", "failed")
    if state not in (TaskState.FAILED, TaskState.CANCELLED):
        raise InvalidArgumentError("state must be failed or cancelled")
    limit = min(int(fields["limit"]) if fields.get("limit", "").isdigit() else BULK_MAX, BULK_MAX)
    error_type = fields.get("error_type") or None
    matching = await documents.finished(queue, TaskState(state), error_type, limit)
    retried = 0
    for found in matching:
        try:
            await found.retry()
        except (InvalidStateError, TaskNotFoundError):
            continue  # retried, deleted or trimmed meanwhile
        retried += 1
    return JSONResponse(
        {"queue": queue.name, "state": state, "error_type": error_type, "retried": retried}
    )


READ_ROUTES = [
    Route("/api/info", info),
    Route("/api/queues", queues),
    Route("/api/queues/{queue}/workers", workers),
    Route("/api/queues/{queue}/tasks", tasks),
    Route("/api/queues/{queue}/config", config),
    Route("/api/queues/{queue}/recent", recent),
    Route("/api/tasks/{task_id}", task),
    Route("/api/scaling", scaling),
]
ACTION_ROUTES = [
    Route("/api/tasks/{task_id}/cancel", cancel, methods=["POST"]),
    Route("/api/tasks/{task_id}/retry", retry, methods=["POST"]),
    Route("/api/queues/{queue}/retry", bulk_retry, methods=["POST"]),
]
