"""`Task`: a snapshot of one task's hash, with the operations a holder of its id may do.

A `Task` never changes after it is read; `refresh()` and `wait()` return new snapshots. The
reserved state (claimed by a worker, not yet begun) is not visible in a task's own hash,
which still says `pending`; `QueueStats.reserved` and `Queue.workers()` show it.
`TaskSnapshot` is the data and its reading, shared with `blueque.aio.AsyncTask`; the
operations are the queue's (`blueque.operations`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Self, cast

from blueque.errors import CorruptTaskError, DetachedTaskError
from blueque.records import ErrorInfo, error_from, from_ms
from blueque.serialization import decode
from blueque.states import FINISHED, TaskState

if TYPE_CHECKING:
    from blueque.queue import Queue

_STATES = frozenset(TaskState) - {TaskState.CORRUPT}  # the stored ones (compare as words)


@dataclass(frozen=True)
class TaskSnapshot:
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


@dataclass(frozen=True)
class Task(TaskSnapshot):
    def _q(self) -> Queue:
        return cast("Queue", self._bound())

    def refresh(self) -> Task:
        return self._q().get_task(self.id)

    def wait(self, timeout: float | None = None, *, raise_on_failure: bool = False) -> Task:
        """Blocks until the task finishes; returns the finished snapshot.

        One round trip: the `await` script marks the task as waited for, and a blocking read
        of the task's done stream returns when the transition that finishes it writes there
        (with a copy of the task, so it is not read again). `timeout` (s) raises
        `WaitTimeoutError`; `raise_on_failure` raises `TaskFailedError` for a task that did
        not complete; a task deleted meanwhile raises `TaskNotFoundError`.
        """
        queue = self._q()
        return queue.run(queue.ops.wait(self.id, timeout, raise_on_failure))

    def cancel(self) -> str:
        return self._q().cancel(self.id)

    def retry(self) -> None:
        self._q().retry(self.id)

    def delete(self) -> None:
        self._q().delete(self.id)

    def set_progress(self, progress: Any) -> bool:
        """Records progress (any JSON value) while this attempt runs in its worker; False if
        it no longer does (the task was requeued or finished)."""
        queue = self._q()
        return queue.run(queue.ops.set_progress(self, progress))
