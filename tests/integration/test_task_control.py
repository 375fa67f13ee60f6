"""Task control with real worker processes (`blueque worker`) and a real redis-server:
cancelling a running task, the per-queue retry policy, progress reports."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from blueque import Client, Queue
from devtools.processes import pid_running
from devtools.processes import wait_until as poll
from tests.support.cli_processes import REPO, BluequeRunner, blueque_executable


@pytest.fixture
def client(redis_url: str) -> Iterator[Client]:
    c = Client(redis_url)
    try:
        yield c
    finally:
        c.close()


def run_ok(bq: BluequeRunner, *args: str) -> str:
    result = bq.run(*args)
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout


def task_of(kind: str, params: Any = None) -> str:
    """Parameters for the `dispatch` task function."""
    return json.dumps({"do": kind, "with": params})


def collect_events(
    queue: Queue, stream: Any, until: Any, timeout: float = 20.0
) -> list[dict[str, Any]]:
    """Events of `queue` (with the time this test received them) until `until(event)`."""
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        event = stream.next(timeout=max(0.0, deadline - time.monotonic()))
        if event is None:
            continue
        event["received"] = time.monotonic()
        events.append(event)
        if until(event):
            return events
    raise AssertionError(f"timed out; events of {queue.name} so far: {events}")


# -- cancel ---------------------------------------------------------------------------------


def test_cancel_stops_a_hung_task_with_sigkill_after_the_grace_and_frees_the_worker(
    bq: BluequeRunner, client: Client
) -> None:
    grace_s = 0.6
    worker = bq.worker(
        "cancel.q", "dispatch", "--worker-id", "w-cancel", "--cancel-grace", str(grace_s)
    )
    hung = run_ok(bq, "enqueue", "cancel.q", task_of("hang", {"ignore_sigterm": True})).strip()
    after = run_ok(bq, "enqueue", "cancel.q", task_of("echo", "next")).strip()
    progress = poll(lambda: client.get_task(hung).progress, what="hung task running")
    child = int(progress["pid"])
    assert pid_running(child) and client.get_task(hung).status == "running"

    queue = client.get_queue("cancel.q")
    with queue.events() as events:
        asked = time.monotonic()
        out = run_ok(bq, "cancel", hung)
        assert out.strip() == f"cancel requested: worker w-cancel will stop {hung}"
        seen = collect_events(queue, events, lambda e: e.get("event") == "complete")

    cancelled = next(e for e in seen if e["event"] == "cancelled")
    assert cancelled["task"] == hung and cancelled["worker"] == "w-cancel"
    # The child ignored SIGTERM: only the SIGKILL, a grace after it, stopped it.
    assert cancelled["received"] - asked >= grace_s
    task = client.get_task(hung)
    assert task.status == "cancelled"
    assert task.error is not None and task.error["signal"] == "SIGKILL"
    assert task.error["type"] == "Cancelled"
    poll(lambda: not pid_running(child), what="the task process to be gone")
    # The same worker, still running, took the next task.
    done = client.get_task(after)
    assert done.status == "complete" and done.result == "next" and done.worker == "w-cancel"
    assert worker.poll() is None
    log = worker.output()
    assert log.index("SIGTERM to its process group") < log.index("after the cancel grace: SIGKILL")
    assert client.get_queue("cancel.q").stats().cancelled == 1


def test_cancel_a_task_that_obeys_sigterm_ends_it_before_the_grace(
    bq: BluequeRunner, client: Client
) -> None:
    # The grace comes from the environment here; a SIGKILL would come only after 60 s.
    worker = bq.start(
        "worker",
        "cancel2.q",
        "--task",
        "tests.support.task_functions:hang",
        "--heartbeat-interval",
        "0.1",
        "--heartbeat-ttl",
        "5",
        env={"BLUEQUE_CANCEL_GRACE_S": "60"},
    )
    task_id = run_ok(bq, "enqueue", "cancel2.q", "{}").strip()
    child = int(poll(lambda: client.get_task(task_id).progress, what="running")["pid"])
    doc = json.loads(run_ok(bq, "--json", "cancel", task_id, "--wait", "--timeout", "20"))
    assert doc == {"id": task_id, "outcome": "cancelled", "state": "cancelled"}
    task = client.get_task(task_id)
    assert task.error is not None and task.error["signal"] == "SIGTERM"
    assert "after the cancel grace" not in worker.output()
    poll(lambda: not pid_running(child), what="the task process to be gone")
    assert worker.poll() is None


def test_cancel_wins_over_a_failure_the_signal_caused_and_is_not_retried(
    bq: BluequeRunner, client: Client
) -> None:
    # A task that handles SIGTERM by raising records its own outcome, 'failed': the cancel
    # that caused it must still end it 'cancelled', and the retry policy must not run it again.
    run_ok(bq, "config", "cancel3.q", "retry_max=3", "retry_delay_s=0")
    worker = bq.worker("cancel3.q", "hang", "--cancel-grace", "60")
    task_id = run_ok(bq, "enqueue", "cancel3.q", '{"raise_on_sigterm": true}').strip()
    poll(lambda: client.get_task(task_id).progress, what="running")
    doc = json.loads(run_ok(bq, "--json", "cancel", task_id, "--wait", "--timeout", "20"))
    assert doc == {"id": task_id, "outcome": "cancelled", "state": "cancelled"}
    task = client.get_task(task_id)
    assert task.retries == 0 and task.attempts == 1
    assert task.error is not None and task.error["message"] == "interrupted by SIGTERM"
    stats = client.get_queue("cancel3.q").stats()
    assert (stats.cancelled, stats.failed, stats.scheduled) == (1, 0, 0)
    assert worker.poll() is None


def test_finish_records_a_failure_after_a_cancel_request_as_cancelled(backend_url: str) -> None:
    # The protocol rule behind the test above, on standalone and cluster alike.
    with Client(backend_url) as c:
        queue = c.get_queue("cancel4.q")
        queue.set_config(retry_max=2)
        task_id = queue.enqueue("x")
        queue.transitions.heartbeat("w", 60_000, {})  # a worker registers before it begins
        assert c.redis.lmove(queue.keys.pending, queue.keys.worker_tasks("w"), "LEFT", "RIGHT")
        assert queue.transitions.begin("w", task_id, 1).status == "ok"
        assert queue.cancel(task_id) == "requested"
        error = json.dumps({"type": "RuntimeError", "message": "interrupted"})
        assert queue.transitions.finish("w", task_id, 1, "failed", error) == "cancelled"
        # A repeated finish (its reply lost) answers the same and changes nothing.
        assert queue.transitions.finish("w", task_id, 1, "failed", error) == "cancelled"
        task = c.get_task(task_id)
        assert (task.status, task.retries, task.error) == ("cancelled", 0, json.loads(error))
        stats = queue.stats()
        assert (stats.cancelled, stats.failed, stats.scheduled, stats.running) == (1, 0, 0, 0)
        assert stats.totals["cancelled"] == 1 and stats.totals["stale"] == 0


# -- retry policy ---------------------------------------------------------------------------


def test_retry_policy_retries_through_scheduled_with_growing_delays_then_fails(
    bq: BluequeRunner, client: Client
) -> None:
    delay_s, backoff = 0.3, 3.0
    config = json.loads(
        run_ok(
            bq,
            "--json",
            "config",
            "retry.q",
            "retry_max=2",
            f"retry_delay_s={delay_s}",
            f"retry_backoff={backoff}",
        )
    )
    assert (config["retry_max"], config["retry_delay_s"], config["retry_backoff"]) == (2, 0.3, 3)
    # Only the scheduler promotes (the worker's own promotion is off), so the delays below
    # are those of the scheduled set.
    bq.worker("retry.q", "dispatch", "--promote-interval", "0", "--worker-id", "w-retry")
    bq.start("scheduler", "retry.q", "--interval", "0.05")
    queue = client.get_queue("retry.q")
    with queue.events() as events:
        failing = queue.enqueue({"do": "fail", "with": None})
        other = queue.enqueue({"do": "echo", "with": "meanwhile"})
        seen = collect_events(
            queue, events, lambda e: e.get("event") == "failed" and e.get("task") == failing
        )

    mine = [e for e in seen if e.get("task") == failing]
    assert [e["event"] for e in mine] == [
        "enqueued",
        "started",
        "retry_scheduled",
        "promoted",
        "started",
        "retry_scheduled",
        "promoted",
        "started",
        "failed",
    ]
    # Each retry waited in the scheduled set for its delay (ts: Redis's clock, ms), and the
    # second one backoff times longer.
    scheduled = [e["ts"] for e in mine if e["event"] == "retry_scheduled"]
    promoted = [e["ts"] for e in mine if e["event"] == "promoted"]
    waits_s = [(p - s) / 1000 for s, p in zip(scheduled, promoted, strict=True)]
    assert waits_s[0] >= delay_s
    assert waits_s[1] >= delay_s * backoff
    assert all(e["state"] == "scheduled" for e in mine if e["event"] == "retry_scheduled")
    # A retry never blocks the worker: the task behind ran before the first retry.
    order = [(e["event"], e.get("task")) for e in seen]
    first_retry = [i for i, o in enumerate(order) if o == ("started", failing)][1]
    assert order.index(("started", other)) < first_retry
    assert client.get_task(other).result == "meanwhile"

    task = client.get_task(failing)
    assert task.status == "failed" and task.retries == 2 and task.attempts == 3
    assert task.error is not None and task.error["message"] == "boom on attempt 3"
    assert task.last_error is not None and task.last_error["message"] == "boom on attempt 2"
    stats = queue.stats()
    assert stats.failed == 1 and stats.scheduled == 0 and stats.totals["retried"] == 2


def test_retry_policy_is_off_by_default(bq: BluequeRunner, client: Client) -> None:
    assert json.loads(run_ok(bq, "--json", "config", "noretry.q"))["retry_max"] == 0
    bq.worker("noretry.q", "fail")
    result = bq.run("enqueue", "noretry.q", "x", "--wait", "--timeout", "20")
    assert result.returncode == 1
    assert result.stderr.strip().endswith("failed: ValueError: boom on attempt 1")
    task_id = result.stderr.split()[2]
    task = client.get_task(task_id)
    assert task.status == "failed" and task.retries == 0 and task.attempts == 1
    stats = client.get_queue("noretry.q").stats()
    assert stats.scheduled == 0 and stats.totals["retried"] == 0


# -- progress -------------------------------------------------------------------------------


def read_pty_until(fd: int, needle: bytes, timeout: float = 15.0) -> bytes:
    """Reads a terminal's output until `needle` shows up."""
    seen = b""
    deadline = time.monotonic() + timeout
    while needle not in seen:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"{needle!r} not shown within {timeout} s; got {seen[-2000:]!r}")
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            try:
                seen += os.read(fd, 65536)
            except OSError:  # the terminal closed
                break
    return seen


