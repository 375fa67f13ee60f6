"""A Redis outage is not a death: heartbeats expire by the clock while Redis is down, so a
reap right after it would take every worker for dead and run its task twice. Real workers
with a short heartbeat TTL run long tasks through an outage longer than that TTL on a real
redis-server with AOF; `blueque scheduler` runs throughout. Nothing is reaped, no task runs
twice, and a worker that really dies afterwards is still reaped."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from blueque import Client, Queue
from blueque.reaping import Reaped, ReapGuard
from devtools.processes import wait_until
from devtools.redis_servers import RedisServer
from tests.support.cli_processes import BluequeRunner
from tests.support.workers import WorkerSpawner

Q = "outage.q"
TTL_S = 2.0


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with RedisServer(extra_args=["--appendonly", "yes", "--appendfsync", "always"]) as s:
        yield s


@pytest.fixture
def queue(server: RedisServer) -> Iterator[Queue]:
    client = Client(server.url)
    try:
        assert client.redis.config_get("appendonly") == {"appendonly": "yes"}
        yield client.get_queue(Q)
    finally:
        client.close()


@pytest.fixture
def bq(server: RedisServer, tmp_path: Path) -> Iterator[BluequeRunner]:
    runner = BluequeRunner(server.url, tmp_path)
    try:
        yield runner
    finally:
        runner.kill_all()


def test_an_outage_longer_than_the_ttl_reaps_nothing_and_a_real_death_is_still_reaped(
    server: RedisServer, queue: Queue, workers: WorkerSpawner, bq: BluequeRunner, tmp_path: Path
) -> None:
    gates = [tmp_path / f"gate-{i}" for i in range(2)]
    started = [tmp_path / f"started-{i}" for i in range(2)]
    task_ids = queue.enqueue_many(
        [
            {"gate": str(g), "started": str(s), "result": "once"}
            for g, s in zip(gates, started, strict=True)
        ]
    )
    env = {"BLUEQUE_HEARTBEAT_TTL_S": str(TTL_S)}
    by_id = {
        wid: workers.start(server.url, Q, env={**env, "BLUEQUE_WORKER_ID": wid})
        for wid in ("w-a", "w-b", "w-idle")
    }
    for path in started:
        wait_until(path.exists, 20, what="both tasks to start")
    scheduler = bq.start("scheduler", "--interval", "0.1")
    wait_until(lambda: "scheduler on" in scheduler.output(), 20, what="the scheduler")
    assert queue.client.redis.hget(queue.keys.worker("w-a"), "heartbeat_ttl_ms") == "2000"

    server.kill()
    time.sleep(TTL_S + 1.5)  # the condition under test: an outage longer than the TTL
    server.start()  # same port, same data directory: the AOF comes back

    # Every alive key expired during the outage; a reaper that just reached the restarted
    # server holds back.
    held = ReapGuard().reap(queue)
    assert held.workers == 0 and held.held_back is not None, held
    assert "Redis has been up for" in held.held_back
    assert queue.stats().workers == 3

    # Live workers heartbeat again within the window; then reaping finds nobody dead.
    wait_until(
        lambda: all(queue.client.redis.exists(queue.keys.worker_alive(w)) for w in by_id),
        10,
        what="the workers to heartbeat again",
    )
    wait_until(lambda: "reaping resumed" in scheduler.output(), 20, what="the scheduler reaps")
    assert ReapGuard().reap(queue) == Reaped(), "a live worker was reaped"
    stats = queue.stats()
    assert (stats.totals["requeued"], stats.running, stats.workers) == (0, 2, 3), stats
    for gate in gates:
        gate.touch()
    for task_id in task_ids:
        task = queue.client.get_task(task_id).wait(20)
        assert (task.status, task.attempts, task.result) == ("complete", 1, "once")
    assert [s.read_text() for s in started] == ["1", "1"], "a task ran twice"

    # A worker that really dies is reaped once its heartbeat expires, and its task reruns.
    gate, start = tmp_path / "gate-dead", tmp_path / "started-dead"
    doomed_task = queue.enqueue({"gate": str(gate), "gate_first_only": True, "started": str(start)})
    wait_until(start.exists, 20, what="the task to start")
    holder = queue.client.get_task(doomed_task).worker
    assert holder in by_id
    by_id[holder].kill()
    by_id[holder].wait_exit(5)
    wait_until(lambda: queue.stats().totals["requeued"] == 1, 15, what="the dead worker's reap")
    task = queue.client.get_task(doomed_task).wait(20)
    assert (task.status, task.attempts) == ("complete", 2)
    assert task.worker != holder
    assert "reaped 1 worker(s)" in scheduler.output()
