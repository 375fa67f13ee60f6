"""When a worker's silence may be trusted: a guard in front of `Queue.reap`.

Reaping requeues the tasks of every worker whose alive key is gone. But an alive key expires
by the clock, and its expiry is absolute: it runs on while Redis is down (a server restarted
from its AOF or RDB drops what expired meanwhile), and while the reaper cannot reach Redis
the workers may not reach it either. So right after an outage longer than the heartbeat TTL
every worker looks dead, and reaping then would run each running task a second time.

`ReapGuard` lets a reap through only once Redis has been up (`uptime_in_seconds` of INFO
server, on the node that holds the queue's slot) and the reaper's own connection back for
at least the longest heartbeat TTL the queue's workers recorded (`heartbeat_ttl_ms` in the
worker hash): by then every live worker has heartbeated again (a worker retries at least
every half TTL while Redis is unavailable). A worker that really died is reaped once that
window has passed.

What it cannot see: a reaper that starts fresh (`blueque scheduler --once`) knows nothing of
its own earlier loss of Redis, only of Redis's restarts; a failover to a replica that was up
all along, or a Redis paused without a restart, does not reset the uptime.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import redis.exceptions as redis_exceptions

from blueque.connection import REDIS_DOWN, is_cluster
from blueque.queue import Queue

log = logging.getLogger("blueque.reaping")

# The window for a worker hash without `heartbeat_ttl_ms` (a worker older than that field):
# the default heartbeat TTL.
DEFAULT_TTL_S = 30.0


@dataclass(frozen=True)
class Reaped:
    """What one guarded reap did: workers reaped, tasks requeued and failed, or why it was
    held back (then nothing was done)."""

    workers: int = 0
    requeued: int = 0
    failed: int = 0
    held_back: str | None = None


def hold_back_reason(
    uptime_s: float | None, connected_for_s: float | None, window_s: float
) -> str | None:
    """Why a reap must wait, or None. `uptime_s` is None when Redis does not tell it;
    `connected_for_s` is None when the reaper never lost its connection."""
    if uptime_s is not None and uptime_s < window_s:
        return (
            f"Redis has been up for {uptime_s:g} s only; reaping waits until {window_s:g} s"
            " (the longest heartbeat TTL), so that live workers heartbeat again first"
        )
    if connected_for_s is not None and connected_for_s < window_s:
        return (
            f"this reaper reached Redis again {connected_for_s:.1f} s ago; reaping waits until"
            f" {window_s:g} s (the longest heartbeat TTL), so that live workers heartbeat"
            " again first"
        )
    return None


class ReapGuard:
    """Keep one per reaper process, across its passes, and tell it when Redis could not be
    reached (`lost`); its own failed reads count too."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lost = False
        self._back_at: float | None = None
        self._held: set[str] = set()  # queues whose last reap was held back (for the log)

    def lost(self) -> None:
        """The reaper could not reach Redis (or Redis refused it, out of memory)."""
        self._lost = True

    def reap(self, queue: Queue, reason: str = "worker lost") -> Reaped:
        try:
            why = self._hold_back(queue)
            if why is not None:
                if queue.name not in self._held:
                    log.info("%s: reaping held back: %s", queue.name, why)
                    self._held.add(queue.name)
                return Reaped(held_back=why)
            reaped, requeued, failed = queue.reap(reason)
        except REDIS_DOWN:
            self.lost()
            raise
        if queue.name in self._held:
            log.info("%s: reaping resumed", queue.name)
            self._held.discard(queue.name)
        return Reaped(reaped, requeued, failed)

    def _hold_back(self, queue: Queue) -> str | None:
        window_s = longest_heartbeat_ttl_s(queue)
        uptime_s = redis_uptime_s(queue)
        now = self._clock()
        if self._lost:
            self._lost, self._back_at = False, now
        if window_s is None:
            return None  # no registered worker: nothing to reap
        connected_for = None if self._back_at is None else now - self._back_at
        return hold_back_reason(uptime_s, connected_for, window_s)


def longest_heartbeat_ttl_s(queue: Queue) -> float | None:
    """The longest heartbeat TTL among the queue's registered workers; None if none."""
    redis = queue.client.redis
    ids = sorted(cast(set[str], redis.smembers(queue.keys.workers)))
    if not ids:
        return None
    pipe = redis.pipeline(transaction=False)
    for worker_id in ids:
        pipe.hget(queue.keys.worker(worker_id), "heartbeat_ttl_ms")
    ttls = [_seconds(raw) for raw in pipe.execute()]
    return max(ttls)


def _seconds(raw_ms: Any) -> float:
    try:
        return max(0.0, int(raw_ms) / 1000)
    except (TypeError, ValueError):
        return DEFAULT_TTL_S


def redis_uptime_s(queue: Queue) -> float | None:
    """How long the Redis server that holds the queue's keys has been up; None if it does
    not say (a proxy or an emulation without INFO)."""
    redis = queue.client.redis
    try:
        if is_cluster(redis):
            node = redis.get_node_from_key(queue.keys.workers)  # type: ignore[no-untyped-call]
            info = redis.info("server", target_nodes=node)
        else:
            info = redis.info("server")
        return float(info["uptime_in_seconds"])
    except (redis_exceptions.ResponseError, KeyError, TypeError, ValueError):
        return None
