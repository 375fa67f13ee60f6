"""One poisonous task fails with a reason, and its worker goes on to the next task: payloads
that JSON or UTF-8 cannot carry, nesting too deep to decode or encode, an exception that
cannot be printed. Real worker processes, both runners, a real redis-server."""

from __future__ import annotations

import json
from typing import Any

import pytest

from blueque import Queue, WaitTimeoutError
from devtools.processes import Process
from tests.support.workers import WorkerSpawner

Q = "poison.q"
RUNNERS = ["fork", "inprocess"]


def outcome(queue: Queue, task_id: str, worker: Process) -> tuple[str, Any, Any]:
    try:
        task = queue.client.get_task(task_id).wait(20)
    except WaitTimeoutError:
        raise AssertionError(f"task {task_id} did not finish; log:\n{worker.output()}") from None
    return task.status, task.result, task.error


def poison_then_next(
    queue: Queue, redis_url: str, workers: WorkerSpawner, runner: str, params: Any
) -> tuple[dict[str, str], Process]:
    """Runs a poisonous task, then a plain one on the same worker; returns the first's error
    once the second completed, with the worker still alive and never restarted."""
    poison_id, next_id = queue.enqueue_many([params, {"result": "next"}])
    worker = workers.start(redis_url, Q, runner=runner)
    status, _, error = outcome(queue, poison_id, worker)
    assert status == "failed", worker.output()
    assert outcome(queue, next_id, worker)[:2] == ("complete", "next"), worker.output()
    assert worker.poll() is None, worker.output()
    task = queue.client.get_task(poison_id)
    assert task.attempts == 1, "the task ran again: its worker was lost on the way"
    stats = queue.stats()
    assert (stats.running, stats.totals["requeued"]) == (0, 0)
    assert isinstance(error, dict)
    return error, worker


@pytest.mark.parametrize("runner", RUNNERS)
def test_a_result_with_a_lone_surrogate_fails_with_a_payload_error(
    queue: Queue, redis_url: str, workers: WorkerSpawner, runner: str
) -> None:
    error, _ = poison_then_next(queue, redis_url, workers, runner, {"undecodable_result": True})
    assert error["type"] == "blueque.errors.PayloadError"
    assert "UTF-8" in error["message"] and "surrogate" in error["message"]


@pytest.mark.parametrize("runner", RUNNERS)
def test_an_error_message_with_a_lone_surrogate_is_recorded_escaped(
    queue: Queue, redis_url: str, workers: WorkerSpawner, runner: str
) -> None:
    error, _ = poison_then_next(queue, redis_url, workers, runner, {"undecodable_error": True})
    assert error["type"] == "ValueError"
    assert error["message"] == "cannot parse report-\\udcff.txt"
    assert "cannot parse report-\\udcff.txt" in error["traceback"]


@pytest.mark.parametrize("runner", RUNNERS)
def test_a_result_nested_too_deep_fails_with_a_payload_error(
    queue: Queue, redis_url: str, workers: WorkerSpawner, runner: str
) -> None:
    error, _ = poison_then_next(queue, redis_url, workers, runner, {"nested_result": 100_000})
    assert error["type"] == "blueque.errors.PayloadError"
    assert "nested too deeply" in error["message"]


@pytest.mark.parametrize("runner", RUNNERS)
def test_an_exception_whose_str_raises_is_still_recorded(
    queue: Queue, redis_url: str, workers: WorkerSpawner, runner: str
) -> None:
    error, _ = poison_then_next(queue, redis_url, workers, runner, {"bad_str": True})
    assert error["type"] == "__main__.UnprintableError"
    assert "str() of this exception fails" in error["message"]
    assert "raise UnprintableError" in error["traceback"]


@pytest.mark.parametrize("runner", RUNNERS)
def test_parameters_nested_too_deep_fail_the_task_not_the_worker(
    queue: Queue, redis_url: str, workers: WorkerSpawner, runner: str
) -> None:
    poison_id, next_id = queue.enqueue_many(["placeholder", {"result": "next"}])
    # What a producer in another language may write: valid JSON, 5,000 levels deep.
    queue.client.redis.hset(queue.keys.task(poison_id), "parameters", "[" * 5000 + "]" * 5000)
    worker = workers.start(redis_url, Q, runner=runner)
    # The task is read raw: rendering such a task in the views is not this test's concern.
    assert outcome(queue, next_id, worker)[:2] == ("complete", "next"), worker.output()
    state, raw_error, attempts = queue.client.redis.hmget(
        queue.keys.task(poison_id), "state", "error", "attempts"
    )
    assert (state, attempts) == ("failed", "1"), worker.output()
    assert isinstance(raw_error, str)
    error = json.loads(raw_error)
    assert error["type"] == "blueque.errors.CorruptTaskError"
    assert "parameters" in error["message"] and "nested too deeply" in error["message"]
    assert worker.poll() is None, worker.output()
