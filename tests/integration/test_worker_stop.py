"""A worker told to stop gives back, at no cost, what it claimed and began but did not run,
and a drain mark survives the worker being reaped alive or restarted (real worker processes
on a real redis-server)."""

from __future__ import annotations

import signal
from typing import Any

import redis

from blueque import Client
from blueque.scripts import load_library
from devtools.processes import wait_until
from tests.support.workers import WorkerSpawner

Q = "stop.q"
# A long claim (the window the stop must land in), and no heartbeat or promotion due, so
# the claim goes out in the same round trip as the finish ([finish, BLMOVE, begin]).
PIPELINED = {
    "BLUEQUE_CLAIM_TIMEOUT_S": "3",
    "BLUEQUE_HEARTBEAT_INTERVAL_S": "10",
    "BLUEQUE_PROMOTE_INTERVAL_S": "0",
}


def blocked_clients(url: str) -> int:
    r = redis.Redis.from_url(url)
    try:
        return int(r.info("clients")["blocked_clients"])
    finally:
        r.close()


def preload_scripts(client: Client) -> None:
    """So that no script in a pipeline fails with "function not found" (which reruns it
    after the claim: the finish would then come after the claim has waited)."""
    assert client.runner.run(load_library(client.scripting))


def test_sigterm_during_the_claim_after_a_finish_gives_the_next_task_back_at_no_cost(
    redis_url: str, workers: WorkerSpawner, client_standalone: Client
) -> None:
    queue = client_standalone.get_queue(Q)
    queue.set_config(max_attempts=1)  # one charged attempt would fail it "worker lost"
    preload_scripts(client_standalone)
    first = queue.enqueue({"result": "first"})
    with queue.events() as events:
        worker = workers.start(redis_url, Q, env={**PIPELINED, "BLUEQUE_WORKER_ID": "stopper"})
        event: dict[str, Any] | None = {}
        while event is not None and (event.get("task"), event.get("event")) != (first, "complete"):
            event = events.next(timeout=20)
        assert event is not None, worker.output()
        # The finish ran; the claim that followed it in the same round trip now blocks.
        wait_until(lambda: blocked_clients(redis_url) == 1, 10, what="the worker's claim")
        worker.signal(signal.SIGTERM)
        wait_until(lambda: "SIGTERM" in worker.output(), 10, what="the worker to see SIGTERM")
        second = queue.enqueue({"result": "second"})  # the blocked claim takes it now
        assert worker.wait_exit(10) == 0, worker.output()
        seen = []
        while (event := events.next(timeout=0.5)) is not None:
            seen.append(event)
    task = client_standalone.get_task(second)
    assert (task.status, task.attempts, task.error, task.last_error) == ("pending", 0, None, None)
    assert task.pid is None
    assert client_standalone.redis.lrange(queue.keys.pending, 0, -1) == [second]
    assert [e["event"] for e in seen if e.get("task") == second] == [
        "enqueued",
        "started",
        "released",
    ], seen
    stats = queue.stats()
    assert (stats.failed, stats.running, stats.reserved, stats.workers) == (0, 0, 0, 0)
    assert (stats.totals["failed"], stats.totals["requeued"], stats.totals["released"]) == (0, 0, 1)


def test_sigterm_during_an_idle_claim_gives_the_task_it_brings_back_at_no_cost(
    redis_url: str, workers: WorkerSpawner, client_standalone: Client
) -> None:
    queue = client_standalone.get_queue(Q)
    queue.set_config(max_attempts=1)
    preload_scripts(client_standalone)
    worker = workers.start(redis_url, Q, env={**PIPELINED, "BLUEQUE_WORKER_ID": "idle"})
    # The worker's claim and its begin ([BLMOVE, begin]) wait for a task.
    wait_until(lambda: blocked_clients(redis_url) == 1, 10, what="the worker's claim")
    worker.signal(signal.SIGTERM)
    wait_until(lambda: "SIGTERM" in worker.output(), 10, what="the worker to see SIGTERM")
    task_id = queue.enqueue({"result": "not after a stop"})
    assert worker.wait_exit(10) == 0, worker.output()
    task = client_standalone.get_task(task_id)
    assert (task.status, task.attempts, task.result, task.pid) == ("pending", 0, None, None)
    stats = queue.stats()
    assert (stats.pending, stats.running, stats.workers, stats.totals["released"]) == (1, 0, 0, 1)


def await_heartbeats(client: Client, worker_id: str, count: int) -> None:
    """Waits until the worker has heartbeated `count` more times (it is registered then)."""
    queue = client.get_queue(Q)
    seen: set[bytes | str] = set()

    def enough() -> bool:
        at = client.redis.hget(queue.keys.worker(worker_id), "heartbeat_at")
        if at and client.redis.sismember(queue.keys.workers, worker_id):
            seen.add(at)
        return len(seen) > count

    wait_until(enough, 10, interval_s=0.01, what=f"{count} heartbeats of {worker_id}")


def assert_drained_and_idle(client: Client, worker_id: str, task_id: str) -> None:
    queue = client.get_queue(Q)
    task = client.get_task(task_id)
    assert (task.status, task.attempts) == ("pending", 0)
    assert [(w.id, w.draining, w.state) for w in queue.workers()] == [(worker_id, True, "draining")]
    assert queue.stats().draining == 1


def test_a_drained_worker_reaped_while_alive_stays_drained(
    redis_url: str, workers: WorkerSpawner, client_standalone: Client
) -> None:
    queue = client_standalone.get_queue(Q)
    worker = workers.start(redis_url, Q, env={"BLUEQUE_WORKER_ID": "drained"})
    await_heartbeats(client_standalone, "drained", 1)
    assert queue.drain("drained")
    wait_until(lambda: queue.workers()[0].draining, 10, what="the worker to learn of the drain")
    # Presumed dead (a stall past its heartbeat TTL, a partition): requeued while alive.
    assert queue.requeue_worker("drained", "heartbeat expired") == (0, 0)
    task_id = queue.enqueue({"result": "must wait for an undrain"})
    await_heartbeats(client_standalone, "drained", 3)  # registered again, and claims nothing
    assert_drained_and_idle(client_standalone, "drained", task_id)
    assert queue.undrain("drained")
    assert client_standalone.get_task(task_id).wait(20).status == "complete", worker.output()


def test_a_drained_worker_whose_container_restarts_stays_drained(
    redis_url: str, workers: WorkerSpawner, client_standalone: Client
) -> None:
    queue = client_standalone.get_queue(Q)
    env = {"BLUEQUE_WORKER_ID": "pod-1"}
    first = workers.start(redis_url, Q, env=env)
    await_heartbeats(client_standalone, "pod-1", 1)
    assert queue.drain("pod-1")
    wait_until(lambda: queue.workers()[0].draining, 10, what="the worker to learn of the drain")
    first.kill()
    # It died right after a claim it made before it learned of the drain.
    task_id = queue.enqueue({"result": "must wait for an undrain"})
    k = queue.keys
    assert client_standalone.redis.lmove(k.pending, k.worker_tasks("pod-1")) == task_id
    workers.start(redis_url, Q, env=env)  # the container restarts, recovers its own list
    await_heartbeats(client_standalone, "pod-1", 3)
    assert_drained_and_idle(client_standalone, "pod-1", task_id)
    assert queue.stats().totals["requeued"] == 1
