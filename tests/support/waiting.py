"""Watching `Task.wait` from outside: the round trips a client's runner serves, a wait in a
thread of its own, and the clients a server has blocked in the XREAD of a wait."""

from __future__ import annotations

import inspect
import threading
from typing import Any

from redis.cluster import RedisCluster

from blueque import Client
from blueque.aio import AsyncClient
from blueque.steps import Batch, Call
from tests.support.aio import Blocking


def requests_of(bq: Any) -> list[Any]:
    """Records each request (a command, a pipeline) the runner of a client (`Client`, or a
    `Blocking` async one) serves from now on: each one is a round trip."""
    runner = bq.runner
    original = runner.serve
    requests: list[Any] = []

    if inspect.iscoroutinefunction(original):

        async def serve_async(request: Any) -> Any:
            requests.append(request)
            return await original(request)

        runner.serve = serve_async
    else:

        def serve(request: Any) -> Any:
            requests.append(request)
            return original(request)

        runner.serve = serve
    return requests


def calls_of(request: Any) -> list[Call]:
    return list(request.calls) if isinstance(request, Batch) else [request]


def shape(request: Any) -> tuple[str, ...]:
    """What a request sends: its commands' names, a function call by its script's name."""
    return tuple(
        str(c.args[1]).rpartition("_")[2] if c.args[0] == "FCALL" else str(c.args[0])
        for c in calls_of(request)
    )


def blocking_reads(requests: list[Any]) -> int:
    """How many XREADs among `requests` were sent to block."""
    return sum(c.args[:2] == ("XREAD", "BLOCK") for request in requests for c in calls_of(request))


def blocked_readers(client: Client, key: str) -> int:
    """Clients the server that holds `key` has blocked in an XREAD (a wait, past its await)."""
    redis: Any = client.redis
    if isinstance(redis, RedisCluster):
        redis = redis.get_node_from_key(key).redis_connection  # type: ignore[no-untyped-call]
    return sum(c["cmd"] == "xread" and "b" in c["flags"] for c in redis.client_list())


class Waiter(threading.Thread):
    """`Task.wait(**options)` of one task, on a client of its own (sync, or the asyncio one
    through `Blocking`), in a thread. Once joined: `task` or `error`, and the requests its
    client sent (from the wait's start)."""

    def __init__(self, url: str, task_id: str, *, aio: bool = False, **options: Any) -> None:
        super().__init__(daemon=True)
        self.url, self.task_id, self.aio, self.options = url, task_id, aio, options
        self.task: Any = None
        self.error: BaseException | None = None
        self.requests: list[Any] = []

    def run(self) -> None:
        client: Any = Blocking(AsyncClient(self.url)) if self.aio else Client(self.url)
        try:
            snapshot = client.get_task(self.task_id)
            self.requests = requests_of(client)
            self.task = snapshot.wait(**self.options)
        except BaseException as exc:  # handed to the test
            self.error = exc
        finally:
            client.close()

    def outcome(self, timeout_s: float = 10.0) -> Any:
        """The finished task, once the wait returned (its error raised here)."""
        self.join(timeout_s)
        assert not self.is_alive(), "the wait did not return"
        if self.error is not None:
            raise self.error
        return getattr(self.task, "wrapped", self.task)
