"""Naming the key behind a Redis data error.

When a key of a queue holds what the protocol cannot read (a task hash replaced by a string,
a counter that is not a number), Redis answers a script or a command with `WRONGTYPE ...`,
`hash value is not an integer` or a Lua error, none of which names the key. Here, on that
failure path only, the keys the call touched (and the task hashes and worker keys they lead
to) are checked against the layout of PROTOCOL.md, and the error becomes a
`CorruptKeyError` (`CorruptTaskError` for a task hash) that names the key. The check costs
round trips only after a failure, never on the normal path.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

import redis.exceptions

from blueque.config import check_setting
from blueque.errors import ConfigError, CorruptKeyError, CorruptTaskError
from blueque.execution import Runner
from blueque.keys import key_type
from blueque.steps import Call, Steps, batch, raise_first

T = TypeVar("T")

# What Redis answers when a key holds the wrong type or a field is not a number; inside a
# script or a function, also Lua's own errors about what a call returned
# (`user_script:N: ...`, `user_function:N: ...`).
_DATA_ERROR = re.compile(
    r"^(WRONGTYPE|.*not an integer|.*not a valid float|user_(script|function):\d+:)"
)
# A script's own refusal, which names the key: `blueque: <key> <what is wrong>`.
_NAMED = re.compile(r"^blueque: (?P<key>\S+) (?P<problem>.*)$", re.S)
_INTEGER = re.compile(r"-?[0-9]{1,18}")
_TASK_NUMBERS = (
    "attempts",
    "retries",
    "pid",
    "enqueued_at",
    "queued_at",
    "due_at",
    "started_at",
    "finished_at",
    "progress_at",
)
_MEMBERS_CHECKED = 20  # task ids or worker ids followed per list or set


def is_data_error(exc: BaseException) -> bool:
    """A failure caused by what a key holds (not by the connection, memory or the cluster)."""
    if type(exc) is not redis.exceptions.ResponseError:
        return False
    return bool(_DATA_ERROR.match(str(exc))) or _named(str(exc)) is not None


def _named(message: str) -> tuple[str, str] | None:
    match = _NAMED.match(message)
    if match is None or key_type(match["key"]) is None:
        return None
    return match["key"], match["problem"]


def naming(action: str, keys: Sequence[str], steps: Steps[T]) -> Steps[T]:
    """The steps, with a data error turned into a `CorruptKeyError` naming the key."""
    try:
        return (yield from steps)
    except redis.exceptions.ResponseError as exc:
        error = yield from corrupt_key_error(action, keys, exc)
        if error is None:
            raise
        raise error from exc


@contextlib.contextmanager
def naming_keys(client: Any, action: str, keys: Sequence[str]) -> Iterator[None]:
    """`naming` for a block of direct redis-py calls (the worker's own)."""
    try:
        yield
    except redis.exceptions.ResponseError as exc:
        error = Runner(client).run(corrupt_key_error(action, keys, exc))
        if error is None:
            raise
        raise error from exc


def corrupt_key_error(
    action: str, keys: Sequence[str], exc: BaseException
) -> Steps[CorruptKeyError | None]:
    """The `CorruptKeyError` for a data error of a call that touched `keys`; None when `exc`
    is no data error. When no key is found to blame, the error keeps Redis's message."""
    if not is_data_error(exc):
        return None
    named = _named(str(exc))
    if named:
        return _error(action, *named)
    return (yield from blame(action, keys, str(exc)))


def blame(action: str, keys: Sequence[str], detail: str) -> Steps[CorruptKeyError]:
    """The `CorruptKeyError` for an answer that could not be read (`detail`): names the
    first key among `keys` (and those they lead to) that does not hold what it should."""
    found = yield from _find(keys)
    if found is None:
        return CorruptKeyError(f"{action} failed on corrupt data: {detail}")
    return _error(action, *found)


def _error(action: str, key: str, problem: str) -> CorruptKeyError:
    is_task = key.rpartition("}:")[2].startswith("task:")
    kind = CorruptTaskError if is_task else CorruptKeyError
    return kind(f"{action} failed: key {key} {problem}", key)


def _find(keys: Sequence[str]) -> Steps[tuple[str, str] | None]:
    try:
        return (yield from _check([k for k in dict.fromkeys(keys) if key_type(k)], follow=2))
    except redis.exceptions.RedisError:
        return None  # the check itself failed (e.g. the connection): nothing to add


def _check(keys: list[str], follow: int) -> Steps[tuple[str, str] | None]:
    """The first of `keys` whose type or fields are wrong; then, `follow` levels deep, the
    keys their lists and sets name."""
    if not keys:
        return None
    kinds = raise_first((yield from batch([Call(("TYPE", key)) for key in keys])))
    actual = dict(zip(keys, kinds, strict=True))
    for key, kind in actual.items():
        if kind not in ("none", key_type(key)):
            return key, f"holds a {kind}, not a {key_type(key)}"
    hashes = [k for k, kind in actual.items() if kind == "hash"]
    contents = raise_first((yield from batch([Call(("HGETALL", key)) for key in hashes])))
    for key, fields in zip(hashes, contents, strict=True):
        problem = _hash_problem(key, fields)
        if problem is not None:
            return key, problem
    if follow:
        return (yield from _check((yield from _followed(actual)), follow - 1))
    return None


def _hash_problem(key: str, fields: dict[str, str]) -> str | None:
    rest = key.rpartition("}:")[2]
    if rest == "stats":
        numbers: Sequence[str] = list(fields)
    elif rest.startswith("task:"):
        numbers = _TASK_NUMBERS
    elif rest == "config":
        for name, value in fields.items():
            try:
                check_setting(name, value)
            except ConfigError as exc:
                if not str(exc).startswith("unknown"):  # unknown fields are never read
                    return f"holds an invalid setting: {exc}"
        return None
    else:
        return None
    for name in numbers:
        number = fields.get(name)
        if number and not _INTEGER.fullmatch(number):
            return f"field {name} is {number[:40]!r}: not an integer"
    return None


def _followed(actual: dict[str, str]) -> Steps[list[str]]:
    """The task hashes and worker keys that the lists and sets among `actual` lead to (a
    script finds those by itself, so they are not in its KEYS)."""
    calls: list[Call] = []
    sources: list[str] = []
    for key, kind in actual.items():
        if kind == "list":
            calls.append(Call(("LRANGE", key, 0, _MEMBERS_CHECKED - 1)))
        elif kind == "zset":
            calls.append(Call(("ZRANGE", key, 0, _MEMBERS_CHECKED - 1)))
        elif kind == "set" and key.endswith("}:workers"):
            calls.append(Call(("SRANDMEMBER", key, _MEMBERS_CHECKED)))
        else:
            continue
        sources.append(key)
    found: list[str] = []
    for key, members in zip(sources, raise_first((yield from batch(calls))), strict=True):
        prefix = key.rpartition("}:")[0] + "}:"
        for member in members:
            if key.endswith("}:workers"):
                found += [f"{prefix}worker:{member}", f"{prefix}worker:{member}:tasks"]
            else:
                found.append(f"{prefix}task:{member}")
    return [k for k in dict.fromkeys(found) if key_type(k) and k not in actual]
