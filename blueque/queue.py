"""`Queue`: everything a producer, an operator or a person does to one queue.

Each method is one script call (one round trip) unless it says otherwise; the scripts are in
`protocol.py` / `lua/`, the key names in `keys.py`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from blueque import bounds
from blueque.config import QueueConfig, parse_config, validate_settings
from blueque.connection import redis_errors
from blueque.corruption import blame, is_data_error, naming_keys
from blueque.errors import (
    ConfigError,
    CorruptKeyError,
    InvalidArgumentError,
    InvalidNameError,
    InvalidStateError,
    TaskNotFoundError,
)
from blueque.events import EventStream
from blueque.keys import new_task_id, queue_keys, queue_of_task, validate_worker_id
from blueque.protocol import Transitions
from blueque.records import (
    OwnerClaim,
    QueueObservation,
    QueueStats,
    WorkerInfo,
    parse_observation,
    parse_stats,
    parse_worker,
)
from blueque.serialization import encode
from blueque.states import LISTABLE, TaskState
from blueque.task import Task

if TYPE_CHECKING:
    from blueque.client import Client

LISTABLE_STATES = LISTABLE  # (the name before blueque.states)
MAX_LIST = 1_000_000  # the most tasks one call lists or promotes
MAX_OWNER = 256  # characters of an owner string (a Kubernetes UID has 36)
MAX_OWNER_TTL_S = 86_400.0  # a claim that must outlive a day unrenewed is a mistake


class Queue:
    def __init__(self, client: Client, name: str) -> None:
        self.client = client
        self.keys = queue_keys(name, client.namespace)
        self.name = self.keys.queue
        self.transitions = Transitions(client.scripts, self.keys)
        self._registered = False

    def __repr__(self) -> str:
        return f"Queue({self.name!r})"

    # -- producing -------------------------------------------------------------------------

    def enqueue(self, parameters: Any) -> str:
        """Adds a task at the tail of the queue; returns its id."""
        return self._create([(parameters, 0)])[0]

    def enqueue_many(self, parameters: Iterable[Any]) -> list[str]:
        """Adds many tasks in one atomic round trip; returns their ids in order. A string,
        bytes or a mapping is refused (`InvalidArgumentError`): it is not a list of tasks."""
        return self._create([(p, 0) for p in bounds.batch(parameters)])

    def schedule(
        self, parameters: Any, *, eta: datetime | None = None, delay: float | None = None
    ) -> str:
        """Adds a task that becomes pending at `eta` (a datetime; naive means local time, as
        everywhere in Python) or after `delay` seconds. A time in the past makes it pending
        at once; one more than ten years ahead (`MAX_DELAY_S`), a NaN or an infinity is
        refused with `InvalidArgumentError`."""
        return self._create([(parameters, bounds.delay_ms(eta, delay))])[0]

    def _create(self, items: list[tuple[Any, int]]) -> list[str]:
        if not items:
            return []
        rows = [(new_task_id(self.name), encode(p, "parameters"), d) for p, d in items]
        with redis_errors(f"enqueue on {self.name}"):
            self._register()
            self.transitions.enqueue(rows)
        return [row[0] for row in rows]

    def _register(self) -> None:
        if not self._registered:
            self.transitions.register_queue()
            self._registered = True

    # -- reading ---------------------------------------------------------------------------

    def get_task(self, task_id: str) -> Task:
        if queue_of_task(task_id) != self.name:
            raise InvalidNameError(f"task {task_id} does not belong to queue {self.name}")
        key = self.keys.task(task_id)
        with redis_errors(f"read task {task_id}"), naming_keys(self.client.redis, "read", [key]):
            fields = cast(dict[str, str], self.client.redis.hgetall(key))
        if not fields:
            raise TaskNotFoundError(f"no task {task_id}")
        return Task.from_hash(self, task_id, fields)

    def stats(self) -> QueueStats:
        with redis_errors(f"read stats of {self.name}"):
            reply = self.transitions.stats()
            try:
                return parse_stats(self.name, reply)
            except (TypeError, ValueError) as exc:
                error = blame(self.client.redis, "stats", self.transitions.stats_keys(), str(exc))
        raise error

    def tasks(self, state: TaskState | str, limit: int = 100) -> list[Task]:
        """Tasks in one state: pending in queue order, scheduled by due time, finished
        newest first. Reserved and running tasks are listed per worker: see `workers()`."""
        return self._load(self._ids(_listable(state), bounds.whole("limit", limit, 1, MAX_LIST)))

    def _ids(self, state: TaskState, limit: int) -> list[str]:
        redis = self.client.redis
        k = self.keys
        source = {"pending": k.pending, "scheduled": k.scheduled}.get(state) or k.finished(state)
        with (
            redis_errors(f"list {state} tasks of {self.name}"),
            naming_keys(redis, f"list {state} tasks", [source]),
        ):
            ids: object
            if state == TaskState.PENDING:
                ids = redis.lrange(k.pending, 0, limit - 1)
            elif state == TaskState.SCHEDULED:
                ids = redis.zrange(k.scheduled, 0, limit - 1)
            else:
                ids = redis.zrange(k.finished(state), 0, limit - 1, desc=True)
        return cast(list[str], ids)

    def get_tasks(self, task_ids: Iterable[str]) -> list[Task]:
        """Snapshots of many tasks of this queue in one round trip; unknown ids are left
        out. A task that cannot be read is listed with `corrupt` saying why (lists never fail
        for one bad task)."""
        ids = list(task_ids)
        for task_id in ids:
            self._check(task_id)
        return self._load(ids)

    def _load(self, ids: list[str]) -> list[Task]:
        pipe = self.client.redis.pipeline(transaction=False)
        for task_id in ids:
            pipe.hgetall(self.keys.task(task_id))
        with redis_errors(f"read tasks of {self.name}"):
            replies = pipe.execute(raise_on_error=False) if ids else []
        tasks: list[Task] = []
        for task_id, fields in zip(ids, replies, strict=True):
            if isinstance(fields, Exception):
                if not is_data_error(fields):
                    raise fields
                key = self.keys.task(task_id)
                reason = str(blame(self.client.redis, "read", [key], str(fields)))
                tasks.append(Task.unreadable(self, task_id, reason))
            elif fields:
                tasks.append(Task.from_hash(self, task_id, fields, partial=True))
        return tasks

    def workers(self) -> list[WorkerInfo]:
        """Every registered worker with what it holds (one round trip for the ids, one for
        their details)."""
        redis = self.client.redis
        k = self.keys
        with (
            redis_errors(f"list workers of {self.name}"),
            naming_keys(redis, "list workers", [k.workers]),
        ):
            ids = sorted(cast(set[str], redis.smembers(k.workers)))
            pipe = redis.pipeline(transaction=False)
            for wid in ids:
                pipe.hgetall(k.worker(wid))
                pipe.lrange(k.worker_tasks(wid), 0, -1)
                pipe.exists(k.worker_alive(wid))
            # A worker key of the wrong type reads as empty: the others still show.
            replies = [
                {} if isinstance(r, Exception) and is_data_error(r) else r
                for r in pipe.execute(raise_on_error=False)
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

    def observe(self) -> QueueObservation:
        """The queue's figures and every worker it knows (registered, or drained), with owner,
        pod UID, held task and whether it was begun, in one round trip: an operator's tick.
        O(workers), read-only."""
        with redis_errors(f"observe {self.name}"):
            reply = self.transitions.observe()
            try:
                return parse_observation(self.name, reply)
            except (TypeError, ValueError) as exc:
                keys = self.transitions.observe_keys()
                error = blame(self.client.redis, "observe", keys, str(exc))
        raise error

    def events(self) -> EventStream:
        return EventStream(self.client.redis, self.keys.events, self.client.subscribers)

    # -- steering --------------------------------------------------------------------------

    def cancel(self, task_id: str) -> str:
        """Cancels a task. Returns 'cancelled' (it was waiting), or 'requested' (it is held by
        a worker, which stops it). Raises for unknown or finished tasks."""
        self._check(task_id)
        with redis_errors(f"cancel {task_id}"):
            outcome, state = self.transitions.cancel(task_id)
        if outcome == "missing":
            raise TaskNotFoundError(f"no task {task_id}")
        if outcome == "finished":
            raise InvalidStateError(f"task {task_id} already finished: {state}")
        return outcome

    def retry(self, task_id: str) -> None:
        """Puts a failed or cancelled task back in the queue."""
        self._check(task_id)
        with redis_errors(f"retry {task_id}"):
            outcome = self.transitions.retry(task_id)
        if outcome == "missing":
            raise TaskNotFoundError(f"no task {task_id}")
        if outcome != "requeued":
            raise InvalidStateError(
                f"task {task_id} is {outcome}: only failed or cancelled tasks can be retried"
            )

    def delete(self, task_id: str) -> None:
        """Deletes a task that no worker holds."""
        self._check(task_id)
        with redis_errors(f"delete {task_id}"):
            outcome = self.transitions.delete(task_id)
        if outcome == "missing":
            raise TaskNotFoundError(f"no task {task_id}")
        if outcome == "busy":
            raise InvalidStateError(f"task {task_id} is held by a worker: cancel it first")

    def purge(self, state: TaskState | str) -> int:
        """Deletes every task in one waiting or finished state; returns how many."""
        state = _listable(state)
        deleted = 0
        while ids := self._ids(state, 500):
            with redis_errors(f"purge {state} tasks of {self.name}"):
                outcomes = [self.transitions.delete(task_id) for task_id in ids]
            deleted += outcomes.count("deleted")
            if "deleted" not in outcomes:
                break  # all held by workers meanwhile: nothing more to do
        return deleted

    def _check(self, task_id: str) -> None:
        if queue_of_task(task_id) != self.name:
            raise InvalidNameError(f"task {task_id} does not belong to queue {self.name}")

    # -- settings --------------------------------------------------------------------------

    def config(self) -> QueueConfig:
        """The effective settings. A stored value that is not a valid setting is a
        `CorruptKeyError` naming the config hash: the `get_config` script refuses what no
        script can use, and this a value above its highest (written by hand or another
        client)."""
        with redis_errors(f"read config of {self.name}"):
            effective = self.transitions.get_config()
        try:
            return parse_config(effective)
        except ConfigError as exc:
            raise CorruptKeyError(
                f"config hash {self.keys.config} is corrupt: {exc} (write a valid value:"
                f" blueque config {self.name} NAME=VALUE)",
                self.keys.config,
            ) from None

    def set_config(self, **settings: Any) -> QueueConfig:
        """Writes settings (see `QueueConfig`); unknown fields and bad values raise
        `ConfigError` and nothing is written."""
        values = validate_settings(settings)
        with redis_errors(f"write config of {self.name}"):
            if values:
                flat = [part for pair in values.items() for part in pair]
                self.client.redis.hset(self.keys.config, items=flat)
            self._register()
        return self.config()

    # -- worker lifecycle (used by the operator, the scheduler and the CLI) -------------------

    def drain(self, worker_id: str) -> bool:
        """Marks an idle worker draining; False if it holds a task."""
        with redis_errors(f"drain {worker_id}"):
            return self.transitions.drain(validate_worker_id(worker_id))

    def undrain(self, worker_id: str) -> bool:
        with redis_errors(f"undrain {worker_id}"):
            return self.transitions.undrain(validate_worker_id(worker_id))

    def requeue_worker(self, worker_id: str, reason: str = "worker lost") -> tuple[int, int]:
        """Gives back a dead worker's tasks; returns (requeued, failed)."""
        with redis_errors(f"requeue worker {worker_id}"):
            return self.transitions.requeue_worker(validate_worker_id(worker_id), reason)

    def reap(self, reason: str = "worker heartbeat expired") -> tuple[int, int, int]:
        """requeue_worker for every worker whose heartbeat expired; returns (workers,
        requeued, failed)."""
        with redis_errors(f"reap workers of {self.name}"):
            return self.transitions.reap(reason)

    def claim_owner(self, owner: str, ttl_s: float) -> OwnerClaim:
        """Takes the queue's ownership claim for `owner`, or renews it when `owner` holds it
        already, for `ttl_s` seconds; when another holds it, changes nothing and says who
        (`acquired` False). Only the holder acts for the queue (PROTOCOL.md, *Ownership*)."""
        bounds.text("owner", owner, MAX_OWNER)
        ttl = bounds.number("ttl_s", ttl_s, 0.001, MAX_OWNER_TTL_S)
        with redis_errors(f"claim ownership of {self.name}"):
            return self.transitions.claim_owner(owner, max(1, round(ttl * 1000)))

    def release_owner(self, owner: str) -> bool:
        """Gives up the claim if `owner` holds it; False (nothing changed) otherwise."""
        bounds.text("owner", owner, MAX_OWNER)
        with redis_errors(f"release ownership of {self.name}"):
            return self.transitions.release_owner(owner)

    def promote_due(self, limit: int = 1000) -> tuple[int, int | None]:
        """Moves due scheduled tasks to pending; returns (promoted, next due time in ms)."""
        bounds.whole("limit", limit, 1, MAX_LIST)
        with redis_errors(f"promote scheduled tasks of {self.name}"):
            return self.transitions.promote_due(limit)


def _listable(state: TaskState | str) -> TaskState:
    """`state` as a TaskState kept in a list or set of the queue itself."""
    if state not in _LISTABLE:
        words = ", ".join(LISTABLE_STATES)
        raise InvalidArgumentError(f"state must be one of {words}, not {state!r}")
    return TaskState(state)


_LISTABLE = frozenset(LISTABLE)
