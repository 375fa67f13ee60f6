"""The reap guard's decisions: wait one heartbeat TTL after Redis restarted or after the
reaper reached it again; on fakeredis (which has no INFO: the uptime is unknown there)."""

from __future__ import annotations

import redis

from blueque import Client, Worker, WorkerSettings
from blueque.reaping import Reaped, ReapGuard, hold_back_reason
from tests.unit.test_worker_loop import DirectRunner


def test_hold_back_reason() -> None:
    assert hold_back_reason(uptime_s=1, connected_for_s=None, window_s=2) is not None
    assert hold_back_reason(uptime_s=2, connected_for_s=None, window_s=2) is None
    assert hold_back_reason(uptime_s=None, connected_for_s=None, window_s=2) is None
    assert hold_back_reason(uptime_s=100, connected_for_s=1.5, window_s=2) is not None
    assert hold_back_reason(uptime_s=100, connected_for_s=2.5, window_s=2) is None


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_after_a_lost_connection_reaping_waits_the_longest_ttl(fake_client: Client) -> None:
    queue = fake_client.get_queue("q")
    for worker_id, ttl_ms in (("short", 2000), ("long", 5000)):
        queue.transitions.heartbeat(worker_id, ttl_ms, {"host": "h", "pid": 1})
    fake_client.redis.delete(queue.keys.worker_alive("long"))  # silent: dead or cut off
    clock = Clock()
    guard = ReapGuard(clock)
    guard.lost()
    held = guard.reap(queue)
    assert held.held_back is not None and "5 s" in held.held_back
    clock.now += 4.9
    assert guard.reap(queue).held_back is not None
    clock.now += 0.2
    assert guard.reap(queue) == Reaped(workers=1)
    assert [w.id for w in queue.workers()] == ["short"]


def test_a_worker_hash_without_its_ttl_counts_the_default(fake_client: Client) -> None:
    queue = fake_client.get_queue("q")
    queue.transitions.heartbeat("old", 2000, {"host": "h", "pid": 1})
    fake_client.redis.hdel(queue.keys.worker("old"), "heartbeat_ttl_ms")  # an older worker
    clock = Clock()
    guard = ReapGuard(clock)
    guard.lost()
    clock.now += 29
    assert guard.reap(queue).held_back is not None  # the 30 s default, not 2 s
    assert ReapGuard(clock).reap(queue) == Reaped()  # a reaper that never lost Redis: alive


def test_a_worker_retries_at_least_every_half_ttl_while_redis_is_unavailable(
    fake_client: Client,
) -> None:
    """What the guard's window relies on: a live worker heartbeats again within one TTL."""
    settings = WorkerSettings(
        worker_id="w", heartbeat_interval_s=0.5, heartbeat_ttl_s=2, reconnect_max_delay_s=10
    )
    worker = Worker(fake_client, "q", lambda task: None, DirectRunner(), settings)
    waits: list[float] = []
    worker.sleep = waits.append  # type: ignore[method-assign, assignment]
    failures = iter(range(12))

    def unavailable() -> None:
        if next(failures, None) is not None:
            raise redis.exceptions.ConnectionError("down")

    worker._with_redis(unavailable)
    assert len(waits) == 12 and max(waits) == 1.0  # not the 10 s reconnect cap
