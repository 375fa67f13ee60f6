"""Real worker processes (`tests/support/worker_main.py`) on a real redis-server: outcomes,
signals, identity and settings, both runners."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path
from unittest.mock import ANY

import pytest

from blueque import Client, Queue, WaitTimeoutError
from blueque.keys import sanitize_worker_id
from devtools.processes import Process, wait_until
from devtools.redis_servers import RedisCluster
from tests.support.workers import WorkerSpawner

Q = "work.q"


def finished(
    queue: Queue, task_id: str, worker: Process | None = None, timeout: float = 20.0
) -> dict[str, object]:
    try:
        task = queue.client.get_task(task_id).wait(timeout)
    except WaitTimeoutError:
        log = worker.output() if worker else "(no worker given)"
        raise AssertionError(f"task {task_id} did not finish; worker log:\n{log}") from None
    return {"status": task.status, "result": task.result, "error": task.error}


def registered(queue: Queue, worker: Process, timeout: float = 10.0) -> str:
    """Waits until the worker process registered; returns its worker id."""

    def find() -> str | None:
        for info in queue.workers():
            if info.pid == worker.pid:
                return info.id
        if worker.poll() is not None:
            raise AssertionError(f"worker exited early:\n{worker.output()}")
        return None

    return wait_until(find, timeout, what=f"worker {worker.pid} to register")


def test_task_that_raises_fails_with_type_message_and_traceback(
    queue: Queue, redis_url: str, workers: WorkerSpawner
) -> None:
    task_id = queue.enqueue({"raise": "bad input 42"})
    workers.start(redis_url, Q)
    task = queue.client.get_task(task_id).wait(20)
    assert task.status == "failed"
    assert task.error is not None
    assert task.error["type"] == "ValueError"
    assert task.error["message"] == "bad input 42"
    assert "Traceback" in task.error["traceback"]
    assert "raise ValueError" in task.error["traceback"]
    assert queue.stats().totals["failed"] == 1


@pytest.mark.parametrize("sig", ["SIGKILL", "SIGSEGV"])
def test_task_killed_by_a_signal_fails_and_the_worker_takes_the_next(
    queue: Queue, redis_url: str, workers: WorkerSpawner, sig: str
) -> None:
    killed_id, next_id = queue.enqueue_many([{"signal": sig}, {"result": "next one"}])
    worker = workers.start(redis_url, Q)
    killed = queue.client.get_task(killed_id).wait(20)
    assert killed.status == "failed"
    assert killed.error is not None and killed.error.get("signal") == sig
    assert sig in killed.error["message"]
    assert finished(queue, next_id)["result"] == "next one"
    assert worker.poll() is None, worker.output()


def test_result_is_recorded_and_parameters_arrive_intact(
    queue: Queue, redis_url: str, workers: WorkerSpawner
) -> None:
    params = {"result": {"nested": [1, "two", None, 3.5]}, "text": "héllo ✓"}
    task_id = queue.enqueue(params)
    workers.start(redis_url, Q)
    task = queue.client.get_task(task_id).wait(20)
    assert (task.status, task.result, task.parameters) == ("complete", params["result"], params)
    assert task.attempts == 1 and task.worker is not None


@pytest.mark.parametrize("runner", ["fork", "inprocess"])
def test_sigterm_while_busy_finishes_the_task_then_exits_0(
    queue: Queue, redis_url: str, workers: WorkerSpawner, tmp_path: Path, runner: str
) -> None:
    gate, started = tmp_path / "gate", tmp_path / "started"
    task_id = queue.enqueue({"gate": str(gate), "started": str(started), "result": "finished"})
    worker = workers.start(redis_url, Q, runner=runner)
    wait_until(started.exists, 20, what="the task to start")
    later_id = queue.enqueue("must stay pending")
    worker.signal(signal.SIGTERM)
    time.sleep(0.3)  # give a broken worker the chance to stop early (a negative check)
    assert worker.poll() is None, "the worker left while its task ran"
    gate.touch()
    assert worker.wait_exit(20) == 0, worker.output()
    assert finished(queue, task_id)["result"] == "finished"
    assert queue.client.get_task(later_id).status == "pending"
    assert queue.workers() == []  # deregistered
    stats = queue.stats()
    assert (stats.pending, stats.reserved, stats.running) == (1, 0, 0)


def test_sigterm_while_idle_exits_within_about_a_second(
    queue: Queue, redis_url: str, workers: WorkerSpawner
) -> None:
    worker = workers.start(redis_url, Q, env={"BLUEQUE_CLAIM_TIMEOUT_S": "1"})
    registered(queue, worker)
    time.sleep(0.3)  # let it block in its claim
    began = time.monotonic()
    worker.signal(signal.SIGTERM)
    assert worker.wait_exit(5) == 0, worker.output()
    assert time.monotonic() - began < 2.0
    assert queue.workers() == []


def test_second_sigterm_stops_at_once_and_leaves_the_task_for_recovery(
    queue: Queue, redis_url: str, workers: WorkerSpawner, tmp_path: Path
) -> None:
    gate, started = tmp_path / "gate", tmp_path / "started"
    task_id = queue.enqueue({"gate": str(gate), "started": str(started)})
    worker = workers.start(redis_url, Q, env={"BLUEQUE_WORKER_ID": "twice"})
    wait_until(started.exists, 20, what="the task to start")
    worker.signal(signal.SIGTERM)
    time.sleep(0.2)
    worker.signal(signal.SIGTERM)
    assert worker.wait_exit(5) == 128 + signal.SIGTERM, worker.output()
    assert queue.client.get_task(task_id).status == "running"
    assert queue.client.redis.lrange(queue.keys.worker_tasks("twice"), 0, -1) == [task_id]
    assert workers.task_pids.all(), "the task never ran in a child"
    wait_until(lambda: not workers.task_pids.alive(), 5, what="the task's child to be killed")


def test_worker_id_from_env_pod_name_or_host_and_pid(
    queue: Queue, redis_url: str, workers: WorkerSpawner
) -> None:
    explicit = workers.start(
        redis_url, Q, env={"BLUEQUE_WORKER_ID": "worker-7", "POD_NAME": "ignored-pod"}
    )
    pod = workers.start(
        redis_url, Q, env={"BLUEQUE_WORKER_ID": "<unset>", "POD_NAME": "blue-5d8f-x2z"}
    )
    plain = workers.start(redis_url, Q, env={"BLUEQUE_WORKER_ID": "<unset>", "POD_NAME": "<unset>"})
    assert registered(queue, explicit) == "worker-7"
    assert registered(queue, pod) == "blue-5d8f-x2z"
    assert registered(queue, plain) == sanitize_worker_id(f"{socket.gethostname()}-{plain.pid}")
    by_id = {w.id: w for w in queue.workers()}
    assert by_id["blue-5d8f-x2z"].pod == "blue-5d8f-x2z"
    assert by_id["worker-7"].runner == "fork"


def test_worker_settings_from_env(queue: Queue, redis_url: str, workers: WorkerSpawner) -> None:
    queue.enqueue_many([1, 2])
    worker = workers.start(
        redis_url,
        Q,
        env={
            "BLUEQUE_WORKER_ID": "env-worker",
            "BLUEQUE_HEARTBEAT_TTL_S": "7",
            "BLUEQUE_MAX_TASKS": "1",
        },
    )
    assert worker.wait_exit(20) == 0, worker.output()  # max_tasks=1: one task, then exit
    stats = queue.stats()
    assert (stats.complete, stats.pending) == (1, 1)

    held = workers.start(
        redis_url, Q, env={"BLUEQUE_WORKER_ID": "ttl-worker", "BLUEQUE_HEARTBEAT_TTL_S": "7"}
    )
    registered(queue, held)
    ttl_ms = queue.client.redis.pttl(queue.keys.worker_alive("ttl-worker"))
    assert 5000 < ttl_ms <= 7000


def test_invalid_env_setting_is_a_clear_error(
    queue: Queue, redis_url: str, workers: WorkerSpawner
) -> None:
    worker = workers.start(redis_url, Q, env={"BLUEQUE_HEARTBEAT_TTL_S": "soon"})
    assert worker.wait_exit(20) != 0
    assert "BLUEQUE_HEARTBEAT_TTL_S='soon'" in worker.output()


def test_cancel_stops_a_running_task(
    queue: Queue, redis_url: str, workers: WorkerSpawner, tmp_path: Path
) -> None:
    started = tmp_path / "started"
    task_id = queue.enqueue({"gate": str(tmp_path / "never"), "started": str(started)})
    next_id = queue.enqueue({"result": "after cancel"})
    worker = workers.start(redis_url, Q)
    wait_until(started.exists, 20, what="the task to start")
    assert queue.cancel(task_id) == "requested"
    task = queue.client.get_task(task_id).wait(20)
    assert task.status == "cancelled"
    assert task.error is not None and task.error.get("signal") == "SIGTERM"
    assert finished(queue, next_id)["result"] == "after cancel"
    assert worker.poll() is None


def test_idle_worker_promotes_due_scheduled_tasks(
    queue: Queue, redis_url: str, workers: WorkerSpawner
) -> None:
    task_id = queue.schedule({"result": "was scheduled"}, delay=0.5)
    workers.start(redis_url, Q)
    task = queue.client.get_task(task_id).wait(20)
    assert (task.status, task.result) == ("complete", "was scheduled")
    assert queue.stats().totals["promoted"] == 1


def test_inprocess_runner_basic_cycle(queue: Queue, redis_url: str, workers: WorkerSpawner) -> None:
    ok_id, bad_id, last_id = queue.enqueue_many(
        [{"result": "in process"}, {"raise": "nope"}, {"result": "still alive"}]
    )
    worker = workers.start(redis_url, Q, runner="inprocess", env={"BLUEQUE_WORKER_ID": "inproc"})
    assert finished(queue, ok_id, worker)["result"] == "in process"
    failed = finished(queue, bad_id, worker)
    assert failed["status"] == "failed"
    assert failed["error"] == {"type": "ValueError", "message": "nope", "traceback": ANY}
    assert finished(queue, last_id, worker)["result"] == "still alive"
    assert [w.runner for w in queue.workers()] == ["inprocess"]
    worker.signal(signal.SIGTERM)
    assert worker.wait_exit(10) == 0, worker.output()
    assert queue.stats().totals["completed"] == 2


@pytest.mark.parametrize("runner", ["fork", "inprocess"])
def test_a_task_longer_than_the_heartbeat_ttl_is_never_reaped(
    queue: Queue, redis_url: str, workers: WorkerSpawner, tmp_path: Path, runner: str
) -> None:
    started = tmp_path / "started"
    task_id = queue.enqueue({"sleep_s": 2.0, "started": str(started), "result": "long"})
    env = {"BLUEQUE_HEARTBEAT_INTERVAL_S": "0.1", "BLUEQUE_HEARTBEAT_TTL_S": "0.4"}
    worker = workers.start(redis_url, Q, runner=runner, env=env)
    wait_until(started.exists, 20, what="the task to start")
    while not queue.client.get_task(task_id).finished:
        assert queue.reap() == (0, 0, 0), "a live worker was reaped during a long task"
        time.sleep(0.05)
    task = queue.client.get_task(task_id)
    assert (task.status, task.attempts, task.result) == ("complete", 1, "long")
    assert worker.poll() is None


def test_worker_on_a_redis_cluster(redis_cluster: RedisCluster, workers: WorkerSpawner) -> None:
    redis_cluster.flush()
    with Client(redis_cluster.url) as client:
        queue = client.get_queue("cluster.q")
        ids = queue.enqueue_many([{"result": i} for i in range(5)] + [{"raise": "on cluster"}])
        worker = workers.start(redis_cluster.url, "cluster.q")
        results = [finished(queue, t, worker) for t in ids]
        assert [r["result"] for r in results[:5]] == list(range(5))
        assert results[5]["status"] == "failed"
        worker.signal(signal.SIGTERM)
        assert worker.wait_exit(10) == 0, worker.output()
        assert queue.workers() == []


def test_task_process_that_exits_without_a_result_fails(
    queue: Queue, redis_url: str, workers: WorkerSpawner
) -> None:
    gone, after = queue.enqueue_many([{"exit": 3}, {"result": "next"}])
    worker = workers.start(redis_url, Q)
    task = finished(queue, gone, worker)
    assert task["status"] == "failed"
    assert isinstance(task["error"], dict) and "status 3" in task["error"]["message"]
    assert finished(queue, after, worker)["result"] == "next"


def test_ctrl_c_to_the_process_group_reaches_only_the_parent(
    queue: Queue, redis_url: str, workers: WorkerSpawner, tmp_path: Path
) -> None:
    gate, started = tmp_path / "gate", tmp_path / "started"
    task_id = queue.enqueue({"gate": str(gate), "started": str(started), "result": "survived"})
    worker = workers.start(redis_url, Q)
    wait_until(started.exists, 20, what="the task to start")
    os.killpg(worker.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    time.sleep(0.3)
    assert worker.poll() is None
    gate.touch()
    assert worker.wait_exit(20) == 0, worker.output()
    assert finished(queue, task_id, worker)["result"] == "survived"


@pytest.mark.parametrize("runner", ["fork", "inprocess"])
def test_large_parameters_and_results(
    queue: Queue, redis_url: str, workers: WorkerSpawner, runner: str
) -> None:
    size = 3_000_000  # far beyond a pipe's buffer
    task_id = queue.enqueue({"result_size": size, "blob": "p" * size})
    worker = workers.start(redis_url, Q, runner=runner)
    result = finished(queue, task_id, worker)
    assert result["status"] == "complete"
    assert result["result"] == "x" * size


def test_a_busy_worker_holds_one_task_and_prefetches_nothing(
    queue: Queue, redis_url: str, workers: WorkerSpawner, tmp_path: Path
) -> None:
    gate, started = tmp_path / "gate", tmp_path / "started"
    first = queue.enqueue({"gate": str(gate), "started": str(started)})
    rest = queue.enqueue_many([{"result": i} for i in range(3)])
    worker = workers.start(redis_url, Q, env={"BLUEQUE_WORKER_ID": "single"})
    wait_until(started.exists, 20, what="the task to start")
    for _ in range(10):  # over a few heartbeats and claim timeouts
        assert queue.client.redis.lrange(queue.keys.worker_tasks("single"), 0, -1) == [first]
        stats = queue.stats()
        assert (stats.running, stats.reserved, stats.pending) == (1, 0, 3)
        time.sleep(0.05)
    gate.touch()
    assert [finished(queue, t, worker)["result"] for t in rest] == [0, 1, 2]


def test_an_idle_worker_is_never_reaped(
    queue: Queue, redis_url: str, workers: WorkerSpawner
) -> None:
    env = {
        "BLUEQUE_HEARTBEAT_INTERVAL_S": "0.1",
        "BLUEQUE_HEARTBEAT_TTL_S": "0.5",
        "BLUEQUE_CLAIM_TIMEOUT_S": "0.25",  # the longest claim the TTL allows
    }
    worker = workers.start(redis_url, Q, env=env)
    registered(queue, worker)
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:
        assert queue.reap() == (0, 0, 0), "a live idle worker was reaped"
        time.sleep(0.02)
    assert [w.pid for w in queue.workers()] == [worker.pid]
