"""`Task`: a snapshot of one task's hash, with the operations a holder of its id may do.

A `Task` never changes after it is read; `refresh()` and `wait()` return new snapshots. The
reserved state (claimed by a worker, not yet begun) is not visible in a task's own hash,
which still says `pending`; `QueueStats.reserved` and `Queue.workers()` show it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from blueque import bounds
from blueque.errors import CorruptTaskError, TaskFailedError, WaitTimeoutError
from blueque.records import ErrorInfo, from_ms
from blueque.serialization import decode, encode

if TYPE_CHECKING:
    from blueque.queue import Queue

STATES = ("scheduled", "pending", "reserved", "running", "complete", "failed", "cancelled")
FINISHED = frozenset({"complete", "failed", "cancelled"})


@dataclass(frozen=True)
class Task:
    id: str
    queue: str
    status: str
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
    _queue: Queue | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_hash(cls, queue: Queue, task_id: str, h: dict[str, str]) -> Task:
        state = h.get("state")
        if state not in STATES or "parameters" not in h:
            raise CorruptTaskError(
                f"task {task_id} is corrupt: state={state!r}, fields={sorted(h)}"
            )
        try:
            return cls(
                id=task_id,
                queue=queue.name,
                status=state,
                parameters=decode(h["parameters"], "parameters"),
                attempts=int(h.get("attempts") or 0),
                result=decode(h.get("result"), "result"),
                error=cast(ErrorInfo | None, decode(h.get("error"), "error")),
                last_error=cast(ErrorInfo | None, decode(h.get("last_error"), "last_error")),
                worker=h.get("worker") or None,
                pid=int(h["pid"]) if h.get("pid") else None,
                retries=int(h.get("retries") or 0),
                losses=int(h.get("losses") or 0),
                progress=decode(h.get("progress"), "progress"),
                cancel_requested=h.get("cancel_requested") == "1",
                enqueued_at=from_ms(h.get("enqueued_at")),
                queued_at=from_ms(h.get("queued_at")),
                due_at=from_ms(h.get("due_at")),
                started_at=from_ms(h.get("started_at")),
                finished_at=from_ms(h.get("finished_at")),
                progress_at=from_ms(h.get("progress_at")),
                _queue=queue,
            )
        except ValueError as exc:
            raise CorruptTaskError(f"task {task_id} is corrupt: {exc}") from exc

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def runtime_s(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.finished_at or datetime.now(self.started_at.tzinfo)
        return (end - self.started_at).total_seconds()

    def _q(self) -> Queue:
        if self._queue is None:
            raise RuntimeError("this Task was built without a queue; use Client.get_task")
        return self._queue

    def refresh(self) -> Task:
        return self._q().get_task(self.id)

    def wait(self, timeout: float | None = None, *, raise_on_failure: bool = False) -> Task:
        """Blocks until the task finishes; returns the finished snapshot.

        Subscribes to the queue's event channel before reading the state, so a transition
        that happens in between is not missed; then sleeps on the channel, not in a loop.
        """
        timeout = bounds.timeout(timeout)
        queue = self._q()
        deadline = None if timeout is None else time.monotonic() + timeout
        with queue.events() as events:
            task = self.refresh()
            while not task.finished:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise WaitTimeoutError(f"task {self.id} still {task.status} after {timeout} s")
                event = events.next(timeout=remaining if remaining is not None else 5.0)
                if event is None or event.get("task") == self.id:
                    task = self.refresh()
        if raise_on_failure and task.status != "complete":
            detail = task.error.get("message", "") if task.error else ""
            raise TaskFailedError(f"task {self.id} {task.status}: {detail}".rstrip(": "))
        return task

    def cancel(self) -> str:
        return self._q().cancel(self.id)

    def retry(self) -> None:
        self._q().retry(self.id)

    def delete(self) -> None:
        self._q().delete(self.id)

    def set_progress(self, progress: Any) -> bool:
        """Records progress (any JSON value) while this attempt runs in its worker; False if
        it no longer does (the task was requeued or finished)."""
        return self._q().transitions.set_progress(
            self.worker or "", self.id, self.attempts, encode(progress, "progress")
        )
