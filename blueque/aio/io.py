"""The asyncio client's only IO: the `redis.asyncio` classes it connects with, running steps,
following a queue's event channel (`blueque.aio.events`).

Everything else (validation, scripts and how they are loaded, naming corrupt keys,
mapping connection errors, building records) is in the steps it runs (`blueque.steps`),
shared with the sync client.
"""

from __future__ import annotations

from typing import Any, TypeVar

import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.retry
import redis.asyncio.sentinel

from blueque.aio.events import AsyncEventStream
from blueque.connection import Flavor
from blueque.steps import Call, Everywhere, Request, Steps, routing_key

T = TypeVar("T")

ASYNC = Flavor(
    redis.asyncio.Redis,
    redis.asyncio.cluster.RedisCluster,
    redis.asyncio.sentinel.Sentinel,
    redis.asyncio.retry.Retry,
)
AsyncRedisClient = redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster
__all__ = ["ASYNC", "AsyncEventStream", "AsyncRedisClient", "AsyncRunner", "aclose"]


async def aclose(client: AsyncRedisClient) -> None:
    """Closes a client, and the connections to the sentinels a Sentinel client made."""
    pool = getattr(client, "connection_pool", None)
    manager = getattr(pool, "sentinel_manager", None)
    await client.aclose()
    for sentinel in getattr(manager, "sentinels", ()):
        await sentinel.aclose()


class AsyncRunner:
    """Runs steps over a `redis.asyncio` client: `blueque.execution.Runner`, awaited."""

    def __init__(self, redis: AsyncRedisClient) -> None:
        self.redis = redis

    async def run(self, steps: Steps[T]) -> T:
        try:  # (what `with contextlib.closing(steps)` does, without making an object)
            request = next(steps)
            while True:
                try:
                    reply, error = await self.serve(request), None
                except Exception as exc:  # thrown into the steps, which decide
                    reply, error = None, exc
                # (thrown outside the `except`: an error the steps raise is not chained to it)
                request = steps.send(reply) if error is None else steps.throw(error)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        finally:
            steps.close()

    async def serve(self, request: Request) -> Any:
        if isinstance(self.redis, redis.asyncio.cluster.RedisCluster):
            await self.redis.initialize()  # its map of slots and nodes, for `_route`
        if isinstance(request, Call):
            return await self.redis.execute_command(*request.args, **self._route(request.args))
        if isinstance(request, Everywhere):
            return await self._everywhere(request.call)
        pipe = self.redis.pipeline(transaction=False)
        for call in request.calls:
            pipe.execute_command(*call.args, **self._route(call.args))
        return await pipe.execute(raise_on_error=False)

    def _route(self, args: tuple[Any, ...]) -> dict[str, Any]:
        """As `blueque.execution.Runner._route`: a function call goes to its first key's node."""
        key = routing_key(args)
        if key is not None and isinstance(self.redis, redis.asyncio.cluster.RedisCluster):
            return {"target_nodes": self.redis.get_node_from_key(key)}
        return {}

    async def _everywhere(self, call: Call) -> list[Any]:
        cluster = isinstance(self.redis, redis.asyncio.cluster.RedisCluster)
        nodes = self.redis.get_primaries() if cluster else [None]  # type: ignore[union-attr]
        replies: list[Any] = []
        for node in nodes:
            target = {} if node is None else {"target_nodes": node}
            try:
                replies.append(await self.redis.execute_command(*call.args, **target))
            except Exception as exc:  # one answer per node, as a Batch has one per command
                replies.append(exc)
        return replies
