"""Read-only views of what is in Redis: task snapshots, queue stats, workers."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Literal, Self, TypedDict, TypeVar, cast

from blueque.errors import (
    CorruptTaskError,
    DetachedTaskError,
    InvalidArgumentError,
    InvalidNameError,
)
from blueque.keys import queue_of_task
from blueque.serialization import decode
from blueque.states import FINISHED, TaskState

WorkerState = Literal["busy", "reserved", "draining", "idle"]
T = TypeVar("T")


class ErrorInfo(TypedDict, total=False):
    """How a failure is stored (JSON object in the task hash's `error` field)."""

    type: str
    message: str
    traceback: str
    signal: str


def from_ms(value: str | int | None) -> datetime | None:
    """A time stored as Unix milliseconds; `ValueError` for anything that is not one."""
    if value in (None, ""):
        return None
    try:
        return datetime.fromtimestamp(int(value) / 1000, tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        raise InvalidArgumentError(f"{str(value)[:40]!r} is not a time in ms") from None


def error_from(value: Any) -> ErrorInfo | None:
    """A decoded `error` field as an `ErrorInfo` whose fields are strings, whatever another
    client stored there (a bare string, numbers, nested values): views show it as it is."""
    if value is None:
        return None
    if not isinstance(value, dict):
        return {"type": "Error", "message": _text(value)}
    info: dict[str, str] = {}
    for name in ("type", "message", "traceback", "signal"):
        if value.get(name) is not None:
            info[name] = _text(value[name])
    return cast(ErrorInfo, info)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        return "(not shown: nested too deeply)"


_STATES = frozenset(TaskState) - {TaskState.CORRUPT}  # the stored ones (compare as words)


@dataclass(frozen=True)
class TaskSnapshot:
    """One task's hash as read: the data and its reading, which `blueque.Task` and
    `blueque.aio.AsyncTask` share; each adds the operations, sync or awaited."""

    id: str
    queue: str
    status: TaskState
    parameters: Any
    attempts: int
    result: Any = None
    error: ErrorInfo | None = None
    last_error: ErrorInfo | None = None
    worker: str | None = None
    pid: int | None = None
    retries: int = 0
    losses: int = 0
    progress: Any = None
    cancel_requested: bool = False
    enqueued_at: datetime | None = None
    queued_at: datetime | None = None
    due_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    progress_at: datetime | None = None
    corrupt: str | None = None
    """Only in lists and views (`partial`): why some fields could not be read (they are left
    at their defaults; `status` is 'corrupt' when the state itself is unreadable)."""
    _queue: Any = field(default=None, repr=False, compare=False)
    """The queue (`Queue` or `AsyncQueue`) whose operations this snapshot offers."""

    @classmethod
    def from_hash(
        cls, queue: Any, task_id: str, h: dict[str, str], *, partial: bool = False
    ) -> Self:
        """The snapshot a task hash describes; `CorruptTaskError` if a field cannot be read.
        With `partial` (lists and views), such a field is left at its default instead and
        `corrupt` says why, so one bad task never hides the others."""
        problems: list[str] = []

        def read(name: str, parse: Callable[[Any], Any], default: Any = None) -> Any:
            raw = h.get(name)
            try:
                return parse(raw) if raw not in (None, "") else default
            except (CorruptTaskError, ValueError) as exc:
                problems.append(str(exc) if isinstance(exc, CorruptTaskError) else f"{name}: {exc}")
                return default

        state = h.get("state")
        if state not in _STATES or "parameters" not in h:
            problems.append(f"state={state!r}, fields={sorted(h)[:20]}")
        task = cls(
            id=task_id,
            queue=queue.name,
            status=TaskState(state) if state in _STATES else TaskState.CORRUPT,
            parameters=read("parameters", lambda raw: decode(raw, "parameters")),
            attempts=read("attempts", int, 0),
            result=read("result", lambda raw: decode(raw, "result")),
            error=read("error", lambda raw: error_from(decode(raw, "error"))),
            last_error=read("last_error", lambda raw: error_from(decode(raw, "last_error"))),
            worker=h.get("worker") or None,
            pid=read("pid", int),
            retries=read("retries", int, 0),
            losses=read("losses", int, 0),
            progress=read("progress", lambda raw: decode(raw, "progress")),
            cancel_requested=h.get("cancel_requested") == "1",
            enqueued_at=read("enqueued_at", from_ms),
            queued_at=read("queued_at", from_ms),
            due_at=read("due_at", from_ms),
            started_at=read("started_at", from_ms),
            finished_at=read("finished_at", from_ms),
            progress_at=read("progress_at", from_ms),
            corrupt="; ".join(problems) or None,
            _queue=queue,
        )
        if task.corrupt and not partial:
            raise CorruptTaskError(
                f"task {task_id} is corrupt: {task.corrupt}", queue.keys.task(task_id)
            )
        return task

    @classmethod
    def running(cls, queue: Any, task_id: str, parameters: Any, attempts: int, worker: str) -> Self:
        """The snapshot of a task its worker has just begun: what the task function gets.
        Built without the dataclass's `__init__`, which sets each of the 24 fields of a frozen
        instance through `object.__setattr__` (5 us per task; this takes 1)."""
        task = cls.__new__(cls)
        task.__dict__.update(
            _DEFAULTS,
            id=task_id,
            queue=queue.name,
            status=TaskState.RUNNING,
            parameters=parameters,
            attempts=attempts,
            worker=worker,
            _queue=queue,
        )
        return task

    @classmethod
    def unreadable(cls, queue: Any, task_id: str, reason: str) -> Self:
        """A partial snapshot of a task whose hash cannot be read at all (e.g. a key of
        another type where the hash should be)."""
        return cls(task_id, queue.name, TaskState.CORRUPT, None, 0, corrupt=reason, _queue=queue)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def runtime_s(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.finished_at or datetime.now(self.started_at.tzinfo)
        return (end - self.started_at).total_seconds()

    def _bound(self) -> Any:
        if self._queue is None:
            raise DetachedTaskError("this Task was built without a queue; use Client.get_task")
        return self._queue


# The snapshot's fields that have a default: all but id, queue, status, parameters and
# attempts. (Task and AsyncTask add operations, no fields.)
_DEFAULTS = {f.name: f.default for f in fields(TaskSnapshot) if f.default is not MISSING}


@dataclass(frozen=True)
class QueueStats:
    """One queue's figures, all read in one round trip (see the `stats` script)."""

    queue: str
    pending: int
    reserved: int
    running: int
    scheduled: int
    complete: int
    failed: int
    cancelled: int
    workers: int
    draining: int
    oldest_pending_age_s: float | None
    totals: dict[str, int] = field(default_factory=dict)

    @property
    def demand(self) -> int:
        """Tasks that need a worker now: waiting (pending + reserved) and running."""
        return self.pending + self.reserved + self.running

    def as_dict(self) -> dict[str, Any]:
        return {
            "queue": self.queue,
            "pending": self.pending,
            "reserved": self.reserved,
            "running": self.running,
            "scheduled": self.scheduled,
            "complete": self.complete,
            "failed": self.failed,
            "cancelled": self.cancelled,
            "workers": self.workers,
            "draining": self.draining,
            "oldest_pending_age_s": self.oldest_pending_age_s,
            "totals": dict(self.totals),
        }


TOTALS = (
    "enqueued",
    "started",
    "completed",
    "failed",
    "cancelled",
    "requeued",
    "retried",
    "promoted",
    "refused",
    "stale",
    "released",
    "dropped",
)


def parse_stats(queue: str, reply: list[Any]) -> QueueStats:
    now_ms, pending, scheduled, complete, failed, cancelled, workers, draining, head_at, flat = (
        reply
    )
    counters = {k: int(v) for k, v in zip(flat[::2], flat[1::2], strict=True)}
    running = counters.get("running", 0)
    live = counters.get("live", 0)
    head = int(head_at)
    return QueueStats(
        queue=queue,
        pending=int(pending),
        reserved=max(0, live - int(pending) - int(scheduled) - running),
        running=running,
        scheduled=int(scheduled),
        complete=int(complete),
        failed=int(failed),
        cancelled=int(cancelled),
        workers=int(workers),
        draining=int(draining),
        oldest_pending_age_s=None if head < 0 else max(0.0, (int(now_ms) - head) / 1000),
        totals={name: counters.get(name, 0) for name in TOTALS},
    )


@dataclass(frozen=True)
class WorkerInfo:
    """A registered worker, as its registry hash and in-progress list describe it."""

    id: str
    queue: str
    host: str | None
    pid: int | None
    pod: str | None
    runner: str | None
    started_at: datetime | None
    heartbeat_at: datetime | None
    alive: bool
    draining: bool
    task: str | None
    task_started_at: datetime | None
    holding: tuple[str, ...]
    pod_uid: str | None = None
    """The pod's UID and the owning BlueQueue's UID, as the operator injected them."""
    owner: str | None = None

    @property
    def state(self) -> WorkerState:
        if self.task:
            return "busy"
        if self.holding:
            return "reserved"
        return "draining" if self.draining else "idle"

    def as_dict(self) -> dict[str, Any]:
        def iso(d: datetime | None) -> str | None:
            return d.isoformat() if d else None

        return {
            "id": self.id,
            "queue": self.queue,
            "state": self.state,
            "host": self.host,
            "pid": self.pid,
            "pod": self.pod,
            "pod_uid": self.pod_uid,
            "owner": self.owner,
            "runner": self.runner,
            "started_at": iso(self.started_at),
            "heartbeat_at": iso(self.heartbeat_at),
            "alive": self.alive,
            "draining": self.draining,
            "task": self.task,
            "task_started_at": iso(self.task_started_at),
            "holding": list(self.holding),
        }


@dataclass(frozen=True)
class WorkerObservation:
    """One worker id as `observe` saw it: every registered worker, and every drain mark of an
    id that is not registered (a pod still starting, or a worker gone while drained)."""

    id: str
    owner: str | None
    pod_uid: str | None
    task: str | None
    """The head of the worker's in-progress list: the task it holds (reserved or running)."""
    begun: bool
    """The task was begun: it is `running` on this worker. False: only claimed (reserved)."""
    task_started_at: datetime | None
    draining: bool
    registered: bool
    alive: bool
    """Its alive key exists: its heartbeat has not expired."""
    heartbeat_ttl_ms: int | None


@dataclass(frozen=True)
class QueueObservation:
    """What an operator reads of a queue each tick, in one round trip (the `observe` script).

    `running` is the stats gauge (tasks begun and not finished), `reserved` is counted as
    `QueueStats.reserved` is; `server_time_ms` is the Redis server's clock (Unix ms) when it
    was read, so ages compare with the times the scripts write whatever the local clock."""

    queue: str
    pending: int
    scheduled: int
    running: int
    reserved: int
    server_time_ms: int
    workers: tuple[WorkerObservation, ...]

    @property
    def server_time(self) -> datetime:
        return datetime.fromtimestamp(self.server_time_ms / 1000, tz=UTC)


def parse_observation(queue: str, reply: list[Any]) -> QueueObservation:
    """The `observe` script's answer; `ValueError` when a counter is not a number."""
    now_ms, pending, scheduled, running, live, workers = reply
    pending, scheduled, running = int(pending), int(scheduled), int(running)
    return QueueObservation(
        queue=queue,
        pending=pending,
        scheduled=scheduled,
        running=running,
        reserved=max(0, int(live) - pending - scheduled - running),
        server_time_ms=int(now_ms),
        workers=tuple(_observed_worker(row) for row in workers),
    )


def _observed_worker(row: list[Any]) -> WorkerObservation:
    wid, registered, draining, alive, owner, pod_uid, ttl_ms, task, begun, started_at = row
    return WorkerObservation(
        id=str(wid),
        owner=owner or None,
        pod_uid=pod_uid or None,
        task=task or None,
        begun=int(begun) == 1,
        task_started_at=_lenient(from_ms, started_at),
        draining=int(draining) == 1,
        registered=int(registered) == 1,
        alive=int(alive) == 1,
        heartbeat_ttl_ms=_lenient(int, ttl_ms),
    )


@dataclass(frozen=True)
class OwnerClaim:
    """The queue's ownership claim after `claim_owner`: who holds it, whether that is the
    caller, and how long it lasts unless renewed (`inf`: a claim without a TTL, written by
    hand)."""

    holder: str
    acquired: bool
    ttl_s: float


def parse_owner_claim(owner: str, reply: list[Any]) -> OwnerClaim:
    holder, ttl_ms = str(reply[0]), int(reply[1])
    return OwnerClaim(holder, holder == owner, math.inf if ttl_ms < 0 else ttl_ms / 1000)


def parse_worker(
    queue: str, worker_id: str, fields: dict[str, str], holding: list[str], alive: bool
) -> WorkerInfo:
    """A worker's registration as a view shows it: a field that does not parse (a hash
    written by another client, or by hand) reads as unknown, and the rest still shows."""
    return WorkerInfo(
        id=worker_id,
        queue=queue,
        host=fields.get("host") or None,
        pid=_lenient(int, fields.get("pid")),
        pod=fields.get("pod") or None,
        pod_uid=fields.get("pod_uid") or None,
        owner=fields.get("owner") or None,
        runner=fields.get("runner") or None,
        started_at=_lenient(from_ms, fields.get("started_at")),
        heartbeat_at=_lenient(from_ms, fields.get("heartbeat_at")),
        alive=alive,
        draining=fields.get("draining") == "1",
        task=_task_of(queue, fields.get("task")),
        task_started_at=_lenient(from_ms, fields.get("task_started_at")),
        holding=tuple(t for t in holding if _task_of(queue, t)),
    )


def _task_of(queue: str, task_id: str | None) -> str | None:
    try:
        return task_id if task_id and queue_of_task(task_id) == queue else None
    except InvalidNameError:
        return None


def _lenient(parse: Callable[[Any], T], raw: str | None) -> T | None:
    if not raw:
        return None
    try:
        return parse(raw)
    except (TypeError, ValueError):
        return None
