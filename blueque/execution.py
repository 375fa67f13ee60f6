"""Running steps (`blueque.steps`) over a redis-py client: the sync client's only IO.

`Runner.run` sends what the steps ask for and hands back the replies, or throws a failure
into them; everything else (scripts, errors, records) is decided by the steps. The asyncio
twin is `blueque.aio.io.AsyncRunner`.
"""

from __future__ import annotations

import contextlib
from typing import Any, TypeVar

from redis.cluster import RedisCluster

from blueque.connection import RedisClient
from blueque.events import EventStream, SubscriberPool
from blueque.steps import Call, Done, Everywhere, NextEvent, Outcome, Request, Steps, Subscribe

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
        execute: Any = self.redis.execute_command  # (untyped in redis-py)
        if isinstance(request, Call):
            return execute(*request.args, **self._route(request.args))
        if isinstance(request, Everywhere):
            return self._everywhere(request.call)
        pipe = self.redis.pipeline(transaction=False)
        for call in request.calls:
            pipe.execute_command(*call.args, **self._route(call.args))
        return pipe.execute(raise_on_error=False)

    def _route(self, args: tuple[Any, ...]) -> dict[str, Any]:
        """Where a Cluster sends a function call: the node of its first key. (redis-py would
        ask a server for an FCALL's keys, COMMAND GETKEYS, on every call.)"""
        if args[0] == "FCALL" and isinstance(self.redis, RedisCluster):
            return {"target_nodes": self.redis.get_node_from_key(args[3])}  # type: ignore[no-untyped-call]
        return {}

    def _everywhere(self, call: Call) -> list[Any]:
        execute: Any = self.redis.execute_command
        nodes: list[Any] = [None]
        if isinstance(self.redis, RedisCluster):
            nodes = self.redis.get_primaries()  # type: ignore[no-untyped-call]
        replies: list[Any] = []
        for node in nodes:
            target = {} if node is None else {"target_nodes": node}
            try:
                replies.append(execute(*call.args, **target))
            except Exception as exc:  # one answer per node, as a Batch has one per command
                replies.append(exc)
        return replies
