"""The protocol suite: every state, transition, counter and event, on standalone Redis and on
a 3-master Redis Cluster (the `client` fixture runs each test on both)."""

from __future__ import annotations

import json
import threading

import pytest

from blueque import (
    Client,
    InvalidStateError,
    TaskFailedError,
    TaskNotFoundError,
    WaitTimeoutError,
)
from devtools.processes import wait_until
from tests.support.protocol import claim, collect, names, run_one


def test_states_counters_and_events_of_a_completed_task(client: Client) -> None:
    queue = client.get_queue("life.q")
    with queue.events() as events:
        task_id = queue.enqueue({"n": 1})
        assert client.get_task(task_id).status == "pending"
        stats = queue.stats()
        assert (stats.pending, stats.reserved, stats.running) == (1, 0, 0)
        assert stats.totals["enqueued"] == 1
        assert stats.oldest_pending_age_s is not None

        queue.transitions.heartbeat("w1", 10_000, {"host": "h", "pid": 7})
        assert [w.state for w in queue.workers()] == ["idle"]
        assert claim(queue, "w1") == task_id
        stats = queue.stats()
        assert (stats.pending, stats.reserved, stats.running) == (0, 1, 0)
        assert client.get_task(task_id).status == "pending"  # reserved shows in stats...
        (info,) = queue.workers()  # ...and in the worker that holds it
        assert (info.state, info.holding, info.pid) == ("reserved", (task_id,), 7)

        begun = queue.transitions.begin("w1", task_id, 4242)
        assert (begun.status, begun.attempt, json.loads(begun.parameters or "")) == (
            "ok",
            1,
            {"n": 1},
        )
        task = client.get_task(task_id)
        assert (task.status, task.attempts, task.worker) == ("running", 1, "w1")
        assert [(w.state, w.task) for w in queue.workers()] == [("busy", task_id)]
        stats = queue.stats()
        assert (stats.reserved, stats.running, stats.totals["started"]) == (0, 1, 1)

        assert queue.transitions.finish("w1", task_id, 1, "complete", '"r"') == "complete"
        task = client.get_task(task_id)
        assert (task.status, task.result, task.error) == ("complete", "r", None)
        assert task.finished_at is not None and task.started_at is not None
        stats = queue.stats()
        assert (stats.running, stats.complete, stats.totals["completed"]) == (0, 1, 1)
        assert stats.oldest_pending_age_s is None
        got = collect(events, 3)
    assert names(got) == ["enqueued", "started", "complete"]
    assert all(e["task"] == task_id for e in got)
    assert [e["state"] for e in got] == ["pending", "running", "complete"]


def test_failed_task_keeps_its_error(client: Client) -> None:
    queue = client.get_queue("fail.q")
    task_id = queue.enqueue("x")
    claim(queue, "w1")
    queue.transitions.begin("w1", task_id, 1)
    error = {"type": "ValueError", "message": "boom", "traceback": "Traceback..."}
    with queue.events() as events:
        assert queue.transitions.finish("w1", task_id, 1, "failed", json.dumps(error)) == "failed"
        assert names(collect(events, 1)) == ["failed"]
    task = client.get_task(task_id)
    assert (task.status, task.error, task.result) == ("failed", error, None)
    stats = queue.stats()
    assert (stats.failed, stats.totals["failed"], stats.running) == (1, 1, 0)
    with pytest.raises(TaskFailedError, match="boom"):
        task.wait(1, raise_on_failure=True)


def test_enqueue_many_keeps_order_in_one_round_trip(client: Client) -> None:
    queue = client.get_queue("many.q")
    assert queue.enqueue_many([]) == []
    with queue.events() as events:
        ids = queue.enqueue_many([{"i": i} for i in range(20)])
        got = collect(events, 20)
    assert len(set(ids)) == 20
    assert client.redis.lrange(queue.keys.pending, 0, -1) == ids
    assert [client.get_task(t).parameters for t in ids] == [{"i": i} for i in range(20)]
    assert queue.stats().totals["enqueued"] == 20
    assert names(got) == ["enqueued"] * 20 and [e["task"] for e in got] == ids
    assert [t.id for t in queue.tasks("pending")] == ids


