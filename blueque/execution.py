"""Running steps (`blueque.steps`) over a redis-py client: the sync client's only IO.

`Runner.run` sends what the steps ask for and hands back the replies, or throws a failure
into them; everything else (scripts, errors, records) is decided by the steps. The asyncio
twin is `blueque.aio.io.AsyncRunner`.
"""

from __future__ import annotations

import contextlib
from typing import Any, TypeVar

from blueque.connection import RedisClient
from blueque.events import EventStream, SubscriberPool
from blueque.steps import Batch, Call, Done, NextEvent, Request, Steps, Subscribe, resume

T = TypeVar("T")


class Runner:
    def __init__(self, redis: RedisClient, subscribers: SubscriberPool | None = None) -> None:
        self.redis = redis
        self.subscribers = subscribers or SubscriberPool(redis, keep=0)

    def run(self, steps: Steps[T]) -> T:
        with contextlib.ExitStack() as scope:
            stream: EventStream | None = None
            reply: Any = None
            error: Exception | None = None
            try:
                while not isinstance(request := resume(steps, reply, error), Done):
                    reply, error = None, None
                    try:
                        if isinstance(request, Subscribe):
                            stream = EventStream(self.redis, request.channel, self.subscribers)
                            scope.enter_context(stream)
                        elif isinstance(request, NextEvent):
                            assert stream is not None, "NextEvent before Subscribe"
                            reply = stream.next(request.timeout_s)
                        else:
                            reply = self.send(request)
                    except Exception as exc:  # thrown into the steps, which decide
                        error = exc
            finally:
                steps.close()
            return request.value

    def send(self, request: Request) -> Any:
        if isinstance(request, Call):
            return self.redis.execute_command(*request.args)  # type: ignore[no-untyped-call]
        assert isinstance(request, Batch)
        pipe = self.redis.pipeline(transaction=False)
        for call in request.calls:
            pipe.execute_command(*call.args)
        return pipe.execute(raise_on_error=False)
