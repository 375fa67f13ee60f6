"""`AsyncTask`: a task snapshot whose operations are awaited (see `blueque.task.Task`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from blueque.records import TaskSnapshot

if TYPE_CHECKING:
    from blueque.aio.queue import AsyncQueue


@dataclass(frozen=True)
class AsyncTask(TaskSnapshot):
    def _q(self) -> AsyncQueue:
        return cast("AsyncQueue", self._bound())

    async def refresh(self) -> AsyncTask:
        return await self._q().get_task(self.id)

    async def wait(
        self, timeout: float | None = None, *, raise_on_failure: bool = False
    ) -> AsyncTask:
        """Waits until the task finishes (one round trip: see `blueque.task.Task.wait`);
        returns the finished snapshot."""
        queue = self._q()
        return await queue.run(queue.ops.wait(self.id, timeout, raise_on_failure))

    async def cancel(self) -> str:
        return await self._q().cancel(self.id)

    async def retry(self) -> None:
        await self._q().retry(self.id)

    async def delete(self) -> None:
        await self._q().delete(self.id)

    async def set_progress(self, progress: Any) -> bool:
        queue = self._q()
        return await queue.run(queue.ops.set_progress(self, progress))
