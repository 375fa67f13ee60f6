"""The HTML views. Each page is rendered with what does not change while it is open (a
task's parameters, the finished tasks, the config's descriptions); `static/dashboard.js`
then follows the page's event stream (`/events`) and fills in what does.

Jinja2 escapes every value (autoescape), and user data is cut to the dashboard's cap before
it reaches a template; the script only ever sets text (`textContent`), never HTML.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from blueque.config import SCHEMA
from blueque.dashboard import documents
from blueque.dashboard.security import COOKIE
from blueque.dashboard.state import dashboard, task_of
from blueque.dashboard.stream import HEADERS, frames
from blueque.errors import (
    ConnectionFailedError,
    CorruptKeyError,
    InvalidNameError,
    TaskNotFoundError,
)
from blueque.keys import validate_queue_name
from blueque.states import TaskState

EVENT_TYPES = (
    "enqueued",
    "scheduled",
    "promoted",
    "started",
    "progress",
    "complete",
    "failed",
    "cancelled",
    "cancel_requested",
    "retry_scheduled",
    "retried",
    "requeued",
    "refused",
    "released",
    "dropped",
    "stale",
    "deleted",
    "drained",
    "undrained",
    "worker_removed",
)


def pretty(value: Any, limit: int) -> str:
    """A JSON value as indented text for a <pre>, cut to `limit` characters."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit] + documents.CUT.format(size=len(text))


def render(request: Request, template: str, status: int = 200, **context: Any) -> Response:
    d = dashboard(request)
    base = {
        "prefix": d.settings.prefix,
        "csrf": d.guard.csrf,
        "actions": d.settings.allow_actions,
        "auth": d.settings.token is not None,
        "queue": None,
        "task_id": None,
        "view": template.removesuffix(".html"),
    }
    return d.templates.TemplateResponse(request, template, {**base, **context}, status_code=status)


def _queue(request: Request) -> str:
    return validate_queue_name(str(request.path_params["queue"]))


def not_found(request: Request, message: str) -> Response:
    return render(request, "error.html", 404, title="Not found", message=message)


async def overview(request: Request) -> Response:
    return render(request, "overview.html", title="Queues")


async def running(request: Request) -> Response:
    try:
        name = _queue(request)
    except InvalidNameError as exc:
        return not_found(request, str(exc))
    return render(request, "running.html", title=f"{name}: running", queue=name)


async def workers(request: Request) -> Response:
    try:
        name = _queue(request)
    except InvalidNameError as exc:
        return not_found(request, str(exc))
    return render(request, "workers.html", title=f"{name}: workers", queue=name)


async def config(request: Request) -> Response:
    try:
        name = _queue(request)
    except InvalidNameError as exc:
        return not_found(request, str(exc))
    return render(request, "config.html", title=f"{name}: config", queue=name, schema=SCHEMA)


async def finished(request: Request) -> Response:
    d = dashboard(request)
    try:
        name = _queue(request)
    except InvalidNameError as exc:
        return not_found(request, str(exc))
    state_word = request.query_params.get("state", "complete")
    if state_word not in ("complete", "failed", "cancelled"):
        state_word = "complete"
    error_type = request.query_params.get("error") or None
    queue = d.client.get_queue(name)
    error = None
    try:
        every = await documents.finished(
            queue, TaskState(state_word), None, d.settings.finished_scan
        )
    except (ConnectionFailedError, CorruptKeyError) as exc:
        every, error = [], str(exc)
    shown = [t for t in every if error_type is None or (t.error or {}).get("type") == error_type]
    limit = 200
    rows = [
        {
            "id": t.id,
            "finished_at": t.finished_at.isoformat() if t.finished_at else "",
            "worker": t.worker or "",
            "attempts": t.attempts,
            "error": documents.cap(_error_line(t.error), 300),
            "result": documents.cap(_one_line(t.result), 200),
            "parameters": documents.cap(_one_line(t.parameters), 200),
            "retryable": t.status in (TaskState.FAILED, TaskState.CANCELLED),
        }
        for t in shown[:limit]
    ]
    return render(
        request,
        "finished.html",
        title=f"{name}: {state_word}",
        queue=name,
        state=state_word,
        error_type=error_type or "",
        error_types=documents.error_types(every),
        rows=rows,
        matching=len(shown),
        scanned=len(every),
        scan=d.settings.finished_scan,
        error=error,
    )


