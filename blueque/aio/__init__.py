"""Blueque for asyncio: `AsyncClient`, `AsyncQueue` and `AsyncTask` make the calls of
`Client`, `Queue` and `Task`, awaited, over `redis.asyncio`.

They run the very steps the sync client runs (`blueque.operations`, `blueque.protocol`):
the same scripts, keys, validation, records and errors; only the IO differs
(`blueque.aio.io`). Workers stay sync (they fork); producers, dashboards and the operator
use this.

    async with AsyncClient("redis://localhost:6379/0") as client:
        queue = client.get_queue("videos")
        task = await (await client.get_task(await queue.enqueue({"id": 42}))).wait(60)
"""

from blueque.aio.client import AsyncClient
from blueque.aio.io import AsyncEventStream, AsyncRunner
from blueque.aio.queue import AsyncQueue
from blueque.aio.task import AsyncTask

__all__ = ["AsyncClient", "AsyncEventStream", "AsyncQueue", "AsyncRunner", "AsyncTask"]
