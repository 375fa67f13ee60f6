"""Following a queue's event channel with asyncio, on every topology (PROTOCOL.md "Events").

The channel is a sharded pub/sub channel in the queue's slot (`QueueKeys.events`), so one
node of a Redis Cluster carries it. redis-py's asyncio cluster pub/sub is not used: its
`listen()` fails, and `get_sharded_message` polls the nodes one after the other with the
timeout given, which delayed messages by a second or more (measured with redis-py 8.1 and
three masters). Instead the stream opens a plain connection to the node that owns the
channel's slot, with the cluster client's own connection settings (credentials, TLS,
timeouts), and blocks on it: one reader per channel, on its node, so a message arrives as
soon as Redis publishes it. Standalone and Sentinel clients subscribe on a connection of
their own pool. redis-py's asyncio pub/sub has sharded channels from version 8 on: older
versions get `ConfigError`.

When the slot moves to another node (a resharding), Redis ends the subscription with a
`sunsubscribe` push: the stream then refreshes the cluster's slot map, subscribes on the new
owner, counts a gap (`gaps`) and returns None from `next`, as for a timeout, so a caller
re-reads what it follows (which is what `Task.wait` and the dashboard do on None): events
published during the move may have been missed. A lost connection raises
`ConnectionFailedError`, as every other call does.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import Any

import redis.asyncio
import redis.asyncio.cluster
import redis.exceptions

from blueque.connection import redis_errors
from blueque.errors import ConfigError, ConnectionFailedError, RedisTimeoutError
from blueque.events import CONFIRM_TIMEOUT_S, event_of

AsyncRedisClient = redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster
MAX_MOVES = 5  # tries to subscribe on the new owner of a slot that moved


class AsyncEventStream:
    """A subscription to one queue's events (`async with`); entering waits for the server's
    confirmation, so nothing published after it is missed (see `blueque.events`)."""

    def __init__(self, redis: AsyncRedisClient, channel: str) -> None:
        self._redis = redis
        self._channel = channel
        self._pubsub: Any = None
        self._node: Any = None
        self.gaps = 0
        """Times the subscription moved to another node (events may have been missed)."""

    @property
    def node(self) -> str | None:
        """`host:port` of the cluster node this stream reads from (None: not a cluster)."""
        return None if self._node is None else f"{self._node.host}:{self._node.port}"

    async def __aenter__(self) -> AsyncEventStream:
        with redis_errors("subscribe to queue events"):
            try:
                await self._subscribe()
            except BaseException:
                await self._close()
                raise
        return self

    async def _subscribe(self) -> None:
        if isinstance(self._redis, redis.asyncio.cluster.RedisCluster):
            await self._redis.initialize()  # the slot map, once per client
            owner = self._redis.get_node_from_key(self._channel)
            if owner is None:
                raise ConnectionFailedError(f"no cluster node serves the slot of {self._channel}")
            # A client of its own on the owner, with the cluster's connection settings.
            kwargs = {k: v for k, v in owner.connection_kwargs.items() if k != "retry"}
            pool = redis.asyncio.ConnectionPool(
                connection_class=owner.connection_class, max_connections=1, **kwargs
            )
            self._node = owner
            self._pubsub = redis.asyncio.Redis(connection_pool=pool).pubsub()
            self._own_pool: Any = pool
        else:
            self._own_pool = None
            self._pubsub = self._redis.pubsub()
        if not hasattr(self._pubsub, "ssubscribe"):
            raise ConfigError("queue events with asyncio need redis-py 8 or newer")
        await self._pubsub.ssubscribe(self._channel)
        while (msg := await self._read(CONFIRM_TIMEOUT_S)) is not None:
            if msg.get("type") == "ssubscribe":
                return
        raise RedisTimeoutError("no subscribe confirmation from Redis within 5 s")

    async def _read(self, timeout: float) -> dict[str, Any] | None:
        msg: dict[str, Any] | None = await self._pubsub.get_message(
            ignore_subscribe_messages=False, timeout=timeout
        )
        return msg

    async def next(self, timeout: float | None) -> dict[str, Any] | None:
        """The next event, or None when `timeout` seconds pass without one, or when the
        subscription just moved to another node (`gaps`)."""
        with redis_errors("read queue events"):
            while True:
                msg = await self._read(timeout if timeout is not None else 3600)
                if msg is None:
                    return None
                kind = msg.get("type")
                if kind == "sunsubscribe" and self._node is not None:
                    await self._move()
                    return None
                if kind == "smessage":
                    return event_of(msg)

    async def _move(self) -> None:
        """The server ended the subscription: the slot moved. Subscribe on its new owner,
        once the slot map says who that is (a node that does not own it answers MOVED)."""
        assert isinstance(self._redis, redis.asyncio.cluster.RedisCluster)
        self.gaps += 1
        for attempt in range(MAX_MOVES):
            await self._close()
            await self._redis.nodes_manager.initialize()
            try:
                await self._subscribe()
                return
            except redis.exceptions.ResponseError:  # MOVED: the map is not settled yet
                await asyncio.sleep(0.1 * 2**attempt)
        raise RedisTimeoutError(f"could not follow {self._channel} to its new node")

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._close()

    async def _close(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        pool, self._own_pool = getattr(self, "_own_pool", None), None
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
        if pool is not None:
            with contextlib.suppress(Exception):
                await pool.aclose()

    def __aiter__(self) -> AsyncEventStream:
        return self

    async def __anext__(self) -> dict[str, Any]:
        """Events as they come (`async for event in stream`)."""
        while True:
            event = await self.next(None)
            if event is not None:
                return event