def test_cancel_pending_and_scheduled(client: Client) -> None:
    queue = client.get_queue("cancel.q")
    pending_id = queue.enqueue(1)
    scheduled_id = queue.schedule(2, delay=60)
    assert client.get_task(scheduled_id).status == "scheduled"
    with queue.events() as events:
        assert queue.cancel(pending_id) == "cancelled"
        assert client.get_task(scheduled_id).cancel() == "cancelled"
        got = collect(events, 2)
    assert names(got) == ["cancelled", "cancelled"]
    assert client.get_task(pending_id).status == "cancelled"
    assert client.get_task(scheduled_id).status == "cancelled"
    stats = queue.stats()
    assert (stats.pending, stats.scheduled, stats.cancelled) == (0, 0, 2)
    assert (stats.reserved, stats.totals["cancelled"]) == (0, 2)
    with pytest.raises(InvalidStateError):
        queue.cancel(pending_id)


def test_cancel_reserved_task_is_cancelled_at_begin(client: Client) -> None:
    queue = client.get_queue("cancel.q")
    task_id = queue.enqueue(1)
    claim(queue, "w1")
    with queue.events() as events:
        assert queue.cancel(task_id) == "requested"
        assert client.get_task(task_id).cancel_requested
        assert queue.transitions.begin("w1", task_id, 1).status == "cancelled"
        got = collect(events, 2)
    assert names(got) == ["cancel_requested", "cancelled"]
    task = client.get_task(task_id)
    assert (task.status, task.attempts) == ("cancelled", 0)
    assert client.redis.llen(queue.keys.worker_tasks("w1")) == 0
    stats = queue.stats()
    assert (stats.reserved, stats.running, stats.cancelled) == (0, 0, 1)


def test_cancel_running_task_is_signalled_through_the_heartbeat(client: Client) -> None:
    queue = client.get_queue("cancel.q")
    task_id = queue.enqueue(1)
    claim(queue, "w1")
    queue.transitions.begin("w1", task_id, 1)
    assert queue.transitions.heartbeat("w1", 10_000, {}, task_id) == (False, False)
    assert queue.cancel(task_id) == "requested"
    assert queue.transitions.heartbeat("w1", 10_000, {}, task_id) == (False, True)
    error = json.dumps({"type": "Cancelled", "message": "stopped"})
    assert queue.transitions.finish("w1", task_id, 1, "cancelled", error) == "cancelled"
    assert client.get_task(task_id).status == "cancelled"
    assert queue.stats().running == 0


def test_retry_moves_failed_task_back_to_pending(client: Client) -> None:
    queue = client.get_queue("retry.q")
    task_id = queue.enqueue(1)
    claim(queue, "w1")
    queue.transitions.begin("w1", task_id, 1)
    error = json.dumps({"type": "ValueError", "message": "boom"})
    queue.transitions.finish("w1", task_id, 1, "failed", error)
    waiting_id = queue.enqueue(2)
    with pytest.raises(InvalidStateError):
        queue.retry(waiting_id)  # a pending task cannot be retried
    with queue.events() as events:
        client.get_task(task_id).retry()
        assert names(collect(events, 1)) == ["retried"]
    task = client.get_task(task_id)
    # attempts is kept (the fencing token only grows); the budgets start again.
    assert (task.status, task.attempts, task.losses, task.retries) == ("pending", 1, 0, 0)
    stats = queue.stats()
    assert (stats.failed, stats.pending, stats.totals["retried"]) == (0, 2, 1)
    queue.delete(waiting_id)
    assert claim(queue, "w1") == task_id
    assert queue.transitions.begin("w1", task_id, 1).attempt == 2
    queue.transitions.finish("w1", task_id, 2, "complete", '"fine"')
    task = client.get_task(task_id)
    assert (task.status, task.result) == ("complete", "fine")
    # The old failure is history, not the outcome of a task that completed.
    assert task.error is None
    assert task.last_error is not None and task.last_error["message"] == "boom"


