"""What a forking worker's task processes may outlive: the task's child dies with its worker
parent, and what a task started (in its process group, in a session of its own, as a
daemon) ends when the task ends, not while it runs. Real workers, real processes."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from blueque import Queue
from devtools.processes import pid_running, wait_until
from tests.support.workers import REPO, WorkerSpawner

Q = "procs.q"


@pytest.fixture
def sleepers(tmp_path: Path) -> Iterator[Path]:
    """A directory for the pid files of `sleep` processes that tasks start; any still alive
    at the end are killed (by pid, if that pid still runs `sleep 600`)."""
    directory = tmp_path / "sleepers"
    directory.mkdir()
    try:
        yield directory
    finally:
        for pid_file in directory.iterdir():
            text = pid_file.read_text().strip()
            if not text:
                continue
            pid = int(text)
            with contextlib.suppress(OSError):
                if Path(f"/proc/{pid}/cmdline").read_bytes() == b"sleep\x00600\x00":
                    os.kill(pid, signal.SIGKILL)


def sleeper_pid(pid_file: Path) -> int:
    text = wait_until(lambda: pid_file.read_text() if pid_file.exists() else None, 10, what="a pid")
    return int(text)


def test_a_task_process_dies_with_its_worker_parent(
    queue: Queue, redis_url: str, workers: WorkerSpawner, tmp_path: Path
) -> None:
    started = tmp_path / "started"
    task_id = queue.enqueue(
        {"gate": str(tmp_path / "never"), "gate_first_only": True, "started": str(started)}
    )
    env = {"BLUEQUE_WORKER_ID": "pod-1"}
    first = workers.start(redis_url, Q, env=env)
    wait_until(started.exists, 20, what="the task to start")
    children = workers.task_pids.alive()
    assert children, "no task process found"
    first.kill()  # outside a container: nothing else ends the child
    first.wait_exit(5)
    wait_until(
        lambda: not workers.task_pids.alive(), 5, what="the task process to die with its parent"
    )

    # The restarted worker reruns the task, and it is the only run.
    started.unlink()
    workers.start(redis_url, Q, env=env)
    task = queue.client.get_task(task_id).wait(20)
    assert (task.status, task.attempts, task.result) == ("complete", 2, "done at attempt 2")
    assert started.read_text() == "2"


def test_a_child_whose_parent_is_already_gone_leaves_before_running() -> None:
    probe = (
        "import ctypes, os, signal\n"
        "from blueque.process_tree import die_with_parent\n"
        "die_with_parent(int(os.environ['EXPECTED_PARENT']))\n"
        "value = ctypes.c_int()\n"
        "ctypes.CDLL(None).prctl(2, ctypes.byref(value), 0, 0, 0)  # PR_GET_PDEATHSIG\n"
        "print('ran', signal.Signals(value.value).name)\n"
    )

    def run(expected_parent: int) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "EXPECTED_PARENT": str(expected_parent)}
        return subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=False
        )

    assert run(os.getpid()).stdout == "ran SIGKILL\n"
    gone = run(os.getpid() + 1_000_000)  # a parent that is not ours any more
    assert (gone.returncode, gone.stdout) == (1, "")


@pytest.mark.parametrize("how", ["group", "setsid", "daemon"])
def test_what_a_task_started_ends_when_the_task_ends(
    queue: Queue, redis_url: str, workers: WorkerSpawner, sleepers: Path, how: str
) -> None:
    spawned = sleepers / "sleeper"
    task_id = queue.enqueue({"spawn": how, "spawned": str(spawned), "result": "left one"})
    worker = workers.start(redis_url, Q)
    task = queue.client.get_task(task_id).wait(20)
    assert (task.status, task.result) == ("complete", "left one")
    pid = sleeper_pid(spawned)
    wait_until(lambda: not pid_running(pid), 5, what=f"the {how} process to be ended")
    assert worker.poll() is None, worker.output()
    next_id = queue.enqueue({"result": "next"})
    assert queue.client.get_task(next_id).wait(20).result == "next"


@pytest.mark.parametrize("how", ["group", "setsid", "daemon"])
def test_what_a_task_started_lives_while_the_task_runs(
    queue: Queue, redis_url: str, workers: WorkerSpawner, sleepers: Path, tmp_path: Path, how: str
) -> None:
    gate, started, spawned = tmp_path / "gate", tmp_path / "started", sleepers / "sleeper"
    task_id = queue.enqueue(
        {"spawn": how, "spawned": str(spawned), "gate": str(gate), "started": str(started)}
    )
    worker = workers.start(redis_url, Q)
    wait_until(started.exists, 20, what="the task to start")
    pid = sleeper_pid(spawned)
    for _ in range(8):  # over several heartbeats and sweep intervals
        assert pid_running(pid), f"the {how} process was ended while its task ran"
        time.sleep(0.2)
    gate.touch()
    assert queue.client.get_task(task_id).wait(20).status == "complete"
    wait_until(lambda: not pid_running(pid), 5, what=f"the {how} process to be ended")
    assert worker.poll() is None, worker.output()


def test_the_workers_own_children_are_not_a_tasks_leftovers(
    queue: Queue, redis_url: str, workers: WorkerSpawner, sleepers: Path, tmp_path: Path
) -> None:
    """A program that runs a forking worker after starting a process of its own keeps it."""
    own, spawned = sleepers / "own", sleepers / "sleeper"
    script = tmp_path / "embedding.py"
    script.write_text(
        "import subprocess, sys\n"
        f"sys.path.insert(0, {str(REPO)!r})\n"
        "from pathlib import Path\n"
        "from blueque import Client, forking_runner\n"
        "from tests.support.worker_main import task_function\n"
        "keeper = subprocess.Popen(['sleep', '600'])\n"
        f"Path({str(own)!r}).write_text(str(keeper.pid))\n"
        f"with Client({redis_url!r}) as client:\n"
        f"    sys.exit(forking_runner.run(client, {Q!r}, task_function, max_tasks=2))\n"
    )
    first, second = queue.enqueue_many(
        [{"spawn": "setsid", "spawned": str(spawned)}, {"result": "second"}]
    )
    worker = workers.start(redis_url, Q, script=script)
    assert worker.wait_exit(20) == 0, worker.output()
    assert queue.client.get_task(second).status == "complete"
    assert not pid_running(sleeper_pid(spawned)), "the task's detached process survived"
    assert pid_running(sleeper_pid(own)), "the program's own child was ended"
    assert queue.client.get_task(first).status == "complete"


def worker_children(pid: int) -> set[int]:
    found: set[int] = set()
    for thread in Path(f"/proc/{pid}/task").iterdir():
        found.update(int(child) for child in (thread / "children").read_text().split())
    return found


def test_the_next_task_process_is_forked_ahead_and_claims_nothing(
    queue: Queue, redis_url: str, workers: WorkerSpawner, tmp_path: Path
) -> None:
    """While a task runs, the process for the next one already waits (its fork overlaps the
    task), holding no task; it runs the next task the worker claims, on a frozen heap."""
    gate, started = tmp_path / "gate", tmp_path / "started"
    first = queue.enqueue({"gate": str(gate), "started": str(started), "process": True})
    second, third = queue.enqueue_many([{"process": True}] * 2)
    worker = workers.start(redis_url, Q, env={"BLUEQUE_WORKER_ID": "ahead"})
    wait_until(started.exists, 20, what="the first task to start")
    running = set(workers.task_pids.alive())
    assert len(running) == 1
    spare = wait_until(lambda: worker_children(worker.pid) - running or None, 10, what="a spare")
    assert len(spare) == 1 and pid_running(next(iter(spare)))
    for _ in range(5):  # over claim timeouts: the worker holds one task, the spare none
        assert queue.client.redis.lrange(queue.keys.worker_tasks("ahead"), 0, -1) == [first]
        stats = queue.stats()
        assert (stats.running, stats.reserved, stats.pending) == (1, 0, 2)
        time.sleep(0.1)
    gate.touch()
    results = [queue.client.get_task(t).wait(20).result for t in (first, second, third)]
    assert results[0]["pid"] in running
    assert results[1]["pid"] == next(iter(spare))  # forked before its task was claimed
    assert all(r["frozen"] > 0 for r in results)
    worker.signal(signal.SIGTERM)
    assert worker.wait_exit(10) == 0
