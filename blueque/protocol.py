"""The protocol's transitions, as steps (`blueque.steps`): each one a Lua script called
with the keys it declares, or a plain command, and the reading of its reply.

`QueueProtocol` is the only caller of the scripts; `Queue`, `AsyncQueue`, `Worker` and the
CLI go through it, so key order and argument encoding are written once. `Transitions` runs
the same steps with the sync client (the worker's and the tests' handle). PROTOCOL.md
documents the same scripts for other languages.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Concatenate, Literal, NamedTuple, ParamSpec, TypeVar, get_args

from blueque.corruption import blame
from blueque.errors import ProtocolError
from blueque.execution import Runner
from blueque.keys import QueueKeys, registry_key
from blueque.records import (
    OwnerClaim,
    QueueObservation,
    QueueStats,
    parse_observation,
    parse_owner_claim,
    parse_stats,
)
from blueque.scripts import ScriptCall, Scripting, pipeline, script
from blueque.states import Outcome
from blueque.steps import Call, Steps, command

T = TypeVar("T")
P = ParamSpec("P")


BeginStatus = Literal[
    "ok", "draining", "unregistered", "gone", "dropped", "cancelled", "missing", "empty"
]
_BEGIN_STATUSES: tuple[BeginStatus, ...] = get_args(BeginStatus)


class Begun(NamedTuple):
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
class QueueProtocol:
    """Every transition of one queue, as steps. `scripting`: the client's (how its server
    takes the scripts: as functions or as scripts)."""

    keys: QueueKeys
    scripting: Scripting = field(default_factory=Scripting)

    def _script(
        self, name: str, keys: Sequence[str], args: Sequence[str | int | float]
    ) -> Steps[Any]:
        return script(self.scripting, name, keys, args)

    def enqueue(self, tasks: Sequence[tuple[str, str, int]]) -> Steps[int]:
        """tasks: (id, parameters as JSON text, delay in ms; <= 0 means due now)."""
        k = self.keys
        keys = [k.pending, k.scheduled, k.stats, k.events, *(k.task(t[0]) for t in tasks)]
        args: list[str | int] = []
        for task_id, parameters, delay_ms in tasks:
            args += [task_id, parameters, delay_ms]
        return int((yield from self._script("enqueue", keys, args)))

    def begin(self, worker_id: str, task_id: str | None, pid: int) -> Steps[Begun]:
        """Begins `task_id`, or with None the task at the head of the worker's own list."""
        call = self._begin_call(worker_id, task_id, pid)
        return Begun.from_reply((yield from self._script(call.name, call.keys, call.args)))

    def _begin_call(self, worker_id: str, task_id: str | None, pid: int) -> ScriptCall:
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
        return ScriptCall("begin", keys, [worker_id, task_id or "", pid])

    # -- the claim: the one transition that is not a script (it blocks) ---------------------

    def _claim_command(self, worker_id: str, timeout_s: float) -> Call:
        k = self.keys
        return Call(("BLMOVE", k.pending, k.worker_tasks(worker_id), "LEFT", "RIGHT", timeout_s))

    def claim(self, worker_id: str, timeout_s: float) -> Steps[str | None]:
        """Moves the head of pending into the worker's own list, waiting up to `timeout_s`
        for one (0 waits forever); returns its id, or None. The worker's list must be empty
        (one task at a time); `begin` then asks for permission to run it."""
        claimed: str | None = yield self._claim_command(worker_id, timeout_s)
        return claimed

    def held(self, worker_id: str) -> Steps[str | None]:
        """The task at the head of the worker's own list (claimed, maybe begun), or None."""
        head: str | None = yield from command("LINDEX", self.keys.worker_tasks(worker_id), 0)
        return head

    def registration(self, worker_id: str) -> Steps[tuple[dict[str, str], bool]]:
        """The worker's hash as it was last written, and whether its heartbeat is fresh (its
        alive key exists): what a starting worker checks before it takes an id."""
        fields: dict[str, str] = yield from command("HGETALL", self.keys.worker(worker_id))
        fresh = bool((yield from command("EXISTS", self.keys.worker_alive(worker_id))))
        return fields, fresh

    def register_queue(self) -> Steps[None]:
        """Adds the queue to the registry of queue names (for `info`): the one key outside
        the queue's slot, written idempotently and never needed for atomicity."""
        yield from command("SADD", registry_key(self.keys.namespace), self.keys.queue)

    def _claim_calls(self, worker_id: str, pid: int, claim_timeout_s: float) -> list[Any]:
        """The claim and the begin of what it brought, to send in one round trip."""
        return [
            self._claim_command(worker_id, claim_timeout_s),
            self._begin_call(worker_id, None, pid),
        ]

    def claim_and_begin(self, worker_id: str, pid: int, claim_timeout_s: float) -> Steps[Begun]:
        """Claims and begins in one round trip; status 'empty' when nothing came within the
        timeout."""
        _, begun = yield from pipeline(
            self.scripting, self._claim_calls(worker_id, pid, claim_timeout_s)
        )
        return Begun.from_reply(begun)

    def finish(
        self, worker_id: str, task_id: str, attempt: int, outcome: Outcome, payload: str
    ) -> Steps[str]:
        call = self._finish_call(worker_id, task_id, attempt, outcome, payload)
        return str((yield from self._script(call.name, call.keys, call.args)))

    def _finish_call(
        self, worker_id: str, task_id: str, attempt: int, outcome: Outcome, payload: str
    ) -> ScriptCall:
        k = self.keys
        keys = [
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
        return ScriptCall("finish", keys, [worker_id, task_id, attempt, outcome, payload])

    def finish_claim_begin(
        self,
        worker_id: str,
        task_id: str,
        attempt: int,
        outcome: Outcome,
        payload: str,
        pid: int,
    ) -> Steps[tuple[str, Begun]]:
        """`finish`, then, when a task is pending, its claim and begin: one script call
        (`cycle`), so one round trip on a Cluster too. It never blocks and claims nothing
        while the worker's list still holds a task. Returns (finish's answer, what begin
        answered: status 'empty' when nothing was claimed; the worker then claims with
        `claim_and_begin`, which waits)."""
        finish = self._finish_call(worker_id, task_id, attempt, outcome, payload)
        k = self.keys
        keys = [*finish.keys, k.draining, k.pending, k.workers]
        state, begun = yield from self._script("cycle", keys, [*finish.args, pid])
        return str(state), Begun.from_reply(begun)

    def release(self, worker_id: str, task_id: str, attempt: int) -> Steps[str]:
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
        return str((yield from self._script("release", keys, [worker_id, task_id, attempt])))

    def requeue_worker(
        self, worker_id: str, reason: str, *, exiting: bool = False
    ) -> Steps[tuple[int, int]]:
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
        args = [worker_id, reason, 1 if exiting else 0]
        requeued, failed = yield from self._script("requeue_worker", keys, args)
        return int(requeued), int(failed)

    def reap(self, reason: str) -> Steps[tuple[int, int, int]]:
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
        reaped, requeued, failed = yield from self._script("reap", keys, [reason])
        return int(reaped), int(requeued), int(failed)

    def heartbeat(
        self,
        worker_id: str,
        ttl_ms: int,
        fields: dict[str, str | int],
        task_id: str | None = None,
    ) -> Steps[tuple[bool, bool]]:
        """Returns (draining, cancel requested for task_id)."""
        k = self.keys
        keys = [k.workers, k.worker(worker_id), k.worker_alive(worker_id), k.draining]
        if task_id is not None:
            keys.append(k.task(task_id))
        args: list[str | int] = [worker_id, ttl_ms]
        for name, value in fields.items():
            args += [name, value]
        draining, cancel = yield from self._script("heartbeat", keys, args)
        return bool(draining), bool(cancel)

    def drain(self, worker_id: str) -> Steps[bool]:
        k = self.keys
        keys = [k.worker_tasks(worker_id), k.worker(worker_id), k.draining, k.events]
        return bool((yield from self._script("drain", keys, [worker_id])))

    def undrain(self, worker_id: str) -> Steps[bool]:
        k = self.keys
        keys = [k.worker(worker_id), k.draining, k.events]
        return bool((yield from self._script("undrain", keys, [worker_id])))

    def promote_due(self, limit: int = 1000) -> Steps[tuple[int, int | None]]:
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
        promoted, next_due = yield from self._script("promote_due", keys, [limit])
        return int(promoted), (None if int(next_due) < 0 else int(next_due))

    def cancel(self, task_id: str) -> Steps[tuple[str, str]]:
        k = self.keys
        keys = [k.pending, k.scheduled, k.cancelled, k.stats, k.events, k.task(task_id), k.config]
        outcome, state = yield from self._script("cancel", keys, [task_id])
        return str(outcome), str(state)

    def retry(self, task_id: str) -> Steps[str]:
        k = self.keys
        keys = [k.failed, k.cancelled, k.pending, k.stats, k.events, k.task(task_id)]
        return str((yield from self._script("retry", keys, [task_id])))

    def delete(self, task_id: str) -> Steps[str]:
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
        return str((yield from self._script("delete", keys, [task_id])))

    def await_task(
        self, task_id: str, block_ms: int | None
    ) -> Steps[tuple[str, dict[str, str] | None]]:
        """One round trip of a wait: `await` (which registers the wait, or has the task's
        done stream written when the task is finished or gone), then the XREAD of that
        stream, blocking up to `block_ms` for its entry (None: not at all). Returns the
        task's state when the await ran ('' for no task) and the entry's fields, or None
        when no entry came."""
        k = self.keys
        done = k.task_done(task_id)
        read: tuple[str | int, ...] = ("XREAD", "STREAMS", done, "0-0")
        if block_ms is not None:
            read = ("XREAD", "BLOCK", block_ms, *read[1:])
        state, reply = yield from pipeline(
            self.scripting, [ScriptCall("await", [k.task(task_id), done], []), Call(read)]
        )
        return str(state), _last_entry(reply)

    def stats(self) -> Steps[QueueStats]:
        k = self.keys
        keys = [
            k.pending,
            k.scheduled,
            k.complete,
            k.failed,
            k.cancelled,
            k.stats,
            k.workers,
            k.draining,
        ]
        reply = yield from self._script("stats", keys, [])
        try:
            return parse_stats(k.queue, reply)
        except (TypeError, ValueError) as exc:
            raise (yield from blame("stats", keys, str(exc))) from None

    def get_config(self) -> Steps[dict[str, str]]:
        flat = yield from self._script("get_config", [self.keys.config], [])
        return dict(zip(flat[::2], flat[1::2], strict=True))

    def set_progress(
        self, worker_id: str, task_id: str, attempt: int, progress: str
    ) -> Steps[bool]:
        """Fenced like finish: False unless the task runs at `attempt` in that worker's list."""
        k = self.keys
        keys = [k.task(task_id), k.events, k.worker_tasks(worker_id)]
        args: list[str | int] = [task_id, attempt, progress, worker_id]
        return bool((yield from self._script("set_progress", keys, args)))

    def observe(self) -> Steps[QueueObservation]:
        """The queue's figures and every worker id it knows, in one read (see observe.lua)."""
        k = self.keys
        keys = [k.pending, k.scheduled, k.stats, k.workers, k.draining]
        reply = yield from self._script("observe", keys, [])
        try:
            return parse_observation(k.queue, reply)
        except (TypeError, ValueError) as exc:
            raise (yield from blame("observe", keys, str(exc))) from None

    def claim_owner(self, owner: str, ttl_ms: int) -> Steps[OwnerClaim]:
        """Takes or renews the ownership claim, or reports who holds it."""
        reply = yield from self._script("claim_owner", [self.keys.owner], [owner, ttl_ms])
        return parse_owner_claim(owner, reply)

    def release_owner(self, owner: str) -> Steps[bool]:
        return bool((yield from self._script("release_owner", [self.keys.owner], [owner])))


def _last_entry(reply: Any) -> dict[str, str] | None:
    """The fields of the last entry of the one stream an XREAD read: redis-py answers
    `[[name, [(id, fields)]]]` (RESP2) or `{name: [[id, fields]]}` (RESP3); nothing read is
    None or empty."""
    if not reply:
        return None
    entries = next(iter(reply.values())) if isinstance(reply, dict) else reply[0][1]
    if not entries:
        return None
    fields = entries[-1][1]
    if isinstance(fields, list):
        fields = dict(zip(fields[::2], fields[1::2], strict=True))
    return dict(fields)


def _run(
    method: Callable[Concatenate[QueueProtocol, P], Steps[T]],
) -> Callable[Concatenate[Transitions, P], T]:
    """The sync method of `Transitions` that runs the steps of a `QueueProtocol` method."""

    @functools.wraps(method)
    def run(self: Transitions, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self.runner.run(method(self.protocol, *args, **kwargs))

    return run


class Transitions:
    """The transitions of one queue, run with the sync client: what the worker (and the
    tests that play a worker) call. Each method runs the `QueueProtocol` steps of its name
    and takes the same arguments."""

    def __init__(self, runner: Runner, keys: QueueKeys, scripting: Scripting | None = None) -> None:
        self.runner = runner
        self.keys = keys
        self.protocol = QueueProtocol(keys, scripting or Scripting())

    def run(self, steps: Steps[T]) -> T:
        return self.runner.run(steps)

    enqueue = _run(QueueProtocol.enqueue)
    begin = _run(QueueProtocol.begin)
    claim = _run(QueueProtocol.claim)
    held = _run(QueueProtocol.held)
    registration = _run(QueueProtocol.registration)
    register_queue = _run(QueueProtocol.register_queue)
    claim_and_begin = _run(QueueProtocol.claim_and_begin)
    finish = _run(QueueProtocol.finish)
    finish_claim_begin = _run(QueueProtocol.finish_claim_begin)
    release = _run(QueueProtocol.release)
    requeue_worker = _run(QueueProtocol.requeue_worker)
    reap = _run(QueueProtocol.reap)
    heartbeat = _run(QueueProtocol.heartbeat)
    drain = _run(QueueProtocol.drain)
    undrain = _run(QueueProtocol.undrain)
    promote_due = _run(QueueProtocol.promote_due)
    cancel = _run(QueueProtocol.cancel)
    retry = _run(QueueProtocol.retry)
    delete = _run(QueueProtocol.delete)
    stats = _run(QueueProtocol.stats)
    get_config = _run(QueueProtocol.get_config)
    set_progress = _run(QueueProtocol.set_progress)
    observe = _run(QueueProtocol.observe)
    claim_owner = _run(QueueProtocol.claim_owner)
    release_owner = _run(QueueProtocol.release_owner)
    await_task = _run(QueueProtocol.await_task)
