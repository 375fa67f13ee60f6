"""The parity subset of the protocol suite, run through the sync client and through the
asyncio client (`blueque.aio`, driven by `tests.support.aio.Blocking`), on standalone Redis
and on a 3-master Cluster. `bq` is the client under test; `client` (always sync) plays the
workers, claiming, beginning and finishing by the protocol's own transitions."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from blueque import (
    Client,
    ConfigError,
    CorruptKeyError,
    InvalidArgumentError,
    InvalidNameError,
    InvalidStateError,
    Queue,
    TaskFailedError,
    TaskNotFoundError,
    WaitTimeoutError,
)
from blueque.aio import AsyncClient, AsyncTask
from blueque.task import Task
from tests.support.aio import Blocking
from tests.support.protocol import claim, collect, names, run_one

Q = "parity.q"
ERROR = json.dumps({"type": "ValueError", "message": "boom"})


@pytest.fixture(params=["sync", "async"])
def bq(request: pytest.FixtureRequest, backend_url: str) -> Iterator[Any]:
    """The client under test, on the same flushed server as `client`."""
    if request.param == "sync":
        with Client(backend_url) as sync:
            yield sync
        return
    blocking = Blocking(AsyncClient(backend_url))
    try:
        yield blocking
    finally:
        blocking.close()


@pytest.fixture
def worker(client: Client) -> Queue:
    """The queue as the (sync) worker side sees it."""
    return client.get_queue(Q)


def _is_async(bq: Any) -> bool:
    return isinstance(bq, Blocking)


def _task_type(bq: Any) -> type:
    return AsyncTask if _is_async(bq) else Task


def test_enqueue_and_read_back(bq: Any, worker: Queue) -> None:
    queue = bq.get_queue(Q)
    one = queue.enqueue({"n": 1})
    many = queue.enqueue_many([{"n": 2}, "three", [4]])
    assert queue.enqueue_many([]) == []
    task = bq.get_task(one)
    assert isinstance(task.wrapped if _is_async(bq) else task, _task_type(bq))
    assert (task.status, task.parameters, task.attempts, task.queue) == ("pending", {"n": 1}, 0, Q)
    assert [t.parameters for t in queue.get_tasks([*many, "parity.q:" + "0" * 32])] == [
        {"n": 2},
        "three",
        [4],
    ]
    assert [t.id for t in queue.tasks("pending")] == [one, *many]
    assert worker.client.redis.lrange(worker.keys.pending, 0, -1) == [one, *many]
    assert bq.queues() == [Q] and bq.ping()
    stats = queue.stats()
    assert (stats.pending, stats.totals["enqueued"], stats.oldest_pending_age_s is not None) == (
        4,
        4,
        True,
    )
    assert [s.queue for s in bq.info()] == [Q]


def test_schedule_and_promote(bq: Any, worker: Queue) -> None:
    queue = bq.get_queue(Q)
    later = queue.schedule("later", delay=3600)
    due = queue.schedule("due", delay=-5)  # a time in the past is pending at once
    assert bq.get_task(later).status == "scheduled"
    assert bq.get_task(due).status == "pending"
    promoted, next_due = queue.promote_due()
    assert promoted == 0 and next_due is not None
    worker.client.redis.zadd(worker.keys.scheduled, {later: 1})  # now overdue
    assert queue.promote_due() == (1, None)
    assert [t.id for t in queue.tasks("pending")] == [due, later]
    assert queue.stats().totals["promoted"] == 1
    with pytest.raises(InvalidArgumentError):
        queue.schedule("x")  # neither eta nor delay
    with pytest.raises(InvalidArgumentError):
        queue.promote_due(0)


def test_cancel_retry_delete(bq: Any, worker: Queue) -> None:
    queue = bq.get_queue(Q)
    waiting, running = queue.enqueue_many([1, 2])
    assert queue.cancel(waiting) == "cancelled"
    with pytest.raises(InvalidStateError, match="already finished"):
        queue.cancel(waiting)
    assert claim(worker, "w1") == running
    worker.transitions.begin("w1", running, 7)
    assert bq.get_task(running).cancel() == "requested"
    assert bq.get_task(running).cancel_requested
    with pytest.raises(InvalidStateError, match="held by a worker"):
        queue.delete(running)
    with pytest.raises(InvalidStateError, match="only failed or cancelled"):
        queue.retry(running)

    bq.get_task(waiting).retry()
    again = bq.get_task(waiting)
    assert (again.status, again.last_error) == ("pending", None)
    bq.get_task(waiting).delete()
    with pytest.raises(TaskNotFoundError):
        bq.get_task(waiting)
    with pytest.raises(TaskNotFoundError):
        queue.cancel(waiting)
    with pytest.raises(InvalidNameError):
        queue.cancel("other.q:" + "0" * 32)
    stats = queue.stats()
    assert (stats.pending, stats.running, stats.totals["retried"]) == (0, 1, 1)


def test_purge(bq: Any) -> None:
    queue = bq.get_queue(Q)
    queue.enqueue_many(range(7))
    assert queue.purge("pending") == 7
    assert queue.stats().pending == 0
    with pytest.raises(InvalidArgumentError):
        queue.purge("running")


def test_workers_drain_undrain_requeue_and_reap(bq: Any, worker: Queue) -> None:
    queue = bq.get_queue(Q)
    first, second = queue.enqueue_many(["a", "b"])
    worker.transitions.heartbeat("busy", 30_000, {"host": "h", "pid": 3, "owner": "uid"})
    worker.transitions.heartbeat("idle", 30_000, {"host": "h", "pid": 4})
    assert claim(worker, "busy") == first
    worker.transitions.begin("busy", first, 3)
    states = {w.id: (w.state, w.task, w.owner) for w in queue.workers()}
    assert states == {"busy": ("busy", first, "uid"), "idle": ("idle", None, None)}

    assert not queue.drain("busy")  # it holds a task
    assert queue.drain("idle")
    assert queue.stats().draining == 1
    assert claim(worker, "idle") == second
    assert worker.transitions.begin("idle", second, 4).status == "draining"  # sent back
    assert queue.undrain("idle") and not queue.undrain("idle")
    with pytest.raises(InvalidNameError):
        queue.drain("not a worker id")

    assert queue.requeue_worker("busy") == (1, 0)
    task = bq.get_task(first)
    assert (task.status, task.losses) == ("pending", 1)
    worker.client.redis.delete(worker.keys.worker_alive("idle"))  # its heartbeat expired
    assert queue.reap() == (1, 0, 0)
    assert queue.workers() == []


def test_observe_and_ownership(bq: Any, worker: Queue) -> None:
    queue = bq.get_queue(Q)
    task_id = queue.enqueue(1)
    worker.transitions.heartbeat("w1", 30_000, {"owner": "uid-1", "pod_uid": "pod"})
    claim(worker, "w1")
    queue.drain("gone")
    seen = queue.observe()
    assert (seen.pending, seen.reserved, seen.running) == (0, 1, 0)
    assert [(w.id, w.registered, w.draining, w.task, w.begun) for w in seen.workers] == [
        ("gone", False, True, None, False),
        ("w1", True, False, task_id, False),
    ]
    worker.transitions.begin("w1", task_id, 1)
    assert queue.observe().workers[1].begun

    assert queue.claim_owner("uid-1", 30).acquired
    refused = queue.claim_owner("uid-2", 30)
    assert (refused.holder, refused.acquired) == ("uid-1", False)
    assert not queue.release_owner("uid-2")
    assert queue.release_owner("uid-1")
    with pytest.raises(InvalidArgumentError):
        queue.claim_owner("uid-1", 0)


def test_config(bq: Any) -> None:
    queue = bq.get_queue(Q)
    assert queue.config().max_attempts == 3
    assert queue.set_config(max_attempts=5, retry_max=1).max_attempts == 5
    assert queue.config().retry_max == 1
    with pytest.raises(ConfigError):
        queue.set_config(bogus=1)


def test_wait_for_a_task_a_worker_completes(bq: Any, worker: Queue) -> None:
    queue = bq.get_queue(Q)
    task_id = queue.enqueue("work")
    started = threading.Event()

    def play_worker() -> None:
        started.wait(5)
        run_one(worker, "w1", '"done"')

    player = threading.Thread(target=play_worker)
    player.start()
    try:
        with queue.events() as events:  # subscribed: the worker may start
            started.set()
            done = bq.get_task(task_id).wait(10)
            assert names(collect(events, 2)) == ["started", "complete"]
    finally:
        started.set()
        player.join()
    assert (done.status, done.result, done.attempts) == ("complete", "done", 1)
    assert isinstance(done.wrapped if _is_async(bq) else done, _task_type(bq))


def test_wait_times_out_and_reports_failure(bq: Any, worker: Queue) -> None:
    queue = bq.get_queue(Q)
    task_id = queue.enqueue("slow")
    with pytest.raises(WaitTimeoutError):
        bq.get_task(task_id).wait(0.2)
    claim(worker, "w1")
    worker.transitions.begin("w1", task_id, 1)
    worker.transitions.finish("w1", task_id, 1, "failed", ERROR)
    assert bq.get_task(task_id).wait(5).status == "failed"
    with pytest.raises(TaskFailedError, match="boom"):
        bq.get_task(task_id).wait(5, raise_on_failure=True)


def test_events(bq: Any) -> None:
    queue = bq.get_queue(Q)
    with queue.events() as events:
        task_id = queue.enqueue(1)
        queue.cancel(task_id)
        got = [events.next(5), events.next(5)]
    assert [(e["event"], e["task"]) for e in got] == [
        ("enqueued", task_id),
        ("cancelled", task_id),
    ]


def test_corrupt_keys_are_named(bq: Any, worker: Queue) -> None:
    queue = bq.get_queue(Q)
    worker.client.redis.set(worker.keys.pending, "not a list")
    with pytest.raises(CorruptKeyError) as caught:
        queue.enqueue(1)
    assert caught.value.key == worker.keys.pending
    worker.client.redis.delete(worker.keys.pending)
    task_id = queue.enqueue(1)
    worker.client.redis.hset(worker.keys.task(task_id), "attempts", "many")
    with pytest.raises(CorruptKeyError) as caught:
        bq.get_task(task_id)
    assert caught.value.key == worker.keys.task(task_id)
    (listed,) = queue.tasks("pending")
    assert listed.corrupt and "attempts" in listed.corrupt


def test_scripts_unknown_to_the_server_are_sent_whole(bq: Any, worker: Queue) -> None:
    queue = bq.get_queue(Q)
    queue.enqueue(1)
    worker.client.redis.script_flush()  # every node of a cluster
    assert queue.stats().pending == 1
    assert queue.enqueue_many([2, 3])
    assert queue.stats().pending == 3
