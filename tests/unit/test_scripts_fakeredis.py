"""The Lua scripts on fakeredis (its Lua runtime runs them as they are): fast checks of the
transitions' bookkeeping. Real servers run the full protocol suite in tests/integration."""

from __future__ import annotations

import json

import pytest

from blueque import Client, CorruptKeyError, CorruptTaskError, InvalidStateError, Queue
from blueque.records import parse_stats, parse_worker
from blueque.task import Task
from tests.support.protocol import claim, collect, names, run_one


@pytest.fixture
def queue(fake_client: Client) -> Queue:
    return fake_client.get_queue("unit.q")


def test_lifecycle_counters_and_events(queue: Queue) -> None:
    with queue.events() as events:
        task_id = queue.enqueue("payload")
        assert claim(queue, "w", 0.1) == task_id
        assert queue.stats().reserved == 1
        assert queue.transitions.begin("w", task_id, 1).attempt == 1
        assert queue.stats().running == 1
        assert queue.transitions.finish("w", task_id, 1, "complete", '"r"') == "complete"
        got = collect(events, 3, timeout_s=2)
    assert names(got) == ["enqueued", "started", "complete"]
    stats = queue.stats()
    assert (stats.pending, stats.reserved, stats.running, stats.complete) == (0, 0, 0, 1)
    assert {k: v for k, v in stats.totals.items() if v} == {
        "enqueued": 1,
        "started": 1,
        "completed": 1,
    }


def test_fencing(queue: Queue) -> None:
    task_id = queue.enqueue(1)
    claim(queue, "w", 0.1)
    t = queue.transitions
    assert t.begin("other", task_id, 1).status == "gone"
    t.begin("w", task_id, 1)
    assert t.finish("w", task_id, 5, "complete", "1") == "stale"
    assert t.finish("other", task_id, 1, "complete", "1") == "stale"
    assert queue.stats().totals["stale"] == 3
    assert queue.get_task(task_id).status == "running"
    with pytest.raises(Exception, match="unknown outcome"):
        t.finish("w", task_id, 1, "exploded", "1")  # type: ignore[arg-type]  # on purpose


def test_requeue_and_attempt_limit(queue: Queue) -> None:
    queue.set_config(max_attempts=1)
    reserved_id, running_id = queue.enqueue_many([1, 2])
    claim(queue, "a", 0.1)
    claim(queue, "b", 0.1)
    queue.transitions.begin("b", running_id, 1)
    assert queue.requeue_worker("a") == (1, 0)
    assert queue.requeue_worker("b") == (0, 1)
    failed = queue.get_task(running_id)
    assert failed.status == "failed" and failed.error is not None
    assert failed.error["type"] == "WorkerLost"
    assert queue.get_task(reserved_id).attempts == 0


def test_retention_by_count(queue: Queue) -> None:
    queue.set_config(keep_finished=1)
    ids = queue.enqueue_many([1, 2])
    run_one(queue, "w")
    run_one(queue, "w")
    assert not queue.client.redis.exists(queue.keys.task(ids[0]))
    assert queue.get_task(ids[1]).status == "complete"


def test_retry_only_from_failed_or_cancelled(queue: Queue) -> None:
    task_id = queue.enqueue(1)
    with pytest.raises(InvalidStateError):
        queue.retry(task_id)
    assert queue.cancel(task_id) == "cancelled"
    queue.retry(task_id)
    assert queue.get_task(task_id).status == "pending"


def test_corrupt_hash(queue: Queue) -> None:
    with pytest.raises(CorruptTaskError):
        Task.from_hash(queue, "unit.q:" + "0" * 32, {"state": "exploded", "parameters": "1"})
    with pytest.raises(CorruptTaskError):
        Task.from_hash(queue, "unit.q:" + "0" * 32, {"state": "pending"})
    with pytest.raises(CorruptTaskError):
        Task.from_hash(
            queue, "unit.q:" + "0" * 32, {"state": "pending", "parameters": "1", "attempts": "x"}
        )


def test_parse_stats_derives_reserved_and_age() -> None:
    counters = ["live", "6", "running", "2", "enqueued", "9"]
    stats = parse_stats("q", [10_000, 2, 1, 3, 0, 0, 4, 1, 7_500, counters])
    assert (stats.pending, stats.scheduled, stats.running, stats.reserved) == (2, 1, 2, 1)
    assert stats.oldest_pending_age_s == 2.5 and stats.demand == 5
    assert stats.totals["enqueued"] == 9 and stats.totals["stale"] == 0
    assert parse_stats("q", [1, 0, 0, 0, 0, 0, 0, 0, -1, []]).oldest_pending_age_s is None
    assert json.loads(json.dumps(stats.as_dict()))["reserved"] == 1


def test_worker_states() -> None:
    idle = parse_worker("q", "w", {"pid": "12", "draining": "0"}, [], True)
    assert (idle.state, idle.pid) == ("idle", 12)
    assert parse_worker("q", "w", {"draining": "1"}, [], True).state == "draining"
    assert parse_worker("q", "w", {}, ["q:" + "0" * 32], True).state == "reserved"
    busy = parse_worker("q", "w", {"task": "q:" + "0" * 32}, ["q:" + "0" * 32], False)
    assert busy.state == "busy" and busy.as_dict()["alive"] is False


@pytest.mark.parametrize(
    ("stored", "read"), [("0.5", 0.5), ("30", 30.0), ("1e-05", 1e-05), ("2.5E+2", 250.0)]
)
def test_config_numbers_as_python_writes_them(queue: Queue, stored: str, read: float) -> None:
    queue.client.redis.hset(queue.keys.config, "retry_delay_s", stored)
    assert queue.config().retry_delay_s == read


@pytest.mark.parametrize("stored", ["nan", "-inf", "0x1p4", "1e", ".", "1..2", "ten", " "])
def test_config_values_that_are_not_decimal_numbers_are_refused(queue: Queue, stored: str) -> None:
    queue.client.redis.hset(queue.keys.config, "retry_delay_s", stored)
    with pytest.raises(CorruptKeyError, match=r"field retry_delay_s .*not a finite number"):
        queue.config()


def test_observe_and_owner_claim(queue: Queue) -> None:
    queue.transitions.heartbeat("w", 30_000, {"owner": "uid", "pod_uid": "p"})
    task_id = queue.enqueue(1)
    claim(queue, "w", 0.1)
    queue.drain("gone")
    seen = queue.observe()
    assert (seen.pending, seen.reserved, seen.running) == (0, 1, 0)
    gone, w = seen.workers  # sorted by id
    assert (w.id, w.owner, w.pod_uid, w.task, w.alive) == ("w", "uid", "p", task_id, True)
    assert not w.begun
    assert (gone.id, gone.registered, gone.draining) == ("gone", False, True)
    queue.transitions.begin("w", task_id, 1)
    assert queue.observe().workers[1].begun

    assert queue.claim_owner("a", 10).acquired
    assert queue.claim_owner("b", 10).holder == "a"
    assert not queue.release_owner("b")
    assert queue.release_owner("a")
    assert queue.claim_owner("b", 10).acquired