def test_delete_anywhere_but_in_a_worker(client: Client) -> None:
    queue = client.get_queue("delete.q")
    pending_id, scheduled_id, reserved_id = queue.enqueue(1), queue.schedule(2, delay=60), None
    done_id = run_one(queue, "w1")  # completes pending_id? no: the head of pending
    assert done_id == pending_id
    pending_id = queue.enqueue(3)
    reserved_id = queue.enqueue(4)
    claim(queue, "w2")  # reserves pending_id (the head)
    reserved_id, pending_id = pending_id, reserved_id
    with queue.events() as events:
        for task_id in (pending_id, scheduled_id, done_id):
            client.get_task(task_id).delete()
        got = collect(events, 3)
    assert names(got) == ["deleted"] * 3
    for task_id in (pending_id, scheduled_id, done_id):
        with pytest.raises(TaskNotFoundError):
            client.get_task(task_id)
    with pytest.raises(InvalidStateError, match="held by a worker"):
        queue.delete(reserved_id)
    with pytest.raises(TaskNotFoundError):
        queue.delete(pending_id)
    stats = queue.stats()
    assert (stats.pending, stats.scheduled, stats.complete, stats.reserved) == (0, 0, 0, 1)


def test_retention_keep_finished(client: Client) -> None:
    queue = client.get_queue("keep.q")
    queue.set_config(keep_finished=5)
    ids = queue.enqueue_many(list(range(20)))
    for _ in ids:
        run_one(queue, "w1")  # many finish within one millisecond: order must still hold
    for task_id in ids[:15]:
        with pytest.raises(TaskNotFoundError):
            client.get_task(task_id)
    assert {client.get_task(t).status for t in ids[15:]} == {"complete"}
    assert queue.stats().complete == 5
    assert [t.id for t in queue.tasks("complete")] == ids[:14:-1]  # newest first


def test_retention_finished_ttl(client: Client) -> None:
    queue = client.get_queue("ttl.q")
    queue.set_config(finished_ttl_s=1)
    first = run_one(queue, "w1") if queue.enqueue(1) else ""
    assert client.get_task(first).status == "complete"

    def first_trimmed() -> bool:
        queue.enqueue(2)
        run_one(queue, "w1")  # finish applies retention
        return not client.redis.exists(queue.keys.task(first))

    wait_until(first_trimmed, timeout_s=5, interval_s=0.2, what="the expired task to be deleted")
    assert client.redis.zscore(queue.keys.complete, first) is None


def test_requeue_worker_reserved_costs_no_attempt(client: Client) -> None:
    queue = client.get_queue("requeue.q")
    first, second = queue.enqueue_many([1, 2])
    claim(queue, "w1")
    queue.transitions.heartbeat("w1", 10_000, {"host": "h"})
    with queue.events() as events:
        assert queue.requeue_worker("w1", "pod deleted") == (1, 0)
        assert names(collect(events, 2)) == ["requeued", "worker_removed"]
    assert client.redis.lrange(queue.keys.pending, 0, -1) == [first, second]
    assert client.get_task(first).attempts == 0
    stats = queue.stats()
    # Counted like the answer and the event (a reserved task costs no attempt, no loss).
    assert (stats.reserved, stats.workers, stats.totals["requeued"]) == (0, 0, 1)
    assert queue.workers() == []


def test_requeue_worker_running_costs_an_attempt_then_fails(client: Client) -> None:
    queue = client.get_queue("requeue.q")
    queue.set_config(max_attempts=2)
    task_id = queue.enqueue(1)
    for attempt in (1, 2):
        claim(queue, "w1")
        assert queue.transitions.begin("w1", task_id, 1).attempt == attempt
        expected = (1, 0) if attempt == 1 else (0, 1)
        with queue.events() as events:
            assert queue.requeue_worker("w1", "pod deleted") == expected
            got = collect(events, 2)
        assert names(got) == ["requeued" if attempt == 1 else "failed", "worker_removed"]
        if attempt == 1:
            task = client.get_task(task_id)
            assert (task.status, task.attempts) == ("pending", 1)
            assert task.last_error is not None and task.last_error["type"] == "WorkerLost"
            assert queue.stats().totals["requeued"] == 1
    task = client.get_task(task_id)
    assert (task.status, task.attempts) == ("failed", 2)
    assert task.error is not None and task.error["type"] == "WorkerLost"
    assert "pod deleted" in task.error["message"]
    stats = queue.stats()
    assert (stats.failed, stats.running, stats.pending, stats.reserved) == (1, 0, 0, 0)


