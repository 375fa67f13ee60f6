"""The operator's Redis connections: one asyncio client per (URL, password, key prefix).

Two hundred BlueQueues on one Redis share one connection pool. A client whose password
changed (the Secret was rotated) is a different key, and the old one is closed when no
BlueQueue uses it any more.
"""

from __future__ import annotations

from dataclasses import dataclass

from blueque.aio import AsyncClient, AsyncQueue


@dataclass(frozen=True)
class Endpoint:
    url: str
    password: str | None
    key_prefix: str

    def __repr__(self) -> str:  # never the password
        return f"Endpoint({self.url!r}, key_prefix={self.key_prefix!r})"


class RedisLinks:
    def __init__(self) -> None:
        self._clients: dict[Endpoint, AsyncClient] = {}
        self._users: dict[Endpoint, set[str]] = {}

    def queue(self, endpoint: Endpoint, queue: str, user: str) -> AsyncQueue:
        """The queue on that endpoint for `user` (a BlueQueue UID); raises the library's
        ConfigError for a URL it cannot use."""
        client = self._clients.get(endpoint)
        if client is None:
            client = self._clients[endpoint] = AsyncClient(
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
