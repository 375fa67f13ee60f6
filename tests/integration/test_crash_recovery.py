"""Crashes with real processes: a worker's parent and child SIGKILLed mid-task, recovered by
reap (heartbeat expired) or by the same worker restarting; fencing of a stale worker; a child
that dies with its parent."""

from __future__ import annotations

from pathlib import Path

from blueque import Queue
from devtools.processes import Process, wait_until
from tests.support.workers import WorkerSpawner

Q = "crash.q"
SHORT_TTL = {"BLUEQUE_HEARTBEAT_INTERVAL_S": "0.1", "BLUEQUE_HEARTBEAT_TTL_S": "0.5"}


def kill_mid_task(worker: Process, workers: WorkerSpawner, started: Path) -> None:
    """SIGKILLs the worker parent and its task child once the task runs."""
    wait_until(started.exists, 20, what="the task to start")
    assert workers.task_pids.alive(), "no task process found"
    worker.kill()
    workers.task_pids.kill_all()


def test_killed_worker_is_reaped_and_the_task_completes_at_attempt_2(
    queue: Queue, redis_url: str, workers: WorkerSpawner, tmp_path: Path
) -> None:
    started = tmp_path / "started"
    task_id = queue.enqueue(
        {"gate": str(tmp_path / "never"), "gate_first_only": True, "started": str(started)}
    )
    first = workers.start(redis_url, Q, env={**SHORT_TTL, "BLUEQUE_WORKER_ID": "doomed"})
    kill_mid_task(first, workers, started)
    task = queue.client.get_task(task_id)
    assert (task.status, task.attempts) == ("running", 1)  # nobody knows yet

    wait_until(lambda: queue.reap()[0] == 1, 10, what="the dead worker to be reaped")
    task = queue.client.get_task(task_id)
    assert (task.status, task.attempts) == ("pending", 1)
    assert task.last_error is not None and task.last_error["type"] == "WorkerLost"
    assert queue.stats().totals["requeued"] == 1

    workers.start(redis_url, Q, env={"BLUEQUE_WORKER_ID": "rescuer"})
    task = queue.client.get_task(task_id).wait(20)
    assert (task.status, task.attempts, task.result) == ("complete", 2, "done at attempt 2")
    assert task.worker == "rescuer"


def test_killed_worker_past_max_attempts_fails_with_worker_lost(
    queue: Queue, redis_url: str, workers: WorkerSpawner, tmp_path: Path
) -> None:
    queue.set_config(max_attempts=1)
    started = tmp_path / "started"
    task_id = queue.enqueue({"gate": str(tmp_path / "never"), "started": str(started)})
    worker = workers.start(redis_url, Q, env={**SHORT_TTL, "BLUEQUE_WORKER_ID": "doomed"})
    kill_mid_task(worker, workers, started)
    wait_until(lambda: queue.reap("worker lost")[0] == 1, 10, what="the reap")
    task = queue.client.get_task(task_id)
    assert (task.status, task.attempts) == ("failed", 1)
    assert task.error is not None
    assert task.error["type"] == "WorkerLost"
    assert "worker lost" in task.error["message"] and "doomed" in task.error["message"]
    stats = queue.stats()
    assert (stats.failed, stats.running, stats.pending, stats.workers) == (1, 0, 0, 0)


def test_restarted_worker_recovers_its_own_list(
    queue: Queue, redis_url: str, workers: WorkerSpawner, tmp_path: Path
) -> None:
    started = tmp_path / "started"
    task_id = queue.enqueue(
        {"gate": str(tmp_path / "never"), "gate_first_only": True, "started": str(started)}
    )
    env = {"BLUEQUE_WORKER_ID": "pod-1"}  # a long heartbeat TTL: no reap can happen
    first = workers.start(redis_url, Q, env=env)
    kill_mid_task(first, workers, started)
    assert queue.client.redis.lrange(queue.keys.worker_tasks("pod-1"), 0, -1) == [task_id]

    workers.start(redis_url, Q, env=env)  # the container restarts in the same pod
    task = queue.client.get_task(task_id).wait(20)
    assert (task.status, task.attempts, task.result) == ("complete", 2, "done at attempt 2")
    assert task.last_error is not None and "restarted" in task.last_error["message"]
    assert queue.stats().totals["requeued"] == 1


def test_stale_workers_late_finish_is_dropped(
    queue: Queue, redis_url: str, workers: WorkerSpawner, tmp_path: Path
) -> None:
    gate, started = tmp_path / "gate", tmp_path / "started"
    task_id = queue.enqueue({"gate": str(gate), "gate_first_only": True, "started": str(started)})
    stale = workers.start(redis_url, Q, env={"BLUEQUE_WORKER_ID": "partitioned"})
    wait_until(started.exists, 20, what="the task to start")
    # The operator wrongly presumes the worker dead (a partition, a paused node).
    assert queue.requeue_worker("partitioned", "pod deleted") == (1, 0)
    workers.start(redis_url, Q, env={"BLUEQUE_WORKER_ID": "live"})
    task = queue.client.get_task(task_id).wait(20)
    assert (task.attempts, task.result, task.worker) == (2, "done at attempt 2", "live")

    with queue.events() as events:
        gate.touch()  # the stale attempt finishes now
        event = events.next(timeout=20)
        while event is not None and event["event"] != "stale":
            event = events.next(timeout=20)
    assert event is not None and event["task"] == task_id
    assert event["worker"] == "partitioned"
    task = queue.client.get_task(task_id)
    assert (task.status, task.attempts, task.result, task.worker) == (
        "complete",
        2,
        "done at attempt 2",
        "live",
    )
    stats = queue.stats()
    assert (stats.totals["stale"], stats.totals["completed"]) == (1, 1)
    assert stale.poll() is None, stale.output()  # the stale worker lives on


def test_a_task_process_dies_with_its_killed_parent_and_the_reap_gives_the_task_back(
    queue: Queue, redis_url: str, workers: WorkerSpawner, tmp_path: Path
) -> None:
    gate, started = tmp_path / "gate", tmp_path / "started"
    task_id = queue.enqueue({"gate": str(gate), "started": str(started), "result": "rerun"})
    worker = workers.start(redis_url, Q, env={**SHORT_TTL, "BLUEQUE_WORKER_ID": "parent"})
    wait_until(started.exists, 20, what="the task to start")
    assert workers.task_pids.alive()
    worker.kill()  # the parent dies; its child with it (Linux: PR_SET_PDEATHSIG)
    worker.wait_exit(5)
    wait_until(lambda: not workers.task_pids.alive(), 5, what="the task process to die")
    gate.touch()  # an orphan that survived would now record its result at attempt 1
    wait_until(lambda: queue.reap() == (1, 1, 0), 10, what="the reap")
    workers.start(redis_url, Q, env={"BLUEQUE_WORKER_ID": "rescuer"})
    task = queue.client.get_task(task_id).wait(20)
    assert (task.status, task.result, task.attempts, task.worker) == (
        "complete",
        "rerun",
        2,
        "rescuer",
    )
    stats = queue.stats()
    assert (stats.complete, stats.running, stats.totals["requeued"]) == (1, 0, 1)
