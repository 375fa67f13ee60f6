"""The operator's Redis connections: one asyncio client per (URL, password, key prefix).

Two hundred BlueQueues on one Redis share one connection pool. A client whose password
changed (the Secret was rotated) is a different key, and the old one is closed when no
BlueQueue uses it any more.

redis.asyncio's pool refuses a command ("Too many connections", 100 by default) rather than
wait when every connection is in use, and the ticks of many BlueQueues fall together (created
together, or back from a Redis outage on the same back-off): so at most `MAX_IN_FLIGHT` calls
per client are in flight, and the others wait their turn.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TypeVar

from blueque.aio import AsyncClient, AsyncQueue
from blueque.aio.io import AsyncRedisClient, AsyncRunner
from blueque.steps import Steps

T = TypeVar("T")
MAX_IN_FLIGHT = 32
"""Calls (each one round trip, or a few) in flight on one client, at most."""


@dataclass(frozen=True)
class Endpoint:
    url: str
    password: str | None
    key_prefix: str

    def __repr__(self) -> str:  # never the password
        return f"Endpoint({self.url!r}, key_prefix={self.key_prefix!r})"


class _BoundedRunner(AsyncRunner):
    def __init__(self, redis: AsyncRedisClient, slots: int) -> None:
        super().__init__(redis)
        self._slots = asyncio.Semaphore(slots)

    async def run(self, steps: Steps[T]) -> T:
        async with self._slots:
            return await super().run(steps)


class _BoundedClient(AsyncClient):
    def _start(self) -> None:
        self.runner = _BoundedRunner(self.redis, MAX_IN_FLIGHT)


class RedisLinks:
    def __init__(self) -> None:
        self._clients: dict[Endpoint, AsyncClient] = {}
        self._users: dict[Endpoint, set[str]] = {}

    def queue(self, endpoint: Endpoint, queue: str, user: str) -> AsyncQueue:
        """The queue on that endpoint for `user` (a BlueQueue UID); raises the library's
        ConfigError for a URL it cannot use."""
        client = self._clients.get(endpoint)
        if client is None:
            client = self._clients[endpoint] = _BoundedClient(
                endpoint.url, password=endpoint.password, namespace=endpoint.key_prefix
            )
        self._users.setdefault(endpoint, set()).add(user)
        return client.get_queue(queue)

    async def release(self, endpoint: Endpoint, user: str) -> None:
        users = self._users.get(endpoint)
        if users is None:
            return
        users.discard(user)
        if not users:
            del self._users[endpoint]
            client = self._clients.pop(endpoint, None)
            if client is not None:
                await client.close()

    async def close(self) -> None:
        clients = list(self._clients.values())
        self._clients.clear()
        self._users.clear()
        for client in clients:
            await client.close()
