"""Redis out of memory (`maxmemory` reached, `noeviction`): every write is refused with OOM,
reads still work. A worker treats that like an outage: it backs off and retries, never exits,
never leaves a task process unsupervised, and never drops a result. Real worker processes on
a real redis-server whose `maxmemory` the test lowers below what it uses, then restores."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from blueque import Client, Queue
from devtools.processes import Process, wait_until
from devtools.redis_servers import RedisServer
from tests.support.waiting import Waiter, blocked_readers, blocking_reads
from tests.support.workers import WorkerSpawner

Q = "oom.q"
OOM_LOGGED = "out of memory"


@pytest.fixture(scope="module")
def oom_server() -> Iterator[RedisServer]:
    with RedisServer(extra_args=["--maxmemory", "64mb", "--maxmemory-policy", "noeviction"]) as s:
        yield s


@pytest.fixture
def queue(oom_server: RedisServer) -> Iterator[Queue]:
    client = Client(oom_server.url)
    client.redis.config_set("maxmemory", "64mb")
    client.redis.flushall()
    try:
        yield client.get_queue(Q)
    finally:
        client.redis.config_set("maxmemory", "64mb")
        client.close()


def out_of_memory(queue: Queue) -> None:
    queue.client.redis.config_set("maxmemory", "1")  # far below what the server uses
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        queue.client.redis.set("probe", "x")


def memory_back(queue: Queue) -> None:
    queue.client.redis.config_set("maxmemory", "64mb")


def oom_seen(worker: Process, times: int = 2) -> bool:
    """The worker logged the refusal `times` times (it retried), or exited."""
    return worker.output().count(OOM_LOGGED) >= times or worker.poll() is not None


@pytest.mark.parametrize("runner", ["fork", "inprocess"])
def test_an_idle_worker_waits_out_redis_out_of_memory(
    queue: Queue, oom_server: RedisServer, workers: WorkerSpawner, runner: str
) -> None:
    worker = workers.start(oom_server.url, Q, runner=runner)
    wait_until(lambda: queue.workers(), 10, what="the worker to register")
    out_of_memory(queue)
    wait_until(lambda: oom_seen(worker), 10, what="the worker to meet the OOM")
    assert worker.poll() is None, worker.output()
    memory_back(queue)
    task_id = queue.enqueue({"result": "after the OOM"})
    task = queue.client.get_task(task_id).wait(20)
    assert (task.status, task.result) == ("complete", "after the OOM"), worker.output()
    assert worker.poll() is None


@pytest.mark.parametrize("runner", ["fork", "inprocess"])
def test_a_busy_worker_keeps_its_task_through_out_of_memory_and_records_it_after(
    queue: Queue, oom_server: RedisServer, workers: WorkerSpawner, tmp_path: Path, runner: str
) -> None:
    gate, started = tmp_path / "gate", tmp_path / "started"
    task_id = queue.enqueue({"gate": str(gate), "started": str(started), "result": "kept"})
    worker = workers.start(oom_server.url, Q, runner=runner, env={"BLUEQUE_WORKER_ID": "w"})
    wait_until(started.exists, 20, what="the task to start")
    out_of_memory(queue)
    wait_until(lambda: oom_seen(worker), 10, what="the heartbeat to meet the OOM")
    assert worker.poll() is None, worker.output()
    if runner == "fork":
        assert workers.task_pids.alive(), "the task process is gone"

    # Memory comes back while the task still runs: the heartbeat resumes (the in-process
    # runner's heartbeat thread is still there).
    memory_back(queue)
    before = queue.client.redis.hget(queue.keys.worker("w"), "heartbeat_at")
    wait_until(
        lambda: queue.client.redis.hget(queue.keys.worker("w"), "heartbeat_at") != before,
        10,
        what="a heartbeat after the OOM",
    )

    # The task ends while Redis refuses writes: the result waits for memory, then lands.
    out_of_memory(queue)
    logged = worker.output().count(OOM_LOGGED)
    gate.touch()
    wait_until(lambda: oom_seen(worker, logged + 2), 10, what="the record to meet the OOM")
    assert worker.poll() is None, worker.output()
    memory_back(queue)
    task = queue.client.get_task(task_id).wait(20)
    assert (task.status, task.result, task.attempts) == ("complete", "kept", 1), worker.output()
    assert worker.poll() is None
    assert queue.stats().totals["requeued"] == 0


def test_a_wait_works_while_redis_refuses_writes(queue: Queue, oom_server: RedisServer) -> None:
    """The await writes a field and a short entry: it may (allow-oom), so a wait works as
    reads do, and the finish that memory lets through wakes it."""
    t = queue.transitions
    t.heartbeat("w", 60_000, {})
    task_id = queue.enqueue("x")
    begun = t.claim_and_begin("w", 4242, 1.0)
    out_of_memory(queue)
    waiter = Waiter(oom_server.url, task_id, timeout=30)
    waiter.start()
    done = queue.keys.task_done(task_id)
    wait_until(lambda: blocked_readers(queue.client, done) == 1, 10, what="the wait to block")
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        t.finish("w", task_id, begun.attempt, "complete", '"after"')
    memory_back(queue)
    assert t.finish("w", task_id, begun.attempt, "complete", '"after"') == "complete"
    assert waiter.outcome().result == "after"
    assert blocking_reads(waiter.requests) == 1
