"""`AsyncQueue`: `blueque.Queue` for asyncio. Every method runs the same steps as the `Queue`
method of its name (`blueque.operations`), awaited; see there for what each one does."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from blueque.aio.io import AsyncEventStream
from blueque.aio.task import AsyncTask
from blueque.config import QueueConfig
from blueque.operations import QueueFace
from blueque.records import OwnerClaim, QueueObservation, QueueStats, WorkerInfo
from blueque.states import TaskState
from blueque.steps import Steps

if TYPE_CHECKING:
    from blueque.aio.client import AsyncClient

T = TypeVar("T")


class AsyncQueue(QueueFace[AsyncTask]):
    client: AsyncClient
    task_type = AsyncTask

    async def run(self, steps: Steps[T]) -> T:
        return await self.client.runner.run(steps)

    async def enqueue(self, parameters: Any) -> str:
        return await self.run(self.ops.enqueue(parameters))

    async def enqueue_many(self, parameters: Iterable[Any]) -> list[str]:
        return await self.run(self.ops.enqueue_many(parameters))

    async def schedule(
        self, parameters: Any, *, eta: datetime | None = None, delay: float | None = None
    ) -> str:
        return await self.run(self.ops.schedule(parameters, eta, delay))

    async def get_task(self, task_id: str) -> AsyncTask:
        return await self.run(self.ops.get_task(task_id))

    async def wait(
        self, task_id: str, timeout: float | None = None, *, raise_on_failure: bool = False
    ) -> AsyncTask:
        """`Queue.wait`: waits for a task from its id alone, without reading it first."""
        return await self.run(self.ops.wait(task_id, timeout, raise_on_failure))

    async def get_tasks(self, task_ids: Iterable[str]) -> list[AsyncTask]:
        return await self.run(self.ops.get_tasks(task_ids))

    async def tasks(self, state: TaskState | str, limit: int = 100) -> list[AsyncTask]:
        return await self.run(self.ops.tasks(state, limit))

    async def stats(self) -> QueueStats:
        return await self.run(self.ops.stats())

    async def workers(self) -> list[WorkerInfo]:
        return await self.run(self.ops.workers())

    async def observe(self) -> QueueObservation:
        return await self.run(self.ops.observe())

    def events(self) -> AsyncEventStream:
        """`async with queue.events() as events:` then `await events.next(timeout)` or
        `async for event in events`."""
        return AsyncEventStream(self.client.redis, self.keys.events)

    async def cancel(self, task_id: str) -> str:
        return await self.run(self.ops.cancel(task_id))

    async def retry(self, task_id: str) -> None:
        await self.run(self.ops.retry(task_id))

    async def delete(self, task_id: str) -> None:
        await self.run(self.ops.delete(task_id))

    async def purge(self, state: TaskState | str) -> int:
        return await self.run(self.ops.purge(state))

    async def config(self) -> QueueConfig:
        return await self.run(self.ops.config())

    async def set_config(self, **settings: Any) -> QueueConfig:
        return await self.run(self.ops.set_config(settings))

    async def drain(self, worker_id: str) -> bool:
        return await self.run(self.ops.drain(worker_id))

    async def undrain(self, worker_id: str) -> bool:
        return await self.run(self.ops.undrain(worker_id))

    async def requeue_worker(self, worker_id: str, reason: str = "worker lost") -> tuple[int, int]:
        return await self.run(self.ops.requeue_worker(worker_id, reason))

    async def reap(self, reason: str = "worker heartbeat expired") -> tuple[int, int, int]:
        return await self.run(self.ops.reap(reason))

    async def promote_due(self, limit: int = 1000) -> tuple[int, int | None]:
        return await self.run(self.ops.promote_due(limit))

    async def claim_owner(self, owner: str, ttl_s: float) -> OwnerClaim:
        return await self.run(self.ops.claim_owner(owner, ttl_s))

    async def release_owner(self, owner: str) -> bool:
        return await self.run(self.ops.release_owner(owner))
