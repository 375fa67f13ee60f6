"""The protocol's transitions: each one Lua script, called with the keys it declares.

Scripts live in `blueque/lua/<name>.lua`, each with a header that lists its KEYS and ARGV,
and `_lib.lua` (shared helpers) is prepended to each when it is registered. This module is
the only caller of those scripts; `Queue`, `Worker` and the CLI go through it, so key order
and argument encoding are written once. PROTOCOL.md documents the same scripts for other
languages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal, cast, get_args

from redis.commands.core import Script
from redis.exceptions import NoScriptError

from blueque.connection import RedisClient
from blueque.corruption import corrupt_key_error, naming_keys
from blueque.errors import ProtocolError
from blueque.keys import QueueKeys, registry_key
from blueque.records import OwnerClaim, parse_owner_claim
from blueque.states import Outcome

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
    """The full text registered for a script: the shared prelude, then the script."""
    lua = resources.files("blueque") / "lua"
    return (lua / "_lib.lua").read_text() + "\n" + (lua / f"{name}.lua").read_text()


class Scripts:
    """The scripts registered on one Redis client (EVALSHA, loaded on first use), and the
    few plain commands of the protocol (the claim, reading a worker's own list)."""

    def __init__(self, redis: RedisClient) -> None:
        self._redis = redis
        self._scripts: dict[str, Script] = {
            name: redis.register_script(script_source(name)) for name in SCRIPT_NAMES
        }

    def run(self, name: str, keys: Sequence[str], args: Sequence[str | int | float]) -> Any:
        with naming_keys(self._redis, name, keys):
            return self._scripts[name](keys=list(keys), args=list(args))

    def command(self, *args: Any) -> Any:
        """One plain command, written as Redis spells it (as in a pipeline below)."""
        return self._redis.execute_command(*args)  # type: ignore[no-untyped-call]

    def run_pipeline(self, calls: Sequence[Call]) -> list[Any]:
        """Runs scripts and plain commands in one round trip (a pipeline without MULTI:
        Redis runs them in order). Returns every answer; raises the first error.

        A script the server did not know yet (first use, or a restarted or flushed server)
        fails there while the commands after it ran: then that script and every script after
        it run again, alone and in order, which is right as long as those later scripts are
        idempotent for the caller (a worker's begin of its own head task is)."""
        pipe = self._redis.pipeline(transaction=False)
        for call in calls:
            if isinstance(call, ScriptCall):
                script = self._scripts[call.name]
                pipe.evalsha(script.sha, len(call.keys), *call.keys, *call.args)
            else:
                pipe.execute_command(*call)
        replies: list[Any] = pipe.execute(raise_on_error=False)
        unknown = [isinstance(r, NoScriptError) for r in replies]
        if any(unknown):
            for i in range(unknown.index(True), len(calls)):
                call = calls[i]
                if isinstance(call, ScriptCall):
                    replies[i] = self.run(call.name, call.keys, call.args)  # loads it
        for call, reply in zip(calls, replies, strict=True):
            if isinstance(reply, Exception):
                name, keys = (
                    (call.name, call.keys)
                    if isinstance(call, ScriptCall)
                    else (str(call[0]), [a for a in call[1:] if isinstance(a, str)])
                )
                raise corrupt_key_error(self._redis, name, keys, reply) or reply
        return replies


@dataclass(frozen=True)
class ScriptCall:
    name: str
    keys: Sequence[str]
    args: Sequence[str | int | float]


Call = ScriptCall | tuple[Any, ...]


BeginStatus = Literal[
    "ok", "draining", "unregistered", "gone", "dropped", "cancelled", "missing", "empty"
]
_BEGIN_STATUSES: tuple[BeginStatus, ...] = get_args(BeginStatus)


@dataclass(frozen=True)
class Begun:
    """What `begin` answered: `status` is 'ok' (then attempt and parameters are set),
    'draining', 'unregistered', 'gone', 'dropped', 'cancelled', 'missing' or 'empty'
    (nothing was claimed)."""

    status: BeginStatus
    task_id: str = ""
    attempt: int = 0
    parameters: str | None = None

    @classmethod
    def from_reply(cls, reply: list[Any]) -> Begun:
        status = reply[0]
        if status not in _BEGIN_STATUSES:
            raise ProtocolError(f"begin answered {reply!r}")
        if status == "ok":
            return cls("ok", str(reply[3]), int(reply[1]), reply[2])
        return cls(status, str(reply[1]))


@dataclass(frozen=True)
class Transitions:
    """Typed calls of every script for one queue."""

    scripts: Scripts
    keys: QueueKeys

    def enqueue(self, tasks: Sequence[tuple[str, str, int]]) -> int:
        """tasks: (id, parameters as JSON text, delay in ms; <= 0 means due now)."""
        k = self.keys
        keys = [k.pending, k.scheduled, k.stats, k.events, *(k.task(t[0]) for t in tasks)]
        args: list[str | int] = []
        for task_id, parameters, delay_ms in tasks:
            args += [task_id, parameters, delay_ms]
        return int(self.scripts.run("enqueue", keys, args))

    def begin(self, worker_id: str, task_id: str | None, pid: int) -> Begun:
        """Begins `task_id`, or with None the task at the head of the worker's own list."""
        return Begun.from_reply(self.scripts.run(*self._begin_call(worker_id, task_id, pid)))

    def _begin_call(
        self, worker_id: str, task_id: str | None, pid: int
    ) -> tuple[str, list[str], list[str | int]]:
        k = self.keys
        keys = [
            k.worker_tasks(worker_id),
            k.worker(worker_id),
            k.draining,
            k.pending,
            k.stats,
            k.events,
            k.cancelled,
            k.config,
            k.workers,
        ]
        if task_id is not None:
            keys.append(k.task(task_id))
        return "begin", keys, [worker_id, task_id or "", pid]

    # -- the claim: the one transition that is not a script (it blocks) ---------------------

    def _claim_command(self, worker_id: str, timeout_s: float) -> tuple[Any, ...]:
        k = self.keys
        return ("BLMOVE", k.pending, k.worker_tasks(worker_id), "LEFT", "RIGHT", timeout_s)

    def claim(self, worker_id: str, timeout_s: float) -> str | None:
        """Moves the head of pending into the worker's own list, waiting up to `timeout_s`
        for one (0 waits forever); returns its id, or None. The worker's list must be empty
        (one task at a time); `begin` then asks for permission to run it."""
        claimed: str | None = self.scripts.command(*self._claim_command(worker_id, timeout_s))
        return claimed

    def held(self, worker_id: str) -> str | None:
        """The task at the head of the worker's own list (claimed, maybe begun), or None."""
        head: str | None = self.scripts.command("LINDEX", self.keys.worker_tasks(worker_id), 0)
        return head

    def registration(self, worker_id: str) -> tuple[dict[str, str], bool]:
        """The worker's hash as it was last written, and whether its heartbeat is fresh (its
        alive key exists): what a starting worker checks before it takes an id."""
        fields: dict[str, str] = self.scripts.command("HGETALL", self.keys.worker(worker_id))
        fresh = bool(self.scripts.command("EXISTS", self.keys.worker_alive(worker_id)))
        return fields, fresh

    def register_queue(self) -> None:
        """Adds the queue to the registry of queue names (for `info`): the one key outside
        the queue's slot, written idempotently and never needed for atomicity."""
        self.scripts.command("SADD", registry_key(self.keys.namespace), self.keys.queue)

    def _claim_calls(self, worker_id: str, pid: int, claim_timeout_s: float) -> list[Call]:
        """The claim and the begin of what it brought, to send in one round trip."""
        return [
            self._claim_command(worker_id, claim_timeout_s),
            ScriptCall(*self._begin_call(worker_id, None, pid)),
        ]

    def claim_and_begin(self, worker_id: str, pid: int, claim_timeout_s: float) -> Begun:
        """Claims and begins in one round trip; status 'empty' when nothing came within the
        timeout."""
        _, begun = self.scripts.run_pipeline(self._claim_calls(worker_id, pid, claim_timeout_s))
        return Begun.from_reply(begun)

    def finish(
        self, worker_id: str, task_id: str, attempt: int, outcome: Outcome, payload: str
    ) -> str:
        keys = self._finish_keys(worker_id, task_id)
        return str(
            self.scripts.run("finish", keys, [worker_id, task_id, attempt, outcome, payload])
        )

    def _finish_keys(self, worker_id: str, task_id: str) -> list[str]:
        k = self.keys
        return [
            k.worker_tasks(worker_id),
            k.worker(worker_id),
            k.stats,
            k.events,
            k.task(task_id),
            k.complete,
            k.failed,
            k.cancelled,
            k.config,
            k.scheduled,
        ]

    def finish_claim_begin(
        self,
        worker_id: str,
        task_id: str,
        attempt: int,
        outcome: Outcome,
        payload: str,
        pid: int,
        claim_timeout_s: float,
    ) -> tuple[str, Begun]:
        """`finish`, then the worker's next claim and its begin, in one round trip. Redis runs
        the claim after the finish, so the worker still holds at most one task. Returns
        (finish's answer, what begin answered: status 'empty' when nothing came)."""
        finish = ScriptCall(
            "finish",
            self._finish_keys(worker_id, task_id),
            [worker_id, task_id, attempt, outcome, payload],
        )
        state, _, begun = self.scripts.run_pipeline(
            [finish, *self._claim_calls(worker_id, pid, claim_timeout_s)]
        )
        return str(state), Begun.from_reply(begun)

    def release(self, worker_id: str, task_id: str, attempt: int) -> str:
        """Gives back a task this worker began but did not start running, at no cost;
        returns 'released', 'cancelled' or 'stale'."""
        k = self.keys
        keys = [
            k.worker_tasks(worker_id),
            k.worker(worker_id),
            k.pending,
            k.stats,
            k.events,
            k.task(task_id),
            k.cancelled,
            k.config,
        ]
        return str(self.scripts.run("release", keys, [worker_id, task_id, attempt]))

    def requeue_worker(
        self, worker_id: str, reason: str, *, exiting: bool = False
    ) -> tuple[int, int]:
        """Gives back a worker's tasks and forgets it. `exiting`: the worker's own clean
        exit, which also clears its drain mark (a drain survives anything else)."""
        k = self.keys
        keys = [
            k.worker_tasks(worker_id),
            k.worker(worker_id),
            k.worker_alive(worker_id),
            k.workers,
            k.draining,
            k.pending,
            k.failed,
            k.stats,
            k.events,
            k.config,
            k.cancelled,
        ]
        requeued, failed = self.scripts.run(
            "requeue_worker", keys, [worker_id, reason, 1 if exiting else 0]
        )
        return int(requeued), int(failed)

    def reap(self, reason: str) -> tuple[int, int, int]:
        k = self.keys
        keys = [
            k.workers,
            k.draining,
            k.pending,
            k.failed,
            k.stats,
            k.events,
            k.config,
            k.cancelled,
        ]
        reaped, requeued, failed = self.scripts.run("reap", keys, [reason])
        return int(reaped), int(requeued), int(failed)

    def heartbeat(
        self,
        worker_id: str,
        ttl_ms: int,
        fields: dict[str, str | int],
        task_id: str | None = None,
    ) -> tuple[bool, bool]:
        """Returns (draining, cancel requested for task_id)."""
        k = self.keys
        keys = [k.workers, k.worker(worker_id), k.worker_alive(worker_id), k.draining]
        if task_id is not None:
            keys.append(k.task(task_id))
        args: list[str | int] = [worker_id, ttl_ms]
        for name, value in fields.items():
            args += [name, value]
        draining, cancel = self.scripts.run("heartbeat", keys, args)
        return bool(draining), bool(cancel)

    def drain(self, worker_id: str) -> bool:
        k = self.keys
        keys = [k.worker_tasks(worker_id), k.worker(worker_id), k.draining, k.events]
        return bool(self.scripts.run("drain", keys, [worker_id]))

    def undrain(self, worker_id: str) -> bool:
        k = self.keys
        return bool(
            self.scripts.run("undrain", [k.worker(worker_id), k.draining, k.events], [worker_id])
        )

    def promote_due(self, limit: int = 1000) -> tuple[int, int | None]:
        """Returns (tasks promoted, due time in ms of the next scheduled task or None)."""
        k = self.keys
        keys = [
            k.scheduled,
            k.pending,
            k.stats,
            k.events,
            k.config,
            k.complete,
            k.failed,
            k.cancelled,
        ]
        promoted, next_due = self.scripts.run("promote_due", keys, [limit])
        return int(promoted), (None if int(next_due) < 0 else int(next_due))

    def cancel(self, task_id: str) -> tuple[str, str]:
        k = self.keys
        keys = [k.pending, k.scheduled, k.cancelled, k.stats, k.events, k.task(task_id), k.config]
        outcome, state = self.scripts.run("cancel", keys, [task_id])
        return str(outcome), str(state)

    def retry(self, task_id: str) -> str:
        k = self.keys
        keys = [k.failed, k.cancelled, k.pending, k.stats, k.events, k.task(task_id)]
        return str(self.scripts.run("retry", keys, [task_id]))

    def delete(self, task_id: str) -> str:
        k = self.keys
        keys = [
            k.pending,
            k.scheduled,
            k.complete,
            k.failed,
            k.cancelled,
            k.stats,
            k.events,
            k.task(task_id),
        ]
        return str(self.scripts.run("delete", keys, [task_id]))

    def stats(self) -> list[Any]:
        return cast(list[Any], self.scripts.run("stats", self.stats_keys(), []))

    def stats_keys(self) -> list[str]:
        k = self.keys
        return [
            k.pending,
            k.scheduled,
            k.complete,
            k.failed,
            k.cancelled,
            k.stats,
            k.workers,
            k.draining,
        ]

    def get_config(self) -> dict[str, str]:
        flat = self.scripts.run("get_config", [self.keys.config], [])
        return dict(zip(flat[::2], flat[1::2], strict=True))

    def set_progress(self, worker_id: str, task_id: str, attempt: int, progress: str) -> bool:
        """Fenced like finish: False unless the task runs at `attempt` in that worker's list."""
        k = self.keys
        keys = [k.task(task_id), k.events, k.worker_tasks(worker_id)]
        return bool(self.scripts.run("set_progress", keys, [task_id, attempt, progress, worker_id]))

    def observe(self) -> list[Any]:
        """The queue's figures and every worker id it knows, in one read (see observe.lua)."""
        return cast(list[Any], self.scripts.run("observe", self.observe_keys(), []))

    def observe_keys(self) -> list[str]:
        k = self.keys
        return [k.pending, k.scheduled, k.stats, k.workers, k.draining]

    def claim_owner(self, owner: str, ttl_ms: int) -> OwnerClaim:
        """Takes or renews the ownership claim, or reports who holds it."""
        reply = self.scripts.run("claim_owner", [self.keys.owner], [owner, ttl_ms])
        return parse_owner_claim(owner, reply)

    def release_owner(self, owner: str) -> bool:
        return bool(self.scripts.run("release_owner", [self.keys.owner], [owner]))