def test_progress_is_in_the_hash_published_and_shown_by_status_and_info_watch(
    bq: BluequeRunner, client: Client, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    bq.worker("progress.q", "steps")
    queue = client.get_queue("progress.q")
    with queue.events() as events:
        task_id = queue.enqueue({"steps": 3, "release": str(release)})
        progress_events = [
            collect_events(queue, events, lambda e: e.get("event") == "progress")[-1]
            for _ in range(3)
        ]
    assert all(e["task"] == task_id and e["state"] == "running" for e in progress_events)

    task = client.get_task(task_id)
    assert task.status == "running" and task.progress == {"step": 3, "of": 3}
    assert task.progress_at is not None
    raw = client.redis.hget(queue.keys.task(task_id), "progress")
    assert isinstance(raw, str) and json.loads(raw) == {"step": 3, "of": 3}

    doc = json.loads(run_ok(bq, "--json", "status", task_id))
    assert doc["progress"] == {"step": 3, "of": 3} and doc["progress_at"] is not None
    assert '{"step": 3, "of": 3}' in run_ok(bq, "status", task_id)

    # info --watch, as a person sees it: a live view on a terminal.
    primary, secondary = pty.openpty()
    watch = subprocess.Popen(
        [blueque_executable(), "info", "--watch", "--interval", "0.1"],
        cwd=REPO,
        env=bq.env({"COLUMNS": "220", "LINES": "50", "TERM": "xterm"}),
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
    )
    os.close(secondary)
    try:
        screen = read_pty_until(primary, b'{"step": 3, "of": 3}')
        assert b"progress.q" in screen and b"Running tasks" in screen
        watch.send_signal(signal.SIGINT)
        assert watch.wait(10) == 0
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.wait(10)
        os.close(primary)

    release.touch()
    finished = client.get_task(task_id).wait(timeout=20)
    assert finished.status == "complete" and finished.result == "done"
    # A report after the task ended is fenced out.
    assert client.get_task(task_id).set_progress("late") is False