def _one_line(value: Any) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return " ".join(text.split())


def _error_line(error: Any) -> str:
    if not error:
        return ""
    kind, message = error.get("type", "Error"), error.get("message", "")
    return f"{kind}: {message}" if message else str(kind)


async def task(request: Request) -> Response:
    d = dashboard(request)
    try:
        found = await task_of(request)
    except (InvalidNameError, TaskNotFoundError) as exc:
        return not_found(request, str(exc))
    queue = d.client.get_queue(found.queue)
    try:
        max_attempts: int | None = (await queue.config()).max_attempts
    except (ConnectionFailedError, CorruptKeyError):
        max_attempts = None
    cap = d.settings.max_value_chars
    doc = documents.task_doc(found, cap)
    return render(
        request,
        "task.html",
        title=f"task {found.id}",
        queue=found.queue,
        task_id=found.id,
        task=doc,
        max_attempts=max_attempts,
        parameters=pretty(found.parameters, cap),
        result=pretty(found.result, cap),
        progress=pretty(found.progress, cap),
        error=_capped_error(found.error, cap),
        last_error=_capped_error(found.last_error, cap),
    )


def _capped_error(error: Any, limit: int) -> dict[str, str] | None:
    if not error:
        return None
    return {k: pretty(v, limit) for k, v in error.items()}


async def feed(request: Request) -> Response:
    return render(request, "feed.html", title="Live events", event_types=EVENT_TYPES)


async def scaling(request: Request) -> Response:
    return render(request, "scaling.html", title="Scaling")


async def events(request: Request) -> Response:
    """The page's event stream: `?queue=NAME` (repeatable) follows those queues, none all;
    `?extra=scaling` adds the scaling view's document."""
    d = dashboard(request)
    names = request.query_params.getlist("queue")
    try:
        for name in names:
            validate_queue_name(name)
    except InvalidNameError as exc:
        return Response(str(exc), status_code=400, media_type="text/plain")
    listener = d.hub.register(names or None, request.query_params.getlist("extra"))
    return StreamingResponse(
        frames(d.hub, listener, d.settings.keepalive_s),
        media_type="text/event-stream",
        headers=HEADERS,
    )


async def healthz(request: Request) -> Response:
    return Response("ok\n", media_type="text/plain")


async def login(request: Request) -> Response:
    d = dashboard(request)
    if d.settings.token is None:
        return RedirectResponse(f"{d.settings.prefix}/", status_code=303)
    if request.method == "GET":
        return render(request, "login.html", title="Log in", failed=False)
    refused = d.guard.cross_site_login(request)
    if refused is not None:
        return render(request, "login.html", 403, title="Log in", failed=True, why=refused)
    raw = await request.body()
    fields = parse_qs(raw[:4096].decode(errors="replace"))
    presented = (fields.get("token") or [""])[0]
    if not d.guard.token_matches(presented):
        return render(request, "login.html", 401, title="Log in", failed=True, why="wrong token")
    response = RedirectResponse(f"{d.settings.prefix}/", status_code=303)
    response.set_cookie(
        COOKIE,
        d.guard.session,
        path=f"{d.settings.prefix}/",
        httponly=True,
        samesite="strict",
        secure=d.settings.secure_cookie,
    )
    return response


async def logout(request: Request) -> Response:
    d = dashboard(request)
    response = RedirectResponse(f"{d.settings.prefix}/login", status_code=303)
    response.delete_cookie(COOKIE, path=f"{d.settings.prefix}/")
    return response


ROUTES = [
    Route("/", overview),
    Route("/queues/{queue}", running),
    Route("/queues/{queue}/workers", workers),
    Route("/queues/{queue}/finished", finished),
    Route("/queues/{queue}/config", config),
    Route("/tasks/{task_id}", task),
    Route("/feed", feed),
    Route("/scaling", scaling),
    Route("/events", events),
    Route("/healthz", healthz),
    Route("/login", login, methods=["GET", "POST"]),
    Route("/logout", logout, methods=["POST"]),
]
