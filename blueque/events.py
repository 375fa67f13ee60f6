"""Following a queue's event channel (sharded pub/sub, in the queue's slot).

Every transition script publishes one JSON event; see PROTOCOL.md "Events".
"""

from __future__ import annotations

import contextlib
import json
import threading
from types import TracebackType
from typing import Any

from blueque.connection import RedisClient, is_cluster, redis_errors
from blueque.errors import RedisTimeoutError

CONFIRM_TIMEOUT_S = 5.0


class SubscriberPool:
    """Idle pub/sub connections of one client, kept for its next `Queue.events()`.

    Opening one costs several round trips (connect, HELLO, CLIENT SETINFO...). A returned
    connection is sent its unsubscribe at once, so nothing accumulates on it while it is
    idle, but the server's confirmation (and whatever was published before the server read
    the unsubscribe) is read when the connection is taken again: the subscription that
    returns it does not wait for that round trip. Cluster pub/sub
    objects are not kept: they hold one connection per node and their unsubscribe
    bookkeeping is per node.
    """

    def __init__(self, redis: RedisClient, keep: int = 4) -> None:
        self._redis = redis
        self._keep = 0 if is_cluster(redis) else keep
        self._idle: list[Any] = []  # each unsubscribed, its confirmation not read yet
        self._lock = threading.Lock()

    def acquire(self) -> Any:
        while True:
            with self._lock:
                pubsub = self._idle.pop() if self._idle else None
            if pubsub is None:
                return self._redis.pubsub()  # type: ignore[no-untyped-call]
            try:
                if _await_reply(pubsub, "sunsubscribe"):
                    return pubsub
            except Exception:  # a broken connection is closed below, never reused
                pass
            with contextlib.suppress(Exception):
                pubsub.close()

    def release(self, pubsub: Any, channel: str) -> None:
        """Sends the unsubscribe and keeps the connection, or closes it when that fails or
        the pool is full."""
        with self._lock:
            full = len(self._idle) >= self._keep
        if not full:
            try:
                pubsub.sunsubscribe(channel)
                with self._lock:
                    self._idle.append(pubsub)
                return
            except Exception:  # a broken connection is closed below, never reused
                pass
        with contextlib.suppress(Exception):
            pubsub.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for pubsub in idle:
            with contextlib.suppress(Exception):
                pubsub.close()


def _await_reply(pubsub: Any, kind: str) -> bool:
    """Reads until the server confirms a (un)subscription; other messages are dropped."""
    while True:
        msg = pubsub.get_sharded_message(timeout=CONFIRM_TIMEOUT_S)
        if msg is None:
            return False
        if msg.get("type") == kind:
            return True


def event_of(msg: dict[str, Any] | None) -> dict[str, Any] | None:
    """The event a pub/sub message carries (None for anything else)."""
    if msg is None or msg.get("type") != "smessage":
        return None
    event: dict[str, Any] = json.loads(msg["data"])
    return event


class EventStream:
    """A subscription to one queue's events; use as a context manager.

    Entering waits for the server's subscribe confirmation, so whatever the caller reads
    from Redis afterwards cannot miss an event published after that read.
    """

    def __init__(
        self, redis: RedisClient, channel: str, pool: SubscriberPool | None = None
    ) -> None:
        self._pool = pool or SubscriberPool(redis, keep=0)
        self._channel = channel
        self._pubsub: Any = None

    def __enter__(self) -> EventStream:
        with redis_errors("subscribe to queue events"):
            self._pubsub = self._pool.acquire()
            try:
                self._pubsub.ssubscribe(self._channel)
                if not _await_reply(self._pubsub, "ssubscribe"):
                    raise RedisTimeoutError("no subscribe confirmation from Redis within 5 s")
            except BaseException:
                self._close()
                raise
        return self

    def next(self, timeout: float | None) -> dict[str, Any] | None:
        """The next event, or None when `timeout` seconds pass without one."""
        with redis_errors("read queue events"):
            msg = self._pubsub.get_sharded_message(
                ignore_subscribe_messages=True, timeout=timeout if timeout is not None else 3600
            )
        return event_of(msg)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._pubsub is None:
            return
        if exc_type is None:
            self._pool.release(self._pubsub, self._channel)
            self._pubsub = None
        else:
            self._close()

    def _close(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(Exception):
                pubsub.close()
