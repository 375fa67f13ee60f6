"""The protocol without IO: every operation of the library is written once, as steps.

A step function is a generator that yields what it needs from Redis (one command, a
pipeline, one command on every primary) and receives the reply, or has the failure thrown
in at the `yield`, so it handles a Redis error where it would with a direct call. Its return
value is the operation's result. Runners do the IO and nothing else: `blueque.execution`
over a redis-py client, `blueque.aio` over `redis.asyncio`. Validation, key names, script
calls and their loading on first use, naming a corrupt key, mapping connection errors and
building records all live in the steps, so the sync and the asyncio clients cannot drift
apart.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, NamedTuple, TypeVar

T = TypeVar("T")


# Requests are named tuples, not frozen dataclasses: an operation makes several, and a frozen
# dataclass's __init__ sets each field through object.__setattr__ (about 10k instructions
# per task of the worker between this, ScriptCall and Begun).
class Call(NamedTuple):
    """One command, written as Redis spells it (`("HGETALL", key)`); the reply as redis-py
    returns it with Blueque's settings (decoded strings)."""

    args: tuple[Any, ...]


class Batch(NamedTuple):
    """Commands sent in one round trip, without MULTI (Redis runs them in order). The reply
    is one answer per command, with a failed command's exception in its place."""

    calls: tuple[Call, ...]


class Everywhere(NamedTuple):
    """One command on every primary of a Redis Cluster (on the one server otherwise): what
    is set up per server, like the function library. The reply is one answer per node, with
    a failed node's exception in its place."""

    call: Call


Request = Call | Batch | Everywhere


def routing_key(args: tuple[Any, ...]) -> str | None:
    """The key that places a command on a Cluster node, for the commands whose keys redis-py
    would ask the server for (COMMAND GETKEYS) on every call: a function call's first key, an
    XREAD's first stream. None for the others."""
    if args[0] == "FCALL":
        return str(args[3])
    if args[0] == "XREAD":
        return str(args[args.index("STREAMS") + 1])
    return None


Steps = Generator[Request, Any, T]


def command(*args: Any) -> Steps[Any]:
    """One command (for `yield from`)."""
    return (yield Call(args))


def batch(calls: list[Call]) -> Steps[list[Any]]:
    """Commands in one round trip (none: no round trip)."""
    if not calls:
        return []
    replies: list[Any] = yield Batch(tuple(calls))
    return list(replies)


def raise_first(replies: list[Any]) -> list[Any]:
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies
