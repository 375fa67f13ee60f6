"""Following a queue's event channel (sharded pub/sub, in the queue's slot).

Every transition script publishes one JSON event; see PROTOCOL.md "Events".
"""

from __future__ import annotations

import json
from types import TracebackType
from typing import Any

from blueque.connection import redis_errors


class EventStream:
    """A subscription to one queue's events; use as a context manager.

    Entering waits for the server's subscribe confirmation, so whatever the caller reads
    from Redis afterwards cannot miss an event published after that read.
    """

    def __init__(self, redis: Any, channel: str) -> None:
        self._redis = redis
        self._channel = channel
        self._pubsub: Any = None

    def __enter__(self) -> EventStream:
        with redis_errors("subscribe to queue events"):
            self._pubsub = self._redis.pubsub()
            self._pubsub.ssubscribe(self._channel)
            while True:
                msg = self._pubsub.get_sharded_message(timeout=5.0)
                if msg is not None and msg.get("type") == "ssubscribe":
                    break
                if msg is None:
                    raise TimeoutError("no subscribe confirmation from Redis within 5 s")
        return self

    def next(self, timeout: float | None) -> dict[str, Any] | None:
        """The next event, or None when `timeout` seconds pass without one."""
        with redis_errors("read queue events"):
            msg = self._pubsub.get_sharded_message(
                ignore_subscribe_messages=True, timeout=timeout if timeout is not None else 3600
            )
        if msg is None or msg.get("type") != "smessage":
            return None
        event: dict[str, Any] = json.loads(msg["data"])
        return event

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._pubsub is not None:
            try:
                self._pubsub.close()
            finally:
                self._pubsub = None
