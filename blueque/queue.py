"""`Queue`: everything a producer, an operator or a person does to one queue.

Each method runs the steps of the same name in `blueque.operations` with the client's runner
(one round trip unless it says otherwise); `blueque.aio.AsyncQueue` runs the same steps
awaited. The scripts are in `protocol.py` / `lua/`, the key names in `keys.py`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from blueque.config import QueueConfig
from blueque.events import EventStream
from blueque.operations import QueueFace
from blueque.protocol import Transitions
from blueque.records import OwnerClaim, QueueObservation, QueueStats, WorkerInfo
from blueque.states import LISTABLE, TaskState
from blueque.steps import Steps
from blueque.task import Task

if TYPE_CHECKING:
    from blueque.client import Client

LISTABLE_STATES = LISTABLE  # (the name before blueque.states)
T = TypeVar("T")


class Queue(QueueFace[Task]):
    client: Client
    task_type = Task

    def __init__(self, client: Client, name: str) -> None:
        super().__init__(client, name)
        self.transitions = Transitions(client.runner, self.keys, client.scripting)

    def run(self, steps: Steps[T]) -> T:
        return self.client.runner.run(steps)

    # -- producing -------------------------------------------------------------------------

    def enqueue(self, parameters: Any) -> str:
        """Adds a task at the tail of the queue; returns its id."""
        return self.run(self.ops.enqueue(parameters))

    def enqueue_many(self, parameters: Iterable[Any]) -> list[str]:
        """Adds many tasks in one atomic round trip; returns their ids in order. A string,
        bytes or a mapping is refused (`InvalidArgumentError`): it is not a list of tasks."""
        return self.run(self.ops.enqueue_many(parameters))

    def schedule(
        self, parameters: Any, *, eta: datetime | None = None, delay: float | None = None
    ) -> str:
        """Adds a task that becomes pending at `eta` (a datetime; naive means local time, as
        everywhere in Python) or after `delay` seconds. A time in the past makes it pending
        at once; one more than ten years ahead (`MAX_DELAY_S`), a NaN or an infinity is
        refused with `InvalidArgumentError`."""
        return self.run(self.ops.schedule(parameters, eta, delay))

    # -- reading ---------------------------------------------------------------------------

    def get_task(self, task_id: str) -> Task:
        return self.run(self.ops.get_task(task_id))

    def wait(
        self, task_id: str, timeout: float | None = None, *, raise_on_failure: bool = False
    ) -> Task:
        """`Task.wait` from an id alone (what `enqueue` returns), without reading the task
        first: one round trip in all for a task that finishes with a small result."""
        return self.run(self.ops.wait(task_id, timeout, raise_on_failure))

    def stats(self) -> QueueStats:
        return self.run(self.ops.stats())

    def tasks(self, state: TaskState | str, limit: int = 100) -> list[Task]:
        """Tasks in one state: pending in queue order, scheduled by due time, finished
        newest first. Reserved and running tasks are listed per worker: see `workers()`."""
        return self.run(self.ops.tasks(state, limit))

    def get_tasks(self, task_ids: Iterable[str]) -> list[Task]:
        """Snapshots of many tasks of this queue in one round trip; unknown ids are left
        out. A task that cannot be read is listed with `corrupt` saying why (lists never fail
        for one bad task)."""
        return self.run(self.ops.get_tasks(task_ids))

    def workers(self) -> list[WorkerInfo]:
        """Every registered worker with what it holds (one round trip for the ids, one for
        their details)."""
        return self.run(self.ops.workers())

    def observe(self) -> QueueObservation:
        """The queue's figures and every worker it knows (registered, or drained), with owner,
        pod UID, held task and whether it was begun, in one round trip: an operator's tick.
        O(workers), read-only."""
        return self.run(self.ops.observe())

    def events(self) -> EventStream:
        return EventStream(self.client.redis, self.keys.events, self.client.subscribers)

    # -- steering --------------------------------------------------------------------------

    def cancel(self, task_id: str) -> str:
        """Cancels a task. Returns 'cancelled' (it was waiting), or 'requested' (it is held by
        a worker, which stops it). Raises for unknown or finished tasks."""
        return self.run(self.ops.cancel(task_id))

    def retry(self, task_id: str) -> None:
        """Puts a failed or cancelled task back in the queue."""
        self.run(self.ops.retry(task_id))

    def delete(self, task_id: str) -> None:
        """Deletes a task that no worker holds."""
        self.run(self.ops.delete(task_id))

    def purge(self, state: TaskState | str) -> int:
        """Deletes every task in one waiting or finished state; returns how many."""
        return self.run(self.ops.purge(state))

    # -- settings --------------------------------------------------------------------------

    def config(self) -> QueueConfig:
        """The effective settings. A stored value that is not a valid setting is a
        `CorruptKeyError` naming the config hash: the `get_config` script refuses what no
        script can use, and this a value above its highest (written by hand or another
        client)."""
        return self.run(self.ops.config())

    def set_config(self, **settings: Any) -> QueueConfig:
        """Writes settings (see `QueueConfig`); unknown fields and bad values raise
        `ConfigError` and nothing is written."""
        return self.run(self.ops.set_config(settings))

    # -- worker lifecycle (used by the operator, the scheduler and the CLI) -------------------

    def drain(self, worker_id: str) -> bool:
        """Marks an idle worker draining; False if it holds a task."""
        return self.run(self.ops.drain(worker_id))

    def undrain(self, worker_id: str) -> bool:
        return self.run(self.ops.undrain(worker_id))

    def requeue_worker(self, worker_id: str, reason: str = "worker lost") -> tuple[int, int]:
        """Gives back a dead worker's tasks; returns (requeued, failed)."""
        return self.run(self.ops.requeue_worker(worker_id, reason))

    def reap(self, reason: str = "worker heartbeat expired") -> tuple[int, int, int]:
        """requeue_worker for every worker whose heartbeat expired; returns (workers,
        requeued, failed)."""
        return self.run(self.ops.reap(reason))

    def promote_due(self, limit: int = 1000) -> tuple[int, int | None]:
        """Moves due scheduled tasks to pending; returns (promoted, next due time in ms)."""
        return self.run(self.ops.promote_due(limit))

    def claim_owner(self, owner: str, ttl_s: float) -> OwnerClaim:
        """Takes the queue's ownership claim for `owner`, or renews it when `owner` holds it
        already, for `ttl_s` seconds; when another holds it, changes nothing and says who
        (`acquired` False). Only the holder acts for the queue (PROTOCOL.md, *Ownership*)."""
        return self.run(self.ops.claim_owner(owner, ttl_s))

    def release_owner(self, owner: str) -> bool:
        """Gives up the claim if `owner` holds it; False (nothing changed) otherwise."""
        return self.run(self.ops.release_owner(owner))
