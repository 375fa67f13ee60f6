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
from blueque.steps import Call, Done, NextEvent, Outcome, Request, Steps, Subscribe

T = TypeVar("T")


class Runner:
    def __init__(self, redis: RedisClient, subscribers: SubscriberPool | None = None) -> None:
        self.redis = redis
        self.subscribers = subscribers or SubscriberPool(redis, keep=0)

    def run(self, steps: Steps[T]) -> T:
        with contextlib.ExitStack() as scope, contextlib.closing(steps):
            outcome = Outcome()
            while not isinstance(request := outcome.resume(steps), Done):
                try:
                    outcome = Outcome(self.serve(request, scope))
                except Exception as exc:  # thrown into the steps, which decide
                    outcome = Outcome(error=exc)
            return request.value

    def serve(self, request: Request, scope: contextlib.ExitStack) -> Any:
        if isinstance(request, Subscribe):
            stream = EventStream(self.redis, request.channel, self.subscribers)
            return scope.enter_context(stream)
        if isinstance(request, NextEvent):
            return request.subscription.next(request.timeout_s)
        if isinstance(request, Call):
            return self.redis.execute_command(*request.args)  # type: ignore[no-untyped-call]
        pipe = self.redis.pipeline(transaction=False)
        for call in request.calls:
            pipe.execute_command(*call.args)
        return pipe.execute(raise_on_error=False)
