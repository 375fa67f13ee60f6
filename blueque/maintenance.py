"""Looking after queues, as library calls: promote due scheduled tasks, reap workers whose
heartbeat expired, and a snapshot of queues with their busy workers.

`blueque scheduler` runs `maintenance_pass` (promote, then reap) in a loop and `blueque info`
shows a `snapshot`; the operator calls `promote` and `snapshot` on their own (in Kubernetes it
reaps by pod deletion, not by heartbeat). Each call takes queue names (none: every
registered queue) and returns frozen values that the CLI only formats. In a pass, a queue
that fails (a Redis error on its slot, a corrupt config) is logged by name and reported, and
the other queues go on; a stray name in the registry is skipped. Reaping goes through a
`ReapGuard` when one is given (a reaper keeps one across its passes), so that an outage is
not taken for the death of every worker; see `blueque/reaping.py`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import redis.exceptions

from blueque.connection import REDIS_DOWN
from blueque.errors import BluequeError, CorruptKeyError, InvalidNameError
from blueque.keys import validate_queue_name
from blueque.queue import Queue
from blueque.reaping import ReapGuard
from blueque.records import QueueStats, TaskSnapshot, WorkerInfo

if TYPE_CHECKING:
    from blueque.client import Client

log = logging.getLogger("blueque.maintenance")

REAP_REASON = "worker heartbeat expired"

# What one queue's failure may be; anything else is a bug and propagates.
_QUEUE_FAILURES = (
    BluequeError,
    redis.exceptions.RedisError,
    redis.exceptions.RedisClusterException,
)


@dataclass(frozen=True)
class QueuePass:
    """What a pass did on one queue."""

    queue: str
    promoted: int = 0
    next_due_ms: int | None = None
    """Due time (Redis server clock, ms) of the queue's next scheduled task, if promoted."""
    reaped_workers: int = 0
    requeued: int = 0
    failed: int = 0
    """Tasks of reaped workers that failed (past max_attempts) instead of being requeued."""
    reap_held_back: str | None = None
    """Why the guard held the reap back (then nothing was reaped)."""
    error: str | None = None
    """Why this queue's pass failed; the counts are then those done before the failure."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "promoted": self.promoted,
            "reaped_workers": self.reaped_workers,
            "requeued": self.requeued,
            "failed": self.failed,
            "reap_held_back": self.reap_held_back,
            "error": self.error,
        }


@dataclass(frozen=True)
class PassReport:
    queues: tuple[QueuePass, ...]
    next_due_in_s: float | None
    """Seconds until the earliest next scheduled task of these queues (None: none)."""

    @property
    def failures(self) -> tuple[QueuePass, ...]:
        return tuple(q for q in self.queues if q.error is not None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "queues": {q.queue: q.as_dict() for q in self.queues},
            "next_due_in_s": self.next_due_in_s,
        }


@dataclass(frozen=True)
class WorkerRow:
    """A worker with the task it runs (for that task's progress), if any; the task as either
    client read it."""

    worker: WorkerInfo
    task: TaskSnapshot | None


@dataclass(frozen=True)
class QueueSnapshot:
    """Stats of some queues and their busy workers, as `blueque info` shows them."""

    stats: tuple[QueueStats, ...]
    running: tuple[WorkerRow, ...]
    errors: tuple[tuple[str, str], ...] = ()
    """(queue, message naming the key) for each queue whose keys could not be read: those
    are left out and never hide the others."""


def queue_names(client: Client, names: Sequence[str] = ()) -> list[str]:
    """`names`, or every registered queue with a valid name (`valid_names`)."""
    return list(names) if names else valid_names(client.queues())


def valid_names(registered: Iterable[str]) -> list[str]:
    """The registered queue names that are valid ones. The registry is not validated by
    Redis: a stray entry that is no valid queue name is left out (and logged), not fatal."""
    valid = []
    for name in registered:
        try:
            validate_queue_name(name)
        except InvalidNameError as exc:
            log.info("skipping %s", exc)
            continue
        valid.append(name)
    return valid


def promote(client: Client, names: Sequence[str] = (), limit: int = 1000) -> PassReport:
    """Moves due scheduled tasks to pending on each queue."""
    return _each_queue(client, names, lambda q, done: _promote(q, done, limit), None)


def reap(
    client: Client,
    names: Sequence[str] = (),
    guard: ReapGuard | None = None,
    reason: str = REAP_REASON,
) -> PassReport:
    """Requeues the tasks of every worker whose heartbeat expired, on each queue (through
    `guard`, which may hold a reap back; without one, at once)."""
    return _each_queue(client, names, lambda q, done: _reap(q, done, guard, reason), guard)


def maintenance_pass(
    client: Client, names: Sequence[str] = (), guard: ReapGuard | None = None
) -> PassReport:
    """`promote`, then `reap`, on each queue: what `blueque scheduler` does every pass."""

    def both(queue: Queue, done: QueuePass) -> QueuePass:
        return _reap(queue, _promote(queue, done, 1000), guard, REAP_REASON)

    return _each_queue(client, names, both, guard)


def _promote(queue: Queue, done: QueuePass, limit: int) -> QueuePass:
    promoted, next_due_ms = queue.promote_due(limit)
    return replace(done, promoted=promoted, next_due_ms=next_due_ms)


def _reap(queue: Queue, done: QueuePass, guard: ReapGuard | None, reason: str) -> QueuePass:
    if guard is None:
        reaped, requeued, failed = queue.reap(reason)
        return replace(done, reaped_workers=reaped, requeued=requeued, failed=failed)
    r = guard.reap(queue, reason)
    return replace(
        done,
        reaped_workers=r.workers,
        requeued=r.requeued,
        failed=r.failed,
        reap_held_back=r.held_back,
    )


def _each_queue(
    client: Client,
    names: Sequence[str],
    step: Callable[[Queue, QueuePass], QueuePass],
    guard: ReapGuard | None,
) -> PassReport:
    now_ms = time.time() * 1000
    results: list[QueuePass] = []
    for name in queue_names(client, names):
        done = QueuePass(name)
        try:
            done = step(client.get_queue(name), done)
        except _QUEUE_FAILURES as exc:
            if guard is not None and isinstance(exc, REDIS_DOWN):
                guard.lost()  # the workers may not have reached Redis either
            log.warning("queue %s: %s (the other queues go on)", name, exc)
            done = replace(done, error=str(exc) or type(exc).__name__)
        else:
            if done.promoted or done.reaped_workers:
                log.info(
                    "%s: promoted %d; reaped %d worker(s): %d requeued, %d failed",
                    name,
                    done.promoted,
                    done.reaped_workers,
                    done.requeued,
                    done.failed,
                )
        results.append(done)
    due = [q.next_due_ms for q in results if q.next_due_ms is not None]
    next_due_in_s = max(0.0, (min(due) - now_ms) / 1000) if due else None
    return PassReport(tuple(results), next_due_in_s)


def worker_rows(queue: Queue) -> tuple[WorkerRow, ...]:
    """Each worker of a queue with the task it runs: two round trips."""
    workers = queue.workers()
    running = {t.id: t for t in queue.get_tasks(w.task for w in workers if w.task)}
    return tuple(WorkerRow(w, running.get(w.task) if w.task else None) for w in workers)


def snapshot(client: Client, names: Sequence[str] = ()) -> QueueSnapshot:
    """Stats of the queues (every registered one by default) and their busy workers: one
    round trip per queue, two more per queue that has workers."""
    stats: list[QueueStats] = []
    busy: list[WorkerRow] = []
    errors: list[tuple[str, str]] = []
    for name in queue_names(client, names):
        queue = client.get_queue(name)
        try:
            queue_stats = queue.stats()
            rows = worker_rows(queue) if queue_stats.workers else ()
        except CorruptKeyError as exc:
            errors.append((name, str(exc)))
            continue
        stats.append(queue_stats)
        busy += [row for row in rows if row.worker.task]
    return QueueSnapshot(tuple(stats), tuple(busy), tuple(errors))
