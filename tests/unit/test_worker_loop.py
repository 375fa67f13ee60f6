"""The worker loop in this process, on fakeredis, with connection failures injected at each
call of a task's life: before a call reaches Redis, or after it ran but its reply was lost.
Whatever the point, no task is lost, none runs twice, and nothing is counted stale."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis

from blueque import Client, Task, Worker, WorkerSettings
from blueque.outcome import call_task_function

SETTINGS = WorkerSettings(
    worker_id="w1",
    claim_timeout_s=0.05,
    heartbeat_interval_s=10,  # no heartbeat falls due: the finish carries the next claim
    heartbeat_ttl_s=30,
    promote_interval_s=0,
    reconnect_max_delay_s=0.05,
    max_tasks=3,
)


class DirectRunner:
    """The in-process runner without its heartbeat thread."""

    name = "direct"

    def idle(self) -> None:
        pass

    def close(self) -> None:
        pass

    def execute(self, worker: Worker, task: Task) -> None:
        outcome, payload = call_task_function(worker.fn, task)
        worker.record(task, outcome, payload, then_claim=True)


class Flaky:
    """Wraps an object; the first call of `method` raises ConnectionError, before or after
    the real call ran."""

    def __init__(self, real: Any, method: str, when: str) -> None:
        self._real, self._method, self._when = real, method, when
        self.injected = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._real, name)
        if name != self._method or self.injected:
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self.injected += 1
            if self._when == "reply lost":
                attr(*args, **kwargs)
            raise redis.exceptions.ConnectionError(f"injected into {name}: {self._when}")

        return call


def run_worker(client: Client, fn: Callable[[Task], Any], flaky: tuple[str, str] | None) -> Any:
    worker = Worker(client, "loop.q", fn, DirectRunner(), SETTINGS)
    wrapped: Flaky | None = None
    if flaky is not None:
        method, when = flaky
        wrapped = Flaky(worker.transitions, method, when)
        worker.transitions = wrapped  # type: ignore[assignment]
    assert worker.run() == 0
    if wrapped is not None:
        assert wrapped.injected == 1, "the failure was never injected"
    return worker


@pytest.mark.parametrize("when", ["no reply", "reply lost"])
@pytest.mark.parametrize("method", ["claim_and_begin", "finish", "finish_claim_begin", "heartbeat"])
def test_connection_failures_lose_nothing(fake_client: Client, method: str, when: str) -> None:
    queue = fake_client.get_queue("loop.q")
    ids = queue.enqueue_many([{"n": i} for i in range(3)])
    runs: list[Any] = []

    def fn(task: Task) -> Any:
        runs.append(task.parameters["n"])
        return task.parameters["n"] * 10

    run_worker(fake_client, fn, (method, when))
    assert sorted(runs) == [0, 1, 2]  # each ran exactly once
    tasks = [queue.get_task(t) for t in ids]
    assert [(t.status, t.attempts, t.result) for t in tasks] == [
        ("complete", 1, 0),
        ("complete", 1, 10),
        ("complete", 1, 20),
    ]
    stats = queue.stats()
    assert (stats.totals["started"], stats.totals["completed"], stats.totals["stale"]) == (3, 3, 0)
    assert (stats.pending, stats.reserved, stats.running, stats.workers) == (0, 0, 0, 0)


def test_a_plain_run(fake_client: Client) -> None:
    queue = fake_client.get_queue("loop.q")
    ids = queue.enqueue_many(["a", "b", "c"])
    run_worker(fake_client, lambda t: t.parameters.upper(), None)
    assert [queue.get_task(t).result for t in ids] == ["A", "B", "C"]


class ReapedBeforeClaim:
    """Wraps the worker's transitions: once, right after a finish and before the claim that
    goes with it, the worker is requeued as dead (a stall past its TTL) while it lives on."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.reaped = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def finish_claim_begin(self, worker_id: str, task_id: str, attempt: int, *rest: Any) -> Any:
        if not self.reaped:
            self.reaped += 1
            self._real.finish(worker_id, task_id, attempt, *rest[:2])
            self._real.requeue_worker(worker_id, "heartbeat expired")
        return self._real.finish_claim_begin(worker_id, task_id, attempt, *rest)


def test_a_worker_reaped_while_alive_registers_again_before_it_runs_a_task(
    fake_client: Client,
) -> None:
    queue = fake_client.get_queue("loop.q")
    ids = queue.enqueue_many(["a", "b", "c"])
    registered: list[bool] = []

    def fn(task: Task) -> str:
        registered.append(bool(fake_client.redis.sismember(queue.keys.workers, "w1")))
        return str(task.parameters)

    worker = Worker(fake_client, "loop.q", fn, DirectRunner(), SETTINGS)
    wrapped = ReapedBeforeClaim(worker.transitions)
    worker.transitions = wrapped  # type: ignore[assignment]
    assert worker.run() == 0
    assert wrapped.reaped == 1
    assert registered == [True, True, True]  # a begun task always has a registered holder
    assert [(queue.get_task(t).status, queue.get_task(t).attempts) for t in ids] == [
        ("complete", 1)
    ] * 3
    stats = queue.stats()
    assert (stats.totals["refused"], stats.totals["started"], stats.totals["stale"]) == (1, 3, 0)


def test_the_registry_entry_records_the_pod_and_its_owner(fake_client: Client) -> None:
    # What the operator injects (the downward API's POD_NAME and POD_UID, BLUEQUE_OWNER): the
    # worker records it, so that an operator acts only on its own workers' pods.
    env = {"POD_NAME": "videos-workers-7d9-abcde", "POD_UID": "pod-uid-1", "BLUEQUE_OWNER": "bq-1"}
    settings = WorkerSettings.from_env(env).with_(
        heartbeat_interval_s=0.5, heartbeat_ttl_s=30, promote_interval_s=0, max_tasks=1
    )
    queue = fake_client.get_queue("loop.q")
    seen: list[dict[str, Any]] = []
    queue.enqueue("x")
    worker = Worker(
        fake_client,
        "loop.q",
        lambda t: seen.extend(w.as_dict() for w in queue.workers()),
        DirectRunner(),
        settings,
    )
    assert worker.run() == 0
    assert [(w["id"], w["pod"], w["pod_uid"], w["owner"]) for w in seen] == [
        ("videos-workers-7d9-abcde", "videos-workers-7d9-abcde", "pod-uid-1", "bq-1")
    ]
    outside = WorkerSettings.from_env({})
    assert (outside.pod_uid, outside.owner) == (None, None)  # a laptop's worker has neither
