"""The Lua scripts of the protocol and how one is called, as steps (`blueque.steps`).

Scripts live in `blueque/lua/<name>.lua`, each with a header that lists its KEYS and ARGV;
`_lib.lua` holds the helpers they share. Each script's text becomes the body of a Lua
function `(KEYS, ARGV)`, so the same text runs two ways:

- **As a function library** (Redis 7 `FUNCTION LOAD`, then `FCALL`): `_lib.lua` and every
  script in one library, compiled and set up once per server rather than on every call. The
  library is named by the protocol version and a hash of its text (`blueque_v2_<hash>`),
  and so are its functions, so a library is never replaced in place: during a rollout, old
  and new workers each call their own. A server that does not know the function yet (first
  use, a flushed or new node) answers "Function not found": the library is loaded on every
  primary, then the call is repeated.
- **As scripts** (`EVALSHA`, `EVAL` on NOSCRIPT), where the server has no FUNCTION command
  or refuses it (an ACL, a managed Redis): `_lib.lua` and one script, sent per script.

Each client starts with functions and falls back to scripts for good (`Scripting`) the first
time its server refuses them. A data error is turned into a `CorruptKeyError` naming the key.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any, NamedTuple

from redis.exceptions import (
    BusyLoadingError,
    NoPermissionError,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    ResponseError,
)

from blueque.corruption import corrupt_key_error, naming
from blueque.keys import PROTOCOL_VERSION
from blueque.steps import Call, Everywhere, Steps, batch

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
    "cycle",  # after finish and begin, whose functions it calls
    "await",
)
# Scripts that call other scripts' functions: as scripts (EVAL) they are sent with them.
CALLS = {"cycle": ("finish", "begin")}
_CALLED = frozenset(name for called in CALLS.values() for name in called)
# Scripts that only read: as functions they are flagged `no-writes`, so that they still run
# when the server refuses writes for memory (as scripts, Redis finds that out by itself).
READ_ONLY = frozenset({"stats", "observe", "get_config"})
# Scripts flagged `allow-oom` (as scripts too, in a shebang line): they run, writes
# included, when the server refuses writes for memory. Only `await`, whose writes are a
# field or one short-lived entry per task: a wait reads, in spirit, and reads work then.
ALLOW_OOM = frozenset({"await"})

# What a server answers for a function it does not have.
_NOT_FOUND = re.compile(r"^Function not found", re.I)
# What a server answers when it cannot or will not run functions at all: no such command
# (before Redis 7, or disabled), or an ACL that denies it.
_NO_FUNCTIONS = re.compile(
    r"unknown command .?(fcall|function)|no permissions to run the '(fcall|function\|load)'",
    re.I,
)
_ALREADY_LOADED = re.compile(r"^Library '[^']*' already exists")


def _lua(name: str) -> str:
    return (resources.files("blueque") / "lua" / f"{name}.lua").read_text()


def _body(name: str) -> str:
    """A script as a local Lua function of (KEYS, ARGV), which `_lib.lua`'s `run` calls
    (named `script_<name>`: a script may call the helper of its own name). A script that
    another calls takes a third argument from it, nil when the script runs alone (`cycle`:
    see the headers of finish and begin)."""
    params = "KEYS, ARGV, cycle" if name in _CALLED else "KEYS, ARGV"
    return f"local function script_{name}({params})\n{_lua(name)}\nend\n"


@cache
def script_source(name: str) -> str:
    """The full text of a script as `EVAL` runs it: its flags (a shebang line), the shared
    helpers, the scripts it calls and the script, each as a function, and its call."""
    shebang = "#!lua flags=allow-oom\n" if name in ALLOW_OOM else ""
    bodies = "".join(_body(called) for called in (*CALLS.get(name, ()), name))
    return f"{shebang}{_lua('_lib')}\n{bodies}return run(script_{name}, KEYS, ARGV)\n"


@cache
def script_sha(name: str) -> str:
    return hashlib.sha1(script_source(name).encode()).hexdigest()


@cache
def library_name() -> str:
    """`blueque_v<protocol>_<hash of the library's text>`: a change of any script is a new
    library, loaded next to the old one."""
    text = _library_text("@")
    digest = hashlib.sha1(text.encode()).hexdigest()[:16]
    return f"blueque_v{PROTOCOL_VERSION}_{digest}"


@cache
def function_name(name: str) -> str:
    return f"{library_name()}_{name}"


@cache
def library_source() -> str:
    """The text `FUNCTION LOAD` takes: every script, registered under `function_name`."""
    return f"#!lua name={library_name()}\n{_library_text(library_name())}"


def _library_text(library: str) -> str:
    parts = [_lua("_lib"), "\n", *(_body(name) for name in SCRIPT_NAMES)]
    for name in SCRIPT_NAMES:
        flags = ", flags = {'no-writes'}" if name in READ_ONLY else ""
        if name in ALLOW_OOM:
            flags = ", flags = {'allow-oom'}"
        parts.append(
            f"redis.register_function{{function_name = '{library}_{name}',"
            f" callback = function(keys, args) return run(script_{name}, keys, args) end{flags}}}\n"
        )
    return "".join(parts)


@dataclass
class Scripting:
    """How one client calls the scripts: as functions until its server refuses them, then
    as scripts. One per client (two clients may talk to different servers); shared by the
    sync and the asyncio runners alike, since it only records what the server answered."""

    functions: bool = True
    confirmed: set[str] = field(default_factory=set)
    """Scripts a pipeline of this client ran: its server has them. A command after a script
    that the server lacks runs anyway, so a pipeline puts a blocking one only after a
    confirmed script (`QueueOperations.wait`)."""


class ScriptCall(NamedTuple):
    name: str
    keys: Sequence[str]
    args: Sequence[str | int | float]

    def by_function(self) -> Call:
        return Call(("FCALL", function_name(self.name), len(self.keys), *self.keys, *self.args))

    def by_sha(self) -> Call:
        return Call(("EVALSHA", script_sha(self.name), len(self.keys), *self.keys, *self.args))

    def whole(self) -> Call:
        return Call(("EVAL", script_source(self.name), len(self.keys), *self.keys, *self.args))

    def first_try(self, scripting: Scripting) -> Call:
        return self.by_function() if scripting.functions else self.by_sha()


def script(
    scripting: Scripting, name: str, keys: Sequence[str], args: Sequence[str | int | float]
) -> Steps[Any]:
    """Runs one script; its reply. (The steps of `naming`, not a generator of its own: every
    layer of generators costs every operation on each step.)"""
    return naming(name, keys, _call(scripting, ScriptCall(name, keys, args)))


def _call(scripting: Scripting, call: ScriptCall) -> Steps[Any]:
    if scripting.functions:
        try:
            return (yield call.by_function())
        except ResponseError as exc:
            if not _NOT_FOUND.match(str(exc)) and not _NO_FUNCTIONS.search(str(exc)):
                raise
            if _NOT_FOUND.match(str(exc)):
                yield from load_library(scripting)
            else:
                scripting.functions = False
        if scripting.functions:
            try:
                return (yield call.by_function())
            except ResponseError as exc:
                if not _NOT_FOUND.match(str(exc)):
                    raise
                # Loaded, yet not found: something between us and the server (a proxy)
                # does not keep functions. Scripts, which it passes, from now on.
                scripting.functions = False
    try:
        return (yield call.by_sha())
    except NoScriptError:
        return (yield call.whole())


def load_library(scripting: Scripting) -> Steps[bool]:
    """Loads the library on the server (on every primary of a Cluster) unless it is there;
    returns whether the client calls functions from now on. A server that refuses (no
    FUNCTION command, an ACL) switches the client to scripts; a failure that says nothing
    about functions (memory, a node loading, the connection) is raised."""
    replies = yield Everywhere(Call(("FUNCTION", "LOAD", library_source())))
    for reply in replies:
        if not isinstance(reply, Exception) or _ALREADY_LOADED.match(str(reply)):
            continue
        if isinstance(reply, OutOfMemoryError | BusyLoadingError | ReadOnlyError):
            raise reply
        if isinstance(reply, NoPermissionError) or type(reply) is ResponseError:
            scripting.functions = False
            return False
        raise reply
    return True


def _missing(reply: Any) -> bool:
    """A script call that failed only because the server did not have it, or does not run
    functions: it is repeated."""
    if isinstance(reply, NoScriptError):
        return True
    return isinstance(reply, ResponseError) and bool(
        _NOT_FOUND.match(str(reply)) or _NO_FUNCTIONS.search(str(reply))
    )


def pipeline(scripting: Scripting, calls: Sequence[ScriptCall | Call]) -> Steps[list[Any]]:
    """Runs scripts and plain commands in one round trip (a pipeline without MULTI: Redis
    runs them in order). Returns every answer; raises the first error.

    A script the server did not have yet fails there while the commands after it ran: then
    that script and every script after it run again, alone and in order (loading the
    library, or falling back to scripts, as `script` does), which is right as long as those
    later scripts are idempotent for the caller (a worker's begin of its own head task is)."""
    replies = yield from batch(
        [c.first_try(scripting) if isinstance(c, ScriptCall) else c for c in calls]
    )
    unknown = [
        isinstance(c, ScriptCall) and _missing(r) for c, r in zip(calls, replies, strict=True)
    ]
    if any(unknown):
        scripting.confirmed.clear()  # the server lost them (flushed, restarted, a new node)
        for i in range(unknown.index(True), len(calls)):
            call = calls[i]
            if isinstance(call, ScriptCall):
                replies[i] = yield from script(scripting, call.name, call.keys, call.args)
    for call, reply in zip(calls, replies, strict=True):
        if isinstance(reply, Exception):
            name, keys = (
                (call.name, call.keys)
                if isinstance(call, ScriptCall)
                else (str(call.args[0]), [a for a in call.args[1:] if isinstance(a, str)])
            )
            raise (yield from corrupt_key_error(name, keys, reply)) or reply
    scripting.confirmed.update(c.name for c in calls if isinstance(c, ScriptCall))
    return replies