def test_reap_requeues_workers_whose_heartbeat_expired(client: Client) -> None:
    queue = client.get_queue("reap.q")
    dead_task, live_task = queue.enqueue_many(["dead", "live"])
    for wid, ttl_ms in (("dead", 200), ("live", 60_000)):
        claim(queue, wid)
        queue.transitions.heartbeat(wid, ttl_ms, {"pid": 1})
    queue.transitions.begin("dead", dead_task, 1)
    queue.transitions.begin("live", live_task, 1)
    assert queue.reap() == (0, 0, 0)  # both alive still
    assert {w.id for w in queue.workers() if w.alive} == {"dead", "live"}
    wait_until(lambda: not client.redis.exists(queue.keys.worker_alive("dead")), timeout_s=5)
    assert queue.reap() == (1, 1, 0)
    assert client.get_task(dead_task).status == "pending"
    assert client.get_task(live_task).status == "running"
    assert [w.id for w in queue.workers()] == ["live"]


def test_fencing_stale_finish_is_dropped_and_counted(client: Client) -> None:
    queue = client.get_queue("fence.q")
    task_id = queue.enqueue(1)
    claim(queue, "w1")
    queue.transitions.begin("w1", task_id, 1)
    t = queue.transitions
    with queue.events() as events:
        assert t.finish("w1", task_id, 2, "complete", '"wrong attempt"') == "stale"
        assert t.finish("w2", task_id, 1, "complete", '"not the holder"') == "stale"
        got = collect(events, 2)
    assert names(got) == ["stale", "stale"]
    assert client.get_task(task_id).status == "running"
    assert queue.stats().totals["stale"] == 2

    queue.requeue_worker("w1", "partitioned")  # w1 is presumed dead, but it is not
    assert claim(queue, "w2") == task_id
    assert t.begin("w1", task_id, 1).status == "gone"  # not in w1's list any more
    assert t.begin("w2", task_id, 1).attempt == 2
    assert t.finish("w2", task_id, 2, "complete", '"live"') == "complete"
    assert t.finish("w1", task_id, 1, "complete", '"late"') == "stale"
    task = client.get_task(task_id)
    assert (task.status, task.result, task.worker) == ("complete", "live", "w2")
    stats = queue.stats()
    assert (stats.totals["stale"], stats.totals["completed"], stats.complete) == (4, 1, 1)


def test_begin_and_finish_are_idempotent_for_the_same_worker(client: Client) -> None:
    queue = client.get_queue("idem.q")
    task_id = queue.enqueue({"p": 1})
    claim(queue, "w1")
    t = queue.transitions
    first, again = t.begin("w1", task_id, 1), t.begin("w1", task_id, 1)
    assert first == again and first.attempt == 1
    assert queue.stats().totals["started"] == 1
    assert t.finish("w1", task_id, 1, "complete", '"r"') == "complete"
    assert t.finish("w1", task_id, 1, "complete", '"r"') == "complete"
    stats = queue.stats()
    assert (stats.totals["completed"], stats.totals["stale"], stats.complete) == (1, 0, 1)


def test_wait_returns_when_finished_and_times_out_otherwise(client: Client) -> None:
    queue = client.get_queue("wait.q")
    task_id = queue.enqueue(1)
    task = client.get_task(task_id)
    with pytest.raises(WaitTimeoutError):
        task.wait(0.3)
    claim(queue, "w1")
    queue.transitions.begin("w1", task_id, 1)
    timer = threading.Timer(
        0.3, lambda: queue.transitions.finish("w1", task_id, 1, "complete", '"late"')
    )
    timer.start()
    try:
        done = task.wait(10)
    finally:
        timer.join()
    assert (done.status, done.result) == ("complete", "late")
    assert done.wait(0.01).status == "complete"  # a finished task returns at once


