"""Everything a producer, an operator or a person does to one queue, as steps.

`Queue` (sync) and `blueque.aio.AsyncQueue` are thin faces over this class: each of their
methods runs the steps of the same name with its own runner. Validation, serialization,
error mapping, naming corrupt keys and building records are here, once. Each operation is
one round trip unless it says otherwise.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Generic, TypeVar

from blueque import bounds
from blueque.config import QueueConfig, parse_config, validate_settings
from blueque.connection import block_limit_s, redis_errors
from blueque.corruption import blame, is_data_error, naming
from blueque.errors import (
    ConfigError,
    CorruptKeyError,
    InvalidArgumentError,
    InvalidNameError,
    InvalidStateError,
    TaskFailedError,
    TaskNotFoundError,
    WaitTimeoutError,
)
from blueque.keys import (
    QueueKeys,
    new_task_id,
    queue_keys,
    queue_of_task,
    registry_key,
    validate_worker_id,
)
from blueque.protocol import QueueProtocol
from blueque.records import (
    OwnerClaim,
    QueueObservation,
    QueueStats,
    TaskSnapshot,
    WorkerInfo,
    parse_worker,
)
from blueque.scripts import Scripting
from blueque.serialization import encode
from blueque.states import LISTABLE, TaskState
from blueque.steps import Call, Steps, batch, command

TaskT = TypeVar("TaskT", bound=TaskSnapshot)
T = TypeVar("T")

MAX_LIST = 1_000_000  # the most tasks one call lists or promotes
MAX_OWNER = 256  # characters of an owner string (a Kubernetes UID has 36)
MAX_OWNER_TTL_S = 86_400.0  # a claim that must outlive a day unrenewed is a mistake
# A wait blocks at most this long at a time (less when the client's socket timeout is
# shorter: `block_limit_s`), then asks again.
WAIT_SLICE_S = 5.0


def guarded(action: str, steps: Steps[T]) -> Steps[T]:
    """The steps, with redis-py's connection failures turned into `ConnectionFailedError`
    saying what was being done."""
    with redis_errors(action):
        return (yield from steps)


class QueueOperations(Generic[TaskT]):
    """The operations of one queue; tasks are built as `task_type` bound to `queue` (the
    face that runs these steps, so a task's own methods use the same client)."""

    def __init__(
        self,
        queue: Any,
        keys: QueueKeys,
        task_type: type[TaskT],
        scripting: Scripting,
        block_limit_s: float | None = None,
    ) -> None:
        self.queue = queue
        self.keys = keys
        self.name = keys.queue
        self.protocol = QueueProtocol(keys, scripting)
        self.task_type = task_type
        self.wait_slice_s = (
            WAIT_SLICE_S if block_limit_s is None else min(WAIT_SLICE_S, block_limit_s)
        )
        self._registered = False
        self._enqueue_action = f"enqueue on {self.name}"

    # -- producing -------------------------------------------------------------------------

    def enqueue(self, parameters: Any) -> Steps[str]:
        return (yield from self._create([(parameters, 0)]))[0]

    def enqueue_many(self, parameters: Iterable[Any]) -> Steps[list[str]]:
        return (yield from self._create([(p, 0) for p in bounds.batch(parameters)]))

    def schedule(self, parameters: Any, eta: datetime | None, delay: float | None) -> Steps[str]:
        return (yield from self._create([(parameters, bounds.delay_ms(eta, delay))]))[0]

    def _create(self, items: list[tuple[Any, int]]) -> Steps[list[str]]:
        if not items:
            return []
        rows = [(new_task_id(self.name), encode(p, "parameters"), d) for p, d in items]
        with redis_errors(self._enqueue_action):
            if not self._registered:
                yield from self._register()
            yield from self.protocol.enqueue(rows)
        return [row[0] for row in rows]

    def _register(self) -> Steps[None]:
        if not self._registered:
            yield from self.protocol.register_queue()
            self._registered = True

    # -- reading ---------------------------------------------------------------------------

    def get_task(self, task_id: str) -> Steps[TaskT]:
        self._check(task_id)
        key = self.keys.task(task_id)
        with redis_errors(f"read task {task_id}"):
            fields = yield from naming("read", [key], command("HGETALL", key))
        if not fields:
            raise TaskNotFoundError(f"no task {task_id}")
        return self.task_type.from_hash(self.queue, task_id, fields)

    def stats(self) -> Steps[QueueStats]:
        return (yield from guarded(f"read stats of {self.name}", self.protocol.stats()))

    def observe(self) -> Steps[QueueObservation]:
        return (yield from guarded(f"observe {self.name}", self.protocol.observe()))

    def tasks(self, state: TaskState | str, limit: int) -> Steps[list[TaskT]]:
        state = _listable(state)
        ids = yield from self._ids(state, bounds.whole("limit", limit, 1, MAX_LIST))
        return (yield from self._load(ids))

    def _ids(self, state: TaskState, limit: int) -> Steps[list[str]]:
        k = self.keys
        args: tuple[str | int, ...]
        if state == TaskState.PENDING:
            source, args = k.pending, ("LRANGE", k.pending, 0, limit - 1)
        elif state == TaskState.SCHEDULED:
            source, args = k.scheduled, ("ZRANGE", k.scheduled, 0, limit - 1)
        else:  # finished: newest first
            source = k.finished(state)
            args = ("ZRANGE", source, 0, limit - 1, "REV")
        with redis_errors(f"list {state} tasks of {self.name}"):
            ids = yield from naming(f"list {state} tasks", [source], command(*args))
        return list(ids)

    def get_tasks(self, task_ids: Iterable[str]) -> Steps[list[TaskT]]:
        ids = list(task_ids)
        for task_id in ids:
            self._check(task_id)
        return (yield from self._load(ids))

    def _load(self, ids: list[str]) -> Steps[list[TaskT]]:
        with redis_errors(f"read tasks of {self.name}"):
            replies = yield from batch([Call(("HGETALL", self.keys.task(i))) for i in ids])
            tasks: list[TaskT] = []
            for task_id, fields in zip(ids, replies, strict=True):
                if isinstance(fields, Exception):
                    if not is_data_error(fields):
                        raise fields
                    error = yield from blame("read", [self.keys.task(task_id)], str(fields))
                    tasks.append(self.task_type.unreadable(self.queue, task_id, str(error)))
                elif fields:
                    tasks.append(
                        self.task_type.from_hash(self.queue, task_id, fields, partial=True)
                    )
        return tasks

    def workers(self) -> Steps[list[WorkerInfo]]:
        """Two round trips: the ids, then their details."""
        k = self.keys
        with redis_errors(f"list workers of {self.name}"):
            members = yield from naming("list workers", [k.workers], command("SMEMBERS", k.workers))
            ids = sorted(members)
            calls: list[Call] = []
            for wid in ids:
                calls += [
                    Call(("HGETALL", k.worker(wid))),
                    Call(("LRANGE", k.worker_tasks(wid), 0, -1)),
                    Call(("EXISTS", k.worker_alive(wid))),
                ]
            # A worker key of the wrong type reads as empty: the others still show.
            replies = [
                {} if isinstance(r, Exception) and is_data_error(r) else r
                for r in (yield from batch(calls))
            ]
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return [
            parse_worker(
                self.name, wid, replies[3 * i], list(replies[3 * i + 1]), bool(replies[3 * i + 2])
            )
            for i, wid in enumerate(ids)
        ]

    def wait(self, task_id: str, timeout: float | None, raise_on_failure: bool) -> Steps[TaskT]:
        """One round trip per slice of `wait_slice_s`: the `await` script and, in the same
        pipeline, a blocking XREAD of the task's done stream (PROTOCOL.md "Waiting for a
        task"). The stream's entry carries the finished task's hash, so the task is not
        read, unless it is too big to copy. A slice that passes without an entry asks again
        (the await looks at the task afresh, so nothing is missed)."""
        self._check(task_id)
        timeout = bounds.timeout(timeout)
        with redis_errors(f"wait for task {task_id}"):
            task = yield from self._finished(task_id, timeout)
        if raise_on_failure and task.status != TaskState.COMPLETE:
            detail = task.error.get("message", "") if task.error else ""
            raise TaskFailedError(f"task {task_id} {task.status}: {detail}".rstrip(": "))
        return task

    def _finished(self, task_id: str, timeout: float | None) -> Steps[TaskT]:
        deadline = None if timeout is None else time.monotonic() + timeout
        confirmed = self.protocol.scripting.confirmed
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            block_ms = None  # a last look, once the time is up
            # (A command after a script the server does not have yet runs anyway: an XREAD
            # would then block for nothing. Until the await ran once, it does not block.)
            if "await" in confirmed and (remaining is None or remaining > 0):
                block_ms = math.ceil(min(remaining or math.inf, self.wait_slice_s) * 1000)
            state, entry = yield from self.protocol.await_task(task_id, block_ms)
            if entry is not None:
                task = yield from self._notified(task_id, entry)
                if task.finished:
                    return task
            if remaining is not None and remaining <= 0:
                raise WaitTimeoutError(f"task {task_id} still {state} after {timeout} s")

    def _notified(self, task_id: str, entry: dict[str, str]) -> Steps[TaskT]:
        """The task an entry of its done stream tells of: the hash it copies, or the hash
        read when it was too big to copy; `TaskNotFoundError` for a task that is gone."""
        fields = dict(entry)
        kind = fields.pop("notify", None)
        if kind == "task":
            return self.task_type.from_hash(self.queue, task_id, fields)
        if kind == "missing":
            raise TaskNotFoundError(f"no task {task_id}")
        return (yield from self.get_task(task_id))

    # -- steering --------------------------------------------------------------------------

    def cancel(self, task_id: str) -> Steps[str]:
        self._check(task_id)
        outcome, state = yield from guarded(f"cancel {task_id}", self.protocol.cancel(task_id))
        if outcome == "missing":
            raise TaskNotFoundError(f"no task {task_id}")
        if outcome == "finished":
            raise InvalidStateError(f"task {task_id} already finished: {state}")
        return outcome

    def retry(self, task_id: str) -> Steps[None]:
        self._check(task_id)
        outcome = yield from guarded(f"retry {task_id}", self.protocol.retry(task_id))
        if outcome == "missing":
            raise TaskNotFoundError(f"no task {task_id}")
        if outcome != "requeued":
            raise InvalidStateError(
                f"task {task_id} is {outcome}: only failed or cancelled tasks can be retried"
            )

    def delete(self, task_id: str) -> Steps[None]:
        self._check(task_id)
        outcome = yield from guarded(f"delete {task_id}", self.protocol.delete(task_id))
        if outcome == "missing":
            raise TaskNotFoundError(f"no task {task_id}")
        if outcome == "busy":
            raise InvalidStateError(f"task {task_id} is held by a worker: cancel it first")

    def purge(self, state: TaskState | str) -> Steps[int]:
        """Several round trips: 500 tasks at a time."""
        state = _listable(state)
        deleted = 0
        while ids := (yield from self._ids(state, 500)):
            outcomes: list[str] = []
            with redis_errors(f"purge {state} tasks of {self.name}"):
                for task_id in ids:
                    outcomes.append((yield from self.protocol.delete(task_id)))
            deleted += outcomes.count("deleted")
            if "deleted" not in outcomes:
                break  # all held by workers meanwhile: nothing more to do
        return deleted

    def set_progress(self, task: TaskSnapshot, progress: Any) -> Steps[bool]:
        payload = encode(progress, "progress")
        steps = self.protocol.set_progress(task.worker or "", task.id, task.attempts, payload)
        return (yield from guarded(f"record progress of {task.id}", steps))

    def _check(self, task_id: str) -> None:
        if queue_of_task(task_id) != self.name:
            raise InvalidNameError(f"task {task_id} does not belong to queue {self.name}")

    # -- settings --------------------------------------------------------------------------

    def config(self) -> Steps[QueueConfig]:
        effective = yield from guarded(f"read config of {self.name}", self.protocol.get_config())
        try:
            return parse_config(effective)
        except ConfigError as exc:
            raise CorruptKeyError(
                f"config hash {self.keys.config} is corrupt: {exc} (write a valid value:"
                f" blueque config {self.name} NAME=VALUE)",
                self.keys.config,
            ) from None

    def set_config(self, settings: dict[str, Any]) -> Steps[QueueConfig]:
        values = validate_settings(settings)
        with redis_errors(f"write config of {self.name}"):
            if values:
                flat = [part for pair in values.items() for part in pair]
                yield from command("HSET", self.keys.config, *flat)
            yield from self._register()
        return (yield from self.config())

    # -- worker lifecycle (used by the operator, the scheduler and the CLI) -------------------

    def drain(self, worker_id: str) -> Steps[bool]:
        steps = self.protocol.drain(validate_worker_id(worker_id))
        return (yield from guarded(f"drain {worker_id}", steps))

    def undrain(self, worker_id: str) -> Steps[bool]:
        steps = self.protocol.undrain(validate_worker_id(worker_id))
        return (yield from guarded(f"undrain {worker_id}", steps))

    def requeue_worker(self, worker_id: str, reason: str) -> Steps[tuple[int, int]]:
        steps = self.protocol.requeue_worker(validate_worker_id(worker_id), reason)
        return (yield from guarded(f"requeue worker {worker_id}", steps))

    def reap(self, reason: str) -> Steps[tuple[int, int, int]]:
        return (yield from guarded(f"reap workers of {self.name}", self.protocol.reap(reason)))

    def promote_due(self, limit: int) -> Steps[tuple[int, int | None]]:
        steps = self.protocol.promote_due(bounds.whole("limit", limit, 1, MAX_LIST))
        return (yield from guarded(f"promote scheduled tasks of {self.name}", steps))

    def claim_owner(self, owner: str, ttl_s: float) -> Steps[OwnerClaim]:
        bounds.text("owner", owner, MAX_OWNER)
        ttl = bounds.number("ttl_s", ttl_s, 0.001, MAX_OWNER_TTL_S)
        steps = self.protocol.claim_owner(owner, max(1, round(ttl * 1000)))
        return (yield from guarded(f"claim ownership of {self.name}", steps))

    def release_owner(self, owner: str) -> Steps[bool]:
        steps = self.protocol.release_owner(bounds.text("owner", owner, MAX_OWNER))
        return (yield from guarded(f"release ownership of {self.name}", steps))


class QueueFace(Generic[TaskT]):
    """What `Queue` and `AsyncQueue` share: a queue's names, keys and operations; each face
    adds the methods that run them, sync or awaited, and sets `task_type`."""

    task_type: type[TaskT]

    def __init__(self, client: Any, name: str) -> None:
        self.client = client
        self.keys = queue_keys(name, client.namespace)
        self.name = self.keys.queue
        self.ops = QueueOperations(
            self, self.keys, self.task_type, client.scripting, block_limit_s(client.redis)
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def queue_names(namespace: str) -> Steps[list[str]]:
    """Names of every queue that was ever used (the registry set)."""
    steps = command("SMEMBERS", registry_key(namespace))
    return sorted((yield from guarded("list queues", steps)))


def ping() -> Steps[bool]:
    return bool((yield from guarded("ping", command("PING"))))


def _listable(state: TaskState | str) -> TaskState:
    """`state` as a TaskState kept in a list or set of the queue itself."""
    if state not in _LISTABLE:
        words = ", ".join(LISTABLE)
        raise InvalidArgumentError(f"state must be one of {words}, not {state!r}")
    return TaskState(state)


_LISTABLE = frozenset(LISTABLE)
