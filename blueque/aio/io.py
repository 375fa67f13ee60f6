"""The asyncio client's only IO: the `redis.asyncio` classes it connects with, running steps,
following a queue's event channel.

Everything else (validation, scripts and their NOSCRIPT fallback, naming corrupt keys,
mapping connection errors, building records) is in the steps it runs (`blueque.steps`),
shared with the sync client.
"""

from __future__ import annotations

import contextlib
from types import TracebackType
from typing import Any, TypeVar

import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.retry
import redis.asyncio.sentinel

from blueque.connection import Flavor, redis_errors
from blueque.errors import ConfigError, RedisTimeoutError
from blueque.events import CONFIRM_TIMEOUT_S, event_of
from blueque.steps import Call, Done, NextEvent, Outcome, Request, Steps, Subscribe

T = TypeVar("T")

ASYNC = Flavor(
    redis.asyncio.Redis,
    redis.asyncio.cluster.RedisCluster,
    redis.asyncio.sentinel.Sentinel,
    redis.asyncio.retry.Retry,
)
AsyncRedisClient = redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster


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
        async with contextlib.AsyncExitStack() as scope:
            scope.enter_context(contextlib.closing(steps))
            outcome = Outcome()
            while not isinstance(request := outcome.resume(steps), Done):
                try:
                    outcome = Outcome(await self.serve(request, scope))
                except Exception as exc:  # thrown into the steps, which decide
                    outcome = Outcome(error=exc)
            return request.value

    async def serve(self, request: Request, scope: contextlib.AsyncExitStack) -> Any:
        if isinstance(request, Subscribe):
            stream = AsyncEventStream(self.redis, request.channel)
            return await scope.enter_async_context(stream)
        if isinstance(request, NextEvent):
            return await request.subscription.next(request.timeout_s)
        if isinstance(request, Call):
            return await self.redis.execute_command(*request.args)
        pipe = self.redis.pipeline(transaction=False)
        for call in request.calls:
            pipe.execute_command(*call.args)
        return await pipe.execute(raise_on_error=False)


class AsyncEventStream:
    """A subscription to one queue's events (`async with`); entering waits for the server's
    confirmation, as `blueque.events.EventStream` does."""

    def __init__(self, redis: AsyncRedisClient, channel: str) -> None:
        if not hasattr(redis, "pubsub"):  # redis-py < 8 has no asyncio Cluster pub/sub
            raise ConfigError("events of an asyncio Cluster client need redis-py 8 or newer")
        self._redis = redis
        self._channel = channel
        self._pubsub: Any = None

    async def __aenter__(self) -> AsyncEventStream:
        with redis_errors("subscribe to queue events"):
            if isinstance(self._redis, redis.asyncio.cluster.RedisCluster):
                await self._redis.initialize()  # its slot map routes the subscription
            self._pubsub = self._redis.pubsub()
            try:
                await self._pubsub.ssubscribe(self._channel)
                while (msg := await self._read(False, CONFIRM_TIMEOUT_S)) is not None:
                    if msg.get("type") == "ssubscribe":
                        return self
                raise RedisTimeoutError("no subscribe confirmation from Redis within 5 s")
            except BaseException:
                await self._close()
                raise

    async def next(self, timeout: float | None) -> dict[str, Any] | None:
        """The next event, or None when `timeout` seconds pass without one."""
        with redis_errors("read queue events"):
            msg = await self._read(True, timeout if timeout is not None else 3600)
        return event_of(msg)

    async def _read(self, ignore_subscribe: bool, timeout: float) -> dict[str, Any] | None:
        # A cluster's pub/sub reads its shard channels through its own method.
        read = getattr(self._pubsub, "get_sharded_message", self._pubsub.get_message)
        msg: dict[str, Any] | None = await read(
            ignore_subscribe_messages=ignore_subscribe, timeout=timeout
        )
        return msg

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._close()

    async def _close(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    def __aiter__(self) -> AsyncEventStream:
        return self

    async def __anext__(self) -> dict[str, Any]:
        """Events as they come (`async for event in stream`)."""
        while True:
            event = await self.next(None)
            if event is not None:
                return event
