"""`Task`: a snapshot of one task's hash, with the operations a holder of its id may do.

A `Task` never changes after it is read; `refresh()` and `wait()` return new snapshots. The
reserved state (claimed by a worker, not yet begun) is not visible in a task's own hash,
which still says `pending`; `QueueStats.reserved` and `Queue.workers()` show it.
`blueque.records.TaskSnapshot` is the data and its reading, shared with
`blueque.aio.AsyncTask`. Each operation runs the steps of its name (`blueque.operations`) on
the queue the task was read from, known here only as a `TaskQueue` (what a task needs of
it), so that this module does not import the queue's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast

from blueque.operations import QueueOperations
from blueque.records import TaskSnapshot
from blueque.steps import Steps

T = TypeVar("T")


class TaskQueue(Protocol):
    """The queue a `Task` was read from (a `blueque.Queue`): its operations and their runner."""

    ops: QueueOperations[Task]

    def run(self, steps: Steps[T]) -> T: ...


@dataclass(frozen=True)
class Task(TaskSnapshot):
    def _q(self) -> TaskQueue:
        return cast(TaskQueue, self._bound())

    def refresh(self) -> Task:
        queue = self._q()
        return queue.run(queue.ops.get_task(self.id))

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
        queue = self._q()
        return queue.run(queue.ops.cancel(self.id))

    def retry(self) -> None:
        queue = self._q()
        queue.run(queue.ops.retry(self.id))

    def delete(self) -> None:
        queue = self._q()
        queue.run(queue.ops.delete(self.id))

    def set_progress(self, progress: Any) -> bool:
        """Records progress (any JSON value) while this attempt runs in its worker; False if
        it no longer does (the task was requeued or finished)."""
        queue = self._q()
        return queue.run(queue.ops.set_progress(self, progress))
