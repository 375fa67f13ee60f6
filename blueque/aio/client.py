"""`AsyncClient`: `blueque.Client` for asyncio, over `redis.asyncio`; the same constructor
(`blueque.client.ClientBase`: arguments and URL forms), the same scripts and keys, the same
errors."""

from __future__ import annotations

from blueque import operations
from blueque.aio.io import ASYNC, AsyncRedisClient, AsyncRunner, aclose
from blueque.aio.queue import AsyncQueue
from blueque.aio.task import AsyncTask
from blueque.client import ClientBase
from blueque.keys import queue_of_task
from blueque.records import QueueStats


class AsyncClient(ClientBase[AsyncRedisClient, AsyncQueue]):
    """`AsyncClient(hostname="localhost", port=6379, db=0)` or `AsyncClient("redis://...")`;
    every URL form of `Client` (TLS, Sentinel, Cluster). Connects on first use; close it
    with `await client.close()` or `async with AsyncClient(...) as client:`."""

    flavor = ASYNC
    queue_type = AsyncQueue

    def _start(self) -> None:
        self.runner = AsyncRunner(self.redis)

    async def get_task(self, task_id: str) -> AsyncTask:
        """The current snapshot of a task, from its id alone (the id names its queue)."""
        return await self.get_queue(queue_of_task(task_id)).get_task(task_id)

    async def wait(
        self, task_id: str, timeout: float | None = None, *, raise_on_failure: bool = False
    ) -> AsyncTask:
        """Waits for a task from its id alone (`Queue.wait`); returns it finished."""
        queue = self.get_queue(queue_of_task(task_id))
        return await queue.wait(task_id, timeout, raise_on_failure=raise_on_failure)

    async def queues(self) -> list[str]:
        return await self.runner.run(operations.queue_names(self.namespace))

    async def info(self) -> list[QueueStats]:
        """Stats of every queue: one round trip per queue."""
        return [await self.get_queue(name).stats() for name in await self.queues()]

    async def ping(self) -> bool:
        return await self.runner.run(operations.ping())

    async def close(self) -> None:
        await aclose(self.redis)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
