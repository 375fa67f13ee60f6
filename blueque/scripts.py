"""The Lua scripts of the protocol and how one is called, as steps (`blueque.steps`).

Scripts live in `blueque/lua/<name>.lua`, each with a header that lists its KEYS and ARGV,
and `_lib.lua` (shared helpers) is prepended to each. A script is called by its SHA1
(`EVALSHA`); a server that does not know it yet (first use, a restarted or flushed server,
another Cluster node) answers NOSCRIPT, and the script is sent whole (`EVAL`, which also
caches it there). A data error is turned into a `CorruptKeyError` naming the key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from redis.exceptions import NoScriptError

from blueque.corruption import corrupt_key_error, naming
from blueque.steps import Call, Steps, batch

SCRIPT_NAMES = (
    "enqueue",
    "begin",
    "finish",
    "requeue_worker",
    "reap",
    "heartbeat",
    "drain",
    "undrain",
    "promote_due",
    "cancel",
    "retry",
    "delete",
    "stats",
    "get_config",
    "set_progress",
    "release",
    "observe",
    "claim_owner",
    "release_owner",
)


@cache
def script_source(name: str) -> str:
    """The full text of a script as the server runs it: the shared prelude, then the script."""
    lua = resources.files("blueque") / "lua"
    return (lua / "_lib.lua").read_text() + "\n" + (lua / f"{name}.lua").read_text()


@cache
def script_sha(name: str) -> str:
    return hashlib.sha1(script_source(name).encode()).hexdigest()


@dataclass(frozen=True)
class ScriptCall:
    name: str
    keys: Sequence[str]
    args: Sequence[str | int | float]

    def by_sha(self) -> Call:
        return Call(("EVALSHA", script_sha(self.name), len(self.keys), *self.keys, *self.args))

    def whole(self) -> Call:
        return Call(("EVAL", script_source(self.name), len(self.keys), *self.keys, *self.args))


def script(name: str, keys: Sequence[str], args: Sequence[str | int | float]) -> Steps[Any]:
    """Runs one script; its reply."""
    return (yield from naming(name, keys, _call(ScriptCall(name, keys, args))))


def _call(call: ScriptCall) -> Steps[Any]:
    try:
        return (yield call.by_sha())
    except NoScriptError:
        return (yield call.whole())


def pipeline(calls: Sequence[ScriptCall | Call]) -> Steps[list[Any]]:
    """Runs scripts and plain commands in one round trip (a pipeline without MULTI: Redis
    runs them in order). Returns every answer; raises the first error.

    A script the server did not know yet fails there while the commands after it ran: then
    that script and every script after it run again, alone and in order, which is right as
    long as those later scripts are idempotent for the caller (a worker's begin of its own
    head task is)."""
    replies = yield from batch([c.by_sha() if isinstance(c, ScriptCall) else c for c in calls])
    unknown = [isinstance(r, NoScriptError) for r in replies]
    if any(unknown):
        for i in range(unknown.index(True), len(calls)):
            call = calls[i]
            if isinstance(call, ScriptCall):
                replies[i] = yield from script(call.name, call.keys, call.args)
    for call, reply in zip(calls, replies, strict=True):
        if isinstance(reply, Exception):
            name, keys = (
                (call.name, call.keys)
                if isinstance(call, ScriptCall)
                else (str(call.args[0]), [a for a in call.args[1:] if isinstance(a, str)])
            )
            raise (yield from corrupt_key_error(name, keys, reply)) or reply
    return replies
