"""One worker id, one live worker: a second worker with the id of a live one refuses to start
(clear error, exit status 78), while a restarted worker whose previous life left a fresh
heartbeat starts and recovers its own list. Real worker processes, a real redis-server."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from blueque import Queue
from blueque.worker import EXIT_ID_IN_USE
from devtools.processes import wait_until
from tests.support.workers import WorkerSpawner

Q = "identity.q"


def fake_holder(queue: Queue, worker_id: str, host: str, pid: int, started_at_s: float) -> None:
    """Registers a worker as a heartbeat would, with a fresh alive key."""
    queue.transitions.heartbeat(
        worker_id,
        30_000,
        {"host": host, "pid": pid, "pod": "", "started_at": int(started_at_s * 1000)},
    )


def test_a_second_live_worker_with_the_same_id_refuses_to_start(
    queue: Queue, redis_url: str, workers: WorkerSpawner, tmp_path: Path
) -> None:
    gate, started = tmp_path / "gate", tmp_path / "started"
    task_id = queue.enqueue({"gate": str(gate), "started": str(started), "result": "once"})
    env = {"BLUEQUE_WORKER_ID": "shared"}
    first = workers.start(redis_url, Q, env=env)
    wait_until(started.exists, 20, what="the task to start")

    second = workers.start(redis_url, Q, env=env)
    assert second.wait_exit(20) == EXIT_ID_IN_USE, second.output()
    assert "worker id 'shared' is held by a live worker on this host" in second.output()
    assert f"pid {first.pid}" in second.output()
    task = queue.client.get_task(task_id)
    assert (task.status, task.attempts) == ("running", 1), "the second worker took the task"
    assert queue.stats().totals["requeued"] == 0

    gate.touch()
    task = task.wait(20)
    assert (task.status, task.result, task.attempts) == ("complete", "once", 1)
    assert first.poll() is None, first.output()


def test_a_fresh_holder_on_another_host_is_refused(
    queue: Queue, redis_url: str, workers: WorkerSpawner
) -> None:
    fake_holder(queue, "replica", "other-pod-7f9c", 1, time.time() - 60)
    worker = workers.start(redis_url, Q, env={"BLUEQUE_WORKER_ID": "replica"})
    assert worker.wait_exit(20) == EXIT_ID_IN_USE, worker.output()
    assert "on host 'other-pod-7f9c' (pid 1)" in worker.output()
    assert "share an id" in worker.output()


def test_a_stale_holder_on_another_host_is_a_dead_worker(
    queue: Queue, redis_url: str, workers: WorkerSpawner
) -> None:
    fake_holder(queue, "moved", "old-node", 1, time.time() - 60)
    queue.client.redis.delete(queue.keys.worker_alive("moved"))  # its heartbeat expired
    worker = workers.start(redis_url, Q, env={"BLUEQUE_WORKER_ID": "moved"})
    task_id = queue.enqueue({"result": "taken"})
    assert queue.client.get_task(task_id).wait(20).result == "taken", worker.output()


def test_a_holder_pid_reused_by_a_younger_process_is_a_restarted_worker(
    queue: Queue, redis_url: str, workers: WorkerSpawner
) -> None:
    """A restarted container in the same pod: same host, its previous heartbeat fresh, and
    the old pid now belongs to another, younger process of the new container."""
    stranger = subprocess.Popen(["sleep", "600"])
    try:
        fake_holder(queue, "pod-1", socket.gethostname(), stranger.pid, time.time() - 60)
        held = queue.enqueue("held by the previous life")
        queue.client.redis.lmove(queue.keys.pending, queue.keys.worker_tasks("pod-1"))
        worker = workers.start(redis_url, Q, env={"BLUEQUE_WORKER_ID": "pod-1"})
        task = queue.client.get_task(held).wait(20)
        assert (task.status, task.attempts) == ("complete", 1), worker.output()
        assert "recovered own list: 1 requeued" in worker.output()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(stranger.pid, signal.SIGKILL)
        stranger.wait(10)
