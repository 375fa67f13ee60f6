"""Scheduled tasks: schedule(eta=/delay=), promote_due, and several promoters at once; on
standalone Redis and on a 3-master cluster."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from blueque import Client
from devtools.processes import wait_until
from tests.support.protocol import collect, names
from tests.support.workers import WorkerSpawner


def test_schedule_with_delay_then_promote(client: Client) -> None:
    queue = client.get_queue("sched.q")
    with queue.events() as events:
        task_id = queue.schedule({"later": True}, delay=0.4)
        task = client.get_task(task_id)
        assert task.status == "scheduled" and task.due_at is not None
        assert queue.stats().scheduled == 1
        promoted, next_due = queue.promote_due()
        assert promoted == 0
        assert next_due == int(task.due_at.timestamp() * 1000)
        assert client.redis.llen(queue.keys.pending) == 0
        wait_until(lambda: queue.promote_due()[0] == 1, 5, interval_s=0.05, what="promotion")
        got = collect(events, 2)
    assert names(got) == ["scheduled", "promoted"]
    assert client.get_task(task_id).status == "pending"
    assert client.redis.lrange(queue.keys.pending, 0, -1) == [task_id]
    stats = queue.stats()
    assert (stats.scheduled, stats.pending, stats.totals["promoted"]) == (0, 1, 1)
    assert queue.promote_due() == (0, None)


def test_schedule_with_eta(client: Client) -> None:
    queue = client.get_queue("sched.q")
    now = datetime.now(UTC)
    soon = queue.schedule(1, eta=now + timedelta(seconds=0.3))
    later = queue.schedule(2, eta=now + timedelta(hours=1))
    past = queue.schedule(3, eta=now - timedelta(minutes=5))
    assert client.get_task(past).status == "pending"  # a past eta is due at once
    due_at = client.get_task(later).due_at
    assert due_at is not None and abs((due_at - now).total_seconds() - 3600) < 5
    assert [t.id for t in queue.tasks("scheduled")] == [soon, later]
    wait_until(lambda: queue.promote_due()[0] == 1, 5, interval_s=0.05, what="promotion")
    assert client.redis.lrange(queue.keys.pending, 0, -1) == [past, soon]
    assert client.get_task(later).status == "scheduled"


def test_schedule_takes_exactly_one_of_eta_and_delay(client: Client) -> None:
    queue = client.get_queue("sched.q")
    with pytest.raises(ValueError, match="exactly one"):
        queue.schedule(1)
    with pytest.raises(ValueError, match="exactly one"):
        queue.schedule(1, delay=1, eta=datetime.now(UTC))
    assert queue.stats().totals["enqueued"] == 0


def test_concurrent_promoters_promote_each_task_exactly_once(
    client: Client, backend_url: str
) -> None:
    queue = client.get_queue("sched.q")
    count = 300
    ids = [queue.schedule({"i": i}, delay=0.3) for i in range(count)]
    promoted_by: list[int] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def promoter() -> None:
        own = Client(backend_url)
        try:
            q = own.get_queue("sched.q")
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                n, next_due = q.promote_due(limit=7)  # small batches: many interleavings
                with lock:
                    promoted_by.append(n)
                if n == 0 and next_due is None:
                    return
        except BaseException as exc:
            errors.append(exc)
        finally:
            own.close()

    with queue.events() as events:
        threads = [threading.Thread(target=promoter) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        got = collect(events, count, timeout_s=10)
        extra = events.next(timeout=0.2)
    assert not errors, errors
    assert sum(promoted_by) == count
    pending = client.redis.lrange(queue.keys.pending, 0, -1)
    assert sorted(pending) == sorted(ids) and len(set(pending)) == count
    assert names(got) == ["promoted"] * count and extra is None
    assert Counter(e["task"] for e in got) == Counter(ids)  # one event per task
    stats = queue.stats()
    assert (stats.scheduled, stats.pending, stats.totals["promoted"]) == (0, count, count)
    assert {client.get_task(t).status for t in ids[::50]} == {"pending"}


def test_idle_workers_promote_concurrently_and_each_task_runs_once(
    client_standalone: Client, redis_url: str, workers: WorkerSpawner
) -> None:
    queue = client_standalone.get_queue("sched.q")
    ids = [queue.schedule({"result": i}, delay=0.5) for i in range(60)]
    with queue.events() as events:
        for _ in range(3):
            workers.start(redis_url, "sched.q", env={"BLUEQUE_PROMOTE_INTERVAL_S": "0.05"})
        wait_until(lambda: queue.stats().complete == len(ids), 30, what="every task to run")
        got = collect(events, 3 * len(ids) + 10, timeout_s=1)
    promoted = Counter(e["task"] for e in got if e["event"] == "promoted")
    started = Counter(e["task"] for e in got if e["event"] == "started")
    assert promoted == Counter(ids) and started == Counter(ids)
    assert [client_standalone.get_task(t).result for t in ids] == list(range(60))
    assert queue.stats().totals["promoted"] == len(ids)
