"""Running steps (`blueque.steps`) over a redis-py client: the sync client's only IO.

`Runner.run` sends what the steps ask for and hands back the replies, or throws a failure
into them; everything else (scripts, errors, records) is decided by the steps. The asyncio
twin is `blueque.aio.io.AsyncRunner`.

On a standalone (or Sentinel) `redis.Redis`, commands and pipelines go straight to a
connection (`Connection.send_command`, `pack_commands`, `read_response`), with redis-py's
reply callbacks: what `execute_command` and a pipeline without MULTI do, without their
per-call bookkeeping (retries, which Blueque turns off, metrics, events, and checking a
connection out of the pool and back: together about 45 us of CPU per round trip). The
runner keeps one connection of the client's pool for itself; a second thread using the
runner meanwhile (the in-process runner's heartbeat), or a forked child, takes one from the
pool as redis-py would. A Cluster, and any other client class (fakeredis), goes through
redis-py's own calls.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from redis import Redis
from redis.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.utils import HIREDIS_AVAILABLE

from blueque.connection import RedisClient
from blueque.steps import Call, Everywhere, Request, Steps, routing_key

T = TypeVar("T")

# hiredis packs a whole command in C: 7 us for a worker's [finish, BLMOVE, begin] where
# redis-py's packer, which encodes argument by argument in Python, takes 30. redis-py uses
# hiredis only for replies when `HIREDIS_AVAILABLE` says so; so does this.
_hiredis_pack: Callable[[tuple[Any, ...]], bytes] | None = None
if HIREDIS_AVAILABLE:
    from hiredis import pack_command as _hiredis_pack


class Runner:
    def __init__(self, redis: RedisClient) -> None:
        self.redis = redis
        self._direct = type(redis) is Redis  # (a subclass may not talk to a socket at all)
        self._own: Any = None  # the connection this runner keeps, checked out of the pool
        self._own_pid = 0  # by this process (a forked child must not share its socket)
        self._own_lock = threading.Lock()

    def run(self, steps: Steps[T]) -> T:
        try:  # (what `with contextlib.closing(steps)` does, without making an object)
            request = next(steps)
            while True:
                try:
                    reply, error = self.serve(request), None
                except Exception as exc:  # thrown into the steps, which decide
                    reply, error = None, exc
                # (thrown outside the `except`: an error the steps raise is not chained to it)
                request = steps.send(reply) if error is None else steps.throw(error)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        finally:
            steps.close()

    def serve(self, request: Request) -> Any:
        execute: Any = self.redis.execute_command  # (untyped in redis-py)
        if isinstance(request, Call):
            if self._direct:
                reply = self._send([request])[0]
                if isinstance(reply, Exception):
                    raise reply
                return reply
            return execute(*request.args, **self._route(request.args))
        if isinstance(request, Everywhere):
            return self._everywhere(request.call)
        if self._direct:
            return self._send(request.calls)
        pipe = self.redis.pipeline(transaction=False)
        for call in request.calls:
            pipe.execute_command(*call.args, **self._route(call.args))
        return pipe.execute(raise_on_error=False)

    def _send(self, calls: Sequence[Call]) -> list[Any]:
        """The commands in one write, and one answer per command (a Redis error in its
        place), on this runner's own connection, or on one of the pool while another thread
        uses that."""
        assert isinstance(self.redis, Redis)
        pool = self.redis.connection_pool
        callbacks = self.redis.response_callbacks
        if not self._own_lock.acquire(blocking=False):
            conn = pool.get_connection()
            try:
                return _exchange(conn, calls, callbacks)
            finally:
                pool.release(conn)
        try:
            if self._own is None or self._own_pid != os.getpid():
                self._own, self._own_pid = pool.get_connection(), os.getpid()
            else:
                _fresh(self._own)
            return _exchange(self._own, calls, callbacks)
        finally:
            self._own_lock.release()

    def _route(self, args: tuple[Any, ...]) -> dict[str, Any]:
        """Where a Cluster sends a function call or an XREAD: the node of its first key.
        (redis-py would ask a server for their keys, COMMAND GETKEYS, on every call.)"""
        key = routing_key(args)
        if key is not None and isinstance(self.redis, RedisCluster):
            return {"target_nodes": self.redis.get_node_from_key(key)}  # type: ignore[no-untyped-call]
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


def _exchange(conn: Any, calls: Sequence[Call], callbacks: Any) -> list[Any]:
    """Sends the commands in one write and reads one answer per command, a Redis error in
    its place, as redis-py would with its reply `callbacks`. A connection that fails other
    than with a Redis error is closed (redis-py connects it again on its next use)."""
    try:
        conn.send_packed_command(_pack(conn, calls))
        replies: list[Any] = []
        for call in calls:
            try:
                reply = conn.read_response()
            except ResponseError as exc:
                replies.append(exc)
                continue
            callback = callbacks.get(call.args[0])
            replies.append(reply if callback is None else callback(reply))
        if getattr(conn, "should_reconnect", lambda: False)():
            conn.disconnect()  # (the server announced maintenance: the next use reconnects)
        return replies
    except BaseException:
        conn.disconnect()
        raise


def _pack(conn: Any, calls: Sequence[Call]) -> list[bytes]:
    """The commands as the bytes to send. hiredis writes text as strict UTF-8, redis-py's
    default; a connection set to encode otherwise, or an argument hiredis does not take (a
    bool, None: a caller's mistake), goes to redis-py's packer, which raises its own error."""
    encoder = conn.encoder
    if (
        _hiredis_pack is not None
        and encoder.encoding == "utf-8"
        and encoder.encoding_errors == "strict"
    ):
        try:
            return [b"".join([_hiredis_pack(call.args) for call in calls])]
        except TypeError:
            pass
    packed: list[bytes] = conn.pack_commands([call.args for call in calls])
    return packed


def _fresh(conn: Any) -> None:
    """What the pool checks before it lends a connection: one with something to read (the
    end of a connection the server closed, as a restarted server did) is connected anew."""
    try:
        stale = conn.can_read()
    except (RedisConnectionError, RedisTimeoutError, OSError):
        stale = True
    if stale:
        conn.disconnect()
