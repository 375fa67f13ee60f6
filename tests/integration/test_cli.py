"""The real `blueque` console script, as subprocesses, against a real redis-server."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest

from blueque import Client
from devtools.errors import WaitTimeoutError
from devtools.processes import free_port
from devtools.processes import wait_until as poll
from devtools.redis_servers import RedisCluster
from tests.support.cli_processes import BluequeRunner


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout


def user_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def status(bq: BluequeRunner, task_id: str) -> dict[str, object]:
    doc: dict[str, object] = json.loads(ok(bq.run("--json", "status", task_id)))
    return doc


def test_enqueue_work_status_wait(bq: BluequeRunner) -> None:
    first = ok(bq.run("enqueue", "cli.q", '{"n": 1}')).strip()
    second = ok(bq.run("enqueue", "cli.q", "plain text")).strip()
    assert status(bq, first)["state"] == "pending"
    worker = bq.run("worker", "cli.q", "--task", "tests.support.task_functions:echo",
                    "--max-tasks", "2", "--worker-id", "w-cli")  # fmt: skip
    assert worker.returncode == 0, worker.stderr
    assert "worker w-cli on queue cli.q (fork runner)" in worker.stderr
    assert ok(bq.run("wait", first, "--timeout", "10")).strip() == '{"n": 1}'
    assert ok(bq.run("wait", second)).strip() == "plain text"
    doc = status(bq, second)
    assert doc["state"] == "complete" and doc["result"] == "plain text"
    assert doc["attempts"] == 1 and doc["worker"] == "w-cli"
    human = ok(bq.run("status", first))
    assert "complete" in human and "w-cli" in human
    info = json.loads(ok(bq.run("info", "--json")))
    assert [(q["queue"], q["complete"], q["pending"]) for q in info["queues"]] == [("cli.q", 2, 0)]


def test_enqueue_wait_prints_the_result_or_fails(bq: BluequeRunner) -> None:
    bq.worker("ok.q", "echo")
    bq.worker("bad.q", "fail")
    done = bq.run("enqueue", "ok.q", "[1, 2]", "--wait", "--timeout", "20")
    assert ok(done).strip() == "[1, 2]"
    failed = bq.run("enqueue", "bad.q", "x", "--wait", "--timeout", "20")
    line = user_error(failed)
    assert line.endswith("failed: ValueError: boom on attempt 1")
    task_id = line.split()[2]
    doc = status(bq, task_id)
    assert doc["state"] == "failed"
    assert "Traceback" in str(doc["error"]) and "boom on attempt 1" in str(doc["error"])
    assert 'raise ValueError(f"boom' in ok(bq.run("status", task_id))  # the traceback


def test_user_mistakes_are_one_line_without_traceback(bq: BluequeRunner) -> None:
    missing = "cli.q:" + "0" * 32
    assert user_error(bq.run("status", missing)) == f"error: no task {missing}"
    assert "invalid queue name" in user_error(bq.run("enqueue", "no{braces}", "x"))
    closed = f"redis://127.0.0.1:{free_port()}/0"
    for args in (("info",), ("enqueue", "q", "x")):
        line = user_error(bq.run("--url", closed, *args))
        assert line.startswith("error: Redis unreachable"), line
    task = "tests.support.task_functions:no_such_function"
    assert "has no 'no_such_function'" in user_error(bq.run("worker", "q", "--task", task))
    usage = bq.run("purge", "q", "--state", "running")
    assert usage.returncode == 2 and "Traceback" not in usage.stderr


def test_worker_stops_on_sigterm_and_deregisters(bq: BluequeRunner, redis_url: str) -> None:
    worker = bq.worker("stop.q", "echo", "--worker-id", "w-stop")
    listed = poll(lambda: json.loads(ok(bq.run("--json", "workers", "stop.q"))), what="worker")
    assert [(w["id"], w["state"], w["alive"]) for w in listed] == [("w-stop", "idle", True)]
    worker.signal(signal.SIGTERM)
    assert worker.wait_exit() == 0
    assert json.loads(ok(bq.run("--json", "workers", "stop.q"))) == []


def test_worker_exits_with_the_workers_status_on_a_second_signal(
    bq: BluequeRunner, redis_url: str
) -> None:
    task_id = ok(bq.run("enqueue", "stop2.q", "{}")).strip()
    worker = bq.worker("stop2.q", "hang", "--worker-id", "w-stop2")
    poll(lambda: status(bq, task_id)["progress"], what="task running")
    worker.signal(signal.SIGTERM)  # first: finish the task, then stop
    poll(lambda: "finishing the current task" in worker.output(), what="first signal seen")
    assert worker.poll() is None
    worker.signal(signal.SIGTERM)  # second: stop at once
    assert worker.wait_exit() == 128 + signal.SIGTERM
    # The task stays in the worker's list, for recovery.
    assert [w["holding"] for w in json.loads(ok(bq.run("--json", "workers", "stop2.q")))] == [
        [task_id]
    ]


def test_worker_options_from_env(bq: BluequeRunner) -> None:
    task_id = ok(bq.run("enqueue", "env.q", "x")).strip()
    env = {
        "BLUEQUE_QUEUE": "env.q",
        "BLUEQUE_TASK": "tests.support.task_functions:echo",
        "BLUEQUE_WORKER_ID": "from-env",
        "BLUEQUE_MAX_TASKS": "1",
        "BLUEQUE_FORK": "false",
    }
    result = bq.run("worker", env=env)
    assert result.returncode == 0, result.stderr
    assert "(inprocess runner)" in result.stderr
    assert status(bq, task_id)["worker"] == "from-env"


def test_scheduler_promotes_due_tasks_reaps_dead_workers_and_stops(
    bq: BluequeRunner, redis_url: str
) -> None:
    client = Client(redis_url)
    try:
        queue = client.get_queue("sched.q")
        # A worker that died holding a running task: registered, heartbeat about to expire.
        held = queue.enqueue("held")
        queue.transitions.heartbeat("dead-worker", 200, {"host": "gone"})
        assert client.redis.lmove(
            queue.keys.pending, queue.keys.worker_tasks("dead-worker"), "LEFT", "RIGHT"
        )
        assert queue.transitions.begin("dead-worker", held, 1).status == "ok"
        due = ok(bq.run("enqueue", "sched.q", "later", "--delay", "0.3")).strip()
        assert status(bq, due)["state"] == "scheduled"
        scheduler = bq.start("scheduler", "--interval", "0.1")
        poll(lambda: client.get_task(due).status == "pending", what="promotion")
        poll(lambda: client.get_task(held).status == "pending", what="reap")
        reaped = client.get_task(held)
        assert reaped.attempts == 1 and reaped.last_error is not None
        assert reaped.last_error["type"] == "WorkerLost"
        assert queue.workers() == []
        scheduler.signal(signal.SIGTERM)
        assert scheduler.wait_exit() == 0
        assert "promoted 1" in scheduler.output()
    finally:
        client.close()


def test_requeue_a_dead_workers_task(bq: BluequeRunner, redis_url: str) -> None:
    task_id = ok(bq.run("enqueue", "rq.q", "{}")).strip()
    worker = bq.worker("rq.q", "hang", "--worker-id", "w-dead", "--heartbeat-ttl", "1")
    poll(lambda: status(bq, task_id)["progress"], what="task running")
    assert "is alive" in user_error(bq.run("requeue", "rq.q", "w-dead"))
    worker.kill()
    bq.task_pids.kill_all()  # the orphaned task process: a real dead pod takes it along

    def dead() -> bool:
        listed = json.loads(ok(bq.run("--json", "workers", "rq.q")))
        return bool(listed) and not listed[0]["alive"]

    poll(dead, what="heartbeat expiry")
    doc = json.loads(ok(bq.run("--json", "requeue", "rq.q", "w-dead")))
    assert doc == {"queue": "rq.q", "workers": 1, "requeued": 1, "failed": 0}
    after = status(bq, task_id)
    assert after["state"] == "pending" and after["attempts"] == 1


def test_info_watch_json_follows_the_queue(bq: BluequeRunner) -> None:
    watch = bq.start("--json", "info", "watch.q", "--watch", "--interval", "0.1")

    def lines() -> list[dict[str, object]]:
        return [json.loads(line) for line in watch.output().splitlines() if line.strip()]

    poll(lambda: lines(), what="first frame")
    ok(bq.run("enqueue", "watch.q", "x"))

    def pending_seen() -> bool:
        return any(doc["queues"][0]["pending"] == 1 for doc in lines())  # type: ignore[index]

    poll(pending_seen, what="a frame with the new task")
    watch.signal(signal.SIGINT)
    assert watch.wait_exit() == 0


@pytest.mark.cluster
def test_cli_on_a_cluster(redis_cluster: RedisCluster, tmp_path: Path) -> None:
    redis_cluster.flush()
    node = redis_cluster.url.replace("redis+cluster://", "redis://")
    env = {"BLUEQUE_REDIS_CLUSTER": "1"}
    bq = BluequeRunner(node, tmp_path)
    try:
        bq.start("worker", "cl.q", "--task", "tests.support.task_functions:echo", env=env)
        result = bq.run("enqueue", "cl.q", '{"on": "cluster"}', "--wait", "--timeout", "20",
                        env=env)  # fmt: skip
        assert ok(result).strip() == '{"on": "cluster"}'
        info = json.loads(ok(bq.run("--json", "--cluster", "info")))
        assert info["queues"][0]["complete"] == 1
    finally:
        bq.kill_all()


def test_drain_and_undrain_a_live_worker(bq: BluequeRunner, redis_url: str, tmp_path: Path) -> None:
    release = tmp_path / "release"
    bq.worker("drain.q", "steps", "--worker-id", "w-drain")
    client = Client(redis_url)
    try:
        queue = client.get_queue("drain.q")
        busy = queue.enqueue({"steps": 1, "release": str(release)})
        poll(lambda: client.get_task(busy).status == "running", what="the first task running")
        # Busy: the handshake refuses, and the worker keeps its task.
        assert "holds a task" in user_error(bq.run("drain", "drain.q", "w-drain"))
        release.touch()
        assert ok(bq.run("wait", busy, "--timeout", "10")).strip() == "done"
        poll(lambda: bq.run("drain", "drain.q", "w-drain").returncode == 0, what="drained")
        workers = json.loads(ok(bq.run("--json", "workers", "drain.q")))
        assert [(w["id"], w["draining"]) for w in workers] == [("w-drain", True)]
        # Drained: a new task waits, untouched, for as long as the worker stays drained.
        waiting = queue.enqueue({"steps": 1, "release": str(release)})
        with pytest.raises(WaitTimeoutError):
            poll(lambda: client.get_task(waiting).status != "pending", timeout_s=1.5)
        assert queue.stats().pending == 1
        assert "undrained" in ok(bq.run("undrain", "drain.q", "w-drain"))
        assert ok(bq.run("wait", waiting, "--timeout", "10")).strip() == "done"
    finally:
        client.close()


def test_a_worker_never_imports_rich(bq: BluequeRunner, tmp_path: Path) -> None:
    """The worker image stays lean: `blueque worker` loads no table library (only the
    commands that print tables import rich, when they run)."""
    probe = tmp_path / "probe" / "import_probe.py"
    probe.parent.mkdir()
    probe.write_text(
        "import sys\n\n"
        "def loaded(task):\n"
        "    return sorted(m for m in sys.modules if m.split('.')[0] in task.parameters)\n"
    )
    task_id = ok(bq.run("enqueue", "probe.q", '["rich", "blueque"]')).strip()
    env = {"PYTHONPATH": str(probe.parent)}
    ok(bq.run("worker", "probe.q", "--task", "import_probe:loaded", "--max-tasks", "1", env=env))
    loaded = status(bq, task_id)["result"]
    assert isinstance(loaded, list) and "blueque.worker" in loaded  # the probe saw the worker
    assert [m for m in loaded if m == "rich" or m.startswith(("rich.", "blueque.cli.tables"))] == []
    # A command that prints a table does load it.
    assert "probe.q" in ok(bq.run("info"))