def test_automatic_retry_policy_reschedules_a_failed_task(client: Client) -> None:
    queue = client.get_queue("autoretry.q")
    queue.set_config(retry_max=1, retry_delay_s=0)
    task_id = queue.enqueue(1)
    error = json.dumps({"type": "E", "message": "first"})
    claim(queue, "w1")
    queue.transitions.begin("w1", task_id, 1)
    assert queue.transitions.finish("w1", task_id, 1, "failed", error) == "scheduled"
    assert queue.stats().totals["retried"] == 1
    assert queue.promote_due()[0] == 1
    claim(queue, "w1")
    assert queue.transitions.begin("w1", task_id, 1).attempt == 2
    assert queue.transitions.finish("w1", task_id, 2, "failed", error) == "failed"
    task = client.get_task(task_id)
    assert (task.status, task.retries) == ("failed", 1)


def test_progress_is_fenced_by_attempt(client: Client) -> None:
    queue = client.get_queue("progress.q")
    task_id = queue.enqueue(1)
    claim(queue, "w1")
    queue.transitions.begin("w1", task_id, 1)
    task = client.get_task(task_id)
    with queue.events() as events:
        assert task.set_progress({"done": 50})
        got = collect(events, 1)
    assert names(got) == ["progress"] and got[0]["task"] == task_id
    assert client.get_task(task_id).progress == {"done": 50}
    queue.requeue_worker("w1")
    assert not task.set_progress({"done": 60})
    assert client.get_task(task_id).progress == {"done": 50}


def test_drain_only_an_idle_worker_and_begin_refuses_while_draining(client: Client) -> None:
    queue = client.get_queue("drain.q")
    first, second = queue.enqueue_many([1, 2])
    queue.transitions.heartbeat("w1", 10_000, {})
    claim(queue, "w1")
    assert not queue.drain("w1")  # it holds a task
    queue.requeue_worker("w1")
    queue.transitions.heartbeat("w1", 10_000, {})
    with queue.events() as events:
        assert queue.drain("w1")
        assert claim(queue, "w1") == first
        assert queue.transitions.begin("w1", first, 1).status == "draining"
        assert queue.undrain("w1")
        assert not queue.undrain("w1")
        got = collect(events, 3)
    assert names(got) == ["drained", "refused", "undrained"]
    assert client.redis.lrange(queue.keys.pending, 0, -1) == [first, second]
    task = client.get_task(first)
    assert (task.status, task.attempts) == ("pending", 0)
    stats = queue.stats()
    assert (stats.totals["refused"], stats.reserved, stats.draining) == (1, 0, 0)


def test_info_lists_every_used_queue(client: Client) -> None:
    client.get_queue("a.q").enqueue(1)
    client.get_queue("b.q").set_config(max_attempts=5)
    assert client.queues() == ["a.q", "b.q"]
    info = {s.queue: s for s in client.info()}
    assert (info["a.q"].pending, info["b.q"].pending) == (1, 0)
    assert client.get_queue("b.q").config().max_attempts == 5


def test_repeated_finish_of_an_automatic_retry_is_idempotent(client: Client) -> None:
    queue = client.get_queue("autoretry.q")
    queue.set_config(retry_max=1, retry_delay_s=60)
    task_id = queue.enqueue(1)
    claim(queue, "w1")
    queue.transitions.begin("w1", task_id, 1)
    error = json.dumps({"type": "E", "message": "first"})
    with queue.events() as events:
        assert queue.transitions.finish("w1", task_id, 1, "failed", error) == "scheduled"
        # The reply was lost; the worker sends the same finish again.
        assert queue.transitions.finish("w1", task_id, 1, "failed", error) == "scheduled"
        got = collect(events, 2, timeout_s=0.5)
    assert names(got) == ["retry_scheduled"]
    stats = queue.stats()
    assert (stats.scheduled, stats.totals["retried"], stats.totals["stale"]) == (1, 1, 0)
    task = client.get_task(task_id)
    assert (task.status, task.retries) == ("scheduled", 1)
    assert task.last_error is not None and task.last_error["message"] == "first"


def test_cancel_requested_while_reserved_wins_at_requeue(client: Client) -> None:
    queue = client.get_queue("cancel.q")
    task_id = queue.enqueue(1)
    claim(queue, "w1")
    assert queue.cancel(task_id) == "requested"
    assert queue.requeue_worker("w1") == (0, 0)
    assert client.get_task(task_id).status == "cancelled"
    stats = queue.stats()
    assert (stats.pending, stats.reserved, stats.cancelled) == (0, 0, 1)
