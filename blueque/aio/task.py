"""`AsyncTask`: a task snapshot whose operations are awaited (see `blueque.task.Task`). Its
queue is known here only as an `AsyncTaskQueue` (what a task needs of it), so that this
module does not import the queue's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast

from blueque.operations import QueueOperations
from blueque.records import TaskSnapshot
from blueque.steps import Steps

T = TypeVar("T")


class AsyncTaskQueue(Protocol):
    """The queue an `AsyncTask` was read from (a `blueque.aio.AsyncQueue`): its operations
    and their runner."""

    ops: QueueOperations[AsyncTask]

    async def run(self, steps: Steps[T]) -> T: ...


@dataclass(frozen=True)
class AsyncTask(TaskSnapshot):
    def _q(self) -> AsyncTaskQueue:
        return cast(AsyncTaskQueue, self._bound())

    async def refresh(self) -> AsyncTask:
        queue = self._q()
        return await queue.run(queue.ops.get_task(self.id))

    async def wait(
        self, timeout: float | None = None, *, raise_on_failure: bool = False
    ) -> AsyncTask:
        """Waits until the task finishes (one round trip: see `blueque.task.Task.wait`);
        returns the finished snapshot."""
        queue = self._q()
        return await queue.run(queue.ops.wait(self.id, timeout, raise_on_failure))

    async def cancel(self) -> str:
        queue = self._q()
        return await queue.run(queue.ops.cancel(self.id))

    async def retry(self) -> None:
        queue = self._q()
        await queue.run(queue.ops.retry(self.id))

    async def delete(self) -> None:
        queue = self._q()
        await queue.run(queue.ops.delete(self.id))

    async def set_progress(self, progress: Any) -> bool:
        queue = self._q()
        return await queue.run(queue.ops.set_progress(self, progress))
