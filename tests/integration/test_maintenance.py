"""The maintenance calls of the library (what `blueque scheduler` and the operator run), on
a real server and a real cluster: promote and reap, separately or in one pass; one queue's
failure does not stop the others; the snapshot of queues and their busy workers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from blueque import Client, Queue
from blueque.maintenance import QueuePass, maintenance_pass, promote, reap, snapshot
from devtools.processes import wait_until
from tests.support.protocol import claim


def dead_worker_holding(queue: Queue, worker_id: str) -> str:
    """A worker that registered, claimed and began the head of pending, then died (its
    heartbeat key is gone). Returns the task id."""
    queue.transitions.heartbeat(worker_id, 30_000, {"host": "h", "pid": 7})
    task_id = claim(queue, worker_id)
    assert task_id is not None
    assert queue.transitions.begin(worker_id, task_id, 7).status == "ok"
    queue.client.redis.delete(queue.keys.worker_alive(worker_id))
    return task_id


def due_and_later(queue: Queue) -> tuple[str, str]:
    """A scheduled task that is due by now, and one due in an hour."""
    due = queue.schedule("due", delay=0.001)
    later = queue.schedule("later", delay=3600)
    due_at = queue.get_task(due).due_at
    assert due_at is not None
    wait_until(lambda: datetime.now(UTC) > due_at, what="the due time")
    return due, later


def test_promote_and_reap_separately_then_together(client: Client) -> None:
    queue = client.get_queue("maint.q")
    due, later = due_and_later(queue)
    queue.enqueue("held")
    held = dead_worker_holding(queue, "gone")
    promoted = promote(client)
    assert promoted.queues == (
        QueuePass("maint.q", promoted=1, next_due_ms=promoted.queues[0].next_due_ms),
    )
    assert promoted.next_due_in_s is not None and 3500 < promoted.next_due_in_s <= 3600
    assert client.get_task(due).status == "pending"
    assert [w.id for w in queue.workers()] == ["gone"]  # promote reaps nothing
    reaped = reap(client, ["maint.q"])
    assert reaped.queues == (QueuePass("maint.q", reaped_workers=1, requeued=1),)
    assert reaped.next_due_in_s is None  # reap does not look at scheduled tasks
    assert client.get_task(held).status == "pending" and queue.workers() == []
    both = maintenance_pass(client)
    assert [(q.promoted, q.reaped_workers, q.error) for q in both.queues] == [(0, 0, None)]
    assert both.as_dict()["queues"]["maint.q"] == {
        "promoted": 0,
        "reaped_workers": 0,
        "requeued": 0,
        "failed": 0,
        "reap_held_back": None,
        "error": None,
    }
    assert client.get_task(later).status == "scheduled"


def test_one_broken_queue_does_not_stop_the_others(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    broken = client.get_queue("a.broken")
    broken.enqueue("x")  # registers it
    client.redis.set(broken.keys.scheduled, "not a sorted set")  # every promote fails on it
    healthy = client.get_queue("b.healthy")
    due, _ = due_and_later(healthy)
    client.redis.sadd("blueque:queues", "bad{name}")  # garbage in the registry is skipped
    report = maintenance_pass(client)
    assert [q.queue for q in report.queues] == ["a.broken", "b.healthy"]
    failed = report.queues[0]
    assert failed.error is not None and broken.keys.scheduled in failed.error
    assert report.failures == (failed,)
    assert report.queues[1].promoted == 1 and report.queues[1].error is None
    assert client.get_task(due).status == "pending"
    assert any("a.broken" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    assert report.as_dict()["queues"]["a.broken"]["error"] == failed.error


def test_snapshot_shows_stats_and_busy_workers_with_their_task(client: Client) -> None:
    busy_q, idle_q = client.get_queue("snap.busy"), client.get_queue("snap.idle")
    busy_q.enqueue_many(["run me", "wait"])
    idle_q.enqueue("x")
    idle_q.transitions.heartbeat("idler", 30_000, {"host": "h", "pid": 8})
    busy_q.transitions.heartbeat("runner", 30_000, {"host": "h", "pid": 9})
    task_id = claim(busy_q, "runner")
    assert task_id is not None
    begun = busy_q.transitions.begin("runner", task_id, 9)
    assert busy_q.transitions.set_progress("runner", task_id, begun.attempt, '{"done": 3}')
    snap = snapshot(client)
    assert [(s.queue, s.pending, s.running, s.workers) for s in snap.stats] == [
        ("snap.busy", 1, 1, 1),
        ("snap.idle", 1, 0, 1),
    ]
    assert [(r.worker.id, r.task.id if r.task else None) for r in snap.running] == [
        ("runner", task_id)
    ]
    assert snap.running[0].task is not None and snap.running[0].task.progress == {"done": 3}
    only_idle = snapshot(client, ["snap.idle"])
    assert [s.queue for s in only_idle.stats] == ["snap.idle"] and only_idle.running == ()
