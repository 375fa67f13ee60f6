"""`Task.wait` on the await script and the task's done stream (PROTOCOL.md "Waiting for a
task"): every transition that finishes or deletes a task wakes its waiters at once (one
blocking read, not a slice that passed), an automatic retry does not, timeouts and
`raise_on_failure` behave as before, and what waiting leaves in Redis expires."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable
from typing import Any

import pytest
import redis
from redis.exceptions import ResponseError

from blueque import (
    Client,
    InvalidNameError,
    Queue,
    TaskFailedError,
    TaskNotFoundError,
    WaitTimeoutError,
)
from blueque.protocol import Transitions
from blueque.scripts import script
from blueque.states import as_outcome
from devtools.processes import wait_until
from tests.support.protocol import claim
from tests.support.waiting import (
    Waiter,
    blocked_readers,
    blocking_reads,
    calls_of,
    requests_of,
    shape,
)

Q = "wait.q"
BOOM = json.dumps({"type": "ValueError", "message": "boom"})
NOTIFY_TTL_MS = 60_000


@pytest.fixture
def queue(client: Client, backend_url: str) -> Queue:
    q = client.get_queue(Q)
    q.transitions.heartbeat("w", 60_000, {})  # a worker registers before it begins
    URLS[q] = backend_url
    return q


URLS: dict[Queue, str] = {}  # where each test's waiters connect


def begun(queue: Queue) -> tuple[str, int]:
    """A task enqueued, claimed and begun by worker w: (id, attempt)."""
    task_id = queue.enqueue("x")
    b = queue.transitions.claim_and_begin("w", 4242, 1.0)
    assert (b.status, b.task_id) == ("ok", task_id)
    return task_id, b.attempt


def start_waiting(
    queue: Queue, task_id: str, n: int = 1, *, aio: bool = False, **options: Any
) -> list[Waiter]:
    """`n` waiters of the task, each on a client of its own (sync and asyncio by turns,
    starting with `aio`), blocked in their XREAD."""
    waiters = [Waiter(URLS[queue], task_id, aio=aio != (i % 2 == 1), **options) for i in range(n)]
    for waiter in waiters:
        waiter.start()
    done = queue.keys.task_done(task_id)
    wait_until(lambda: blocked_readers(queue.client, done) == n, 10, what="the waiters to block")
    assert queue.client.redis.hget(queue.keys.task(task_id), "waited") == "1"
    return waiters


def fields_of(task: Any) -> dict[str, Any]:
    """What a snapshot says, whichever client (sync or asyncio) made it."""
    return {f.name: getattr(task, f.name) for f in dataclasses.fields(task) if f.compare}


def assert_woken_once(queue: Queue, task_id: str, waiter: Waiter) -> Any:
    """The waiter's task, after one blocking read (woken by the transition, not a slice);
    the task's `waited` is gone and its done stream expires."""
    task = waiter.outcome()
    assert blocking_reads(waiter.requests) == 1, waiter.requests
    assert queue.client.redis.hget(queue.keys.task(task_id), "waited") is None
    assert 0 < queue.client.redis.pttl(queue.keys.task_done(task_id)) <= NOTIFY_TTL_MS
    return task


# Each finishing transition: (set-up before the wait -> the task id, the transition,
# the state the waiter gets, its error type).
Setup = Callable[[Queue], tuple[str, Callable[[], None]]]


def _finish(outcome: str, payload: str) -> Setup:
    def setup(queue: Queue) -> tuple[str, Callable[[], None]]:
        task_id, attempt = begun(queue)

        def apply() -> None:
            t = queue.transitions
            assert t.finish("w", task_id, attempt, as_outcome(outcome), payload) == outcome

        return task_id, apply

    return setup


def _cycle(queue: Queue) -> tuple[str, Callable[[], None]]:
    """The worker's finish that claims and begins the next task in the same script."""
    task_id, attempt = begun(queue)
    following = queue.enqueue("next")

    def apply() -> None:
        state, after = queue.transitions.finish_claim_begin(
            "w", task_id, attempt, "complete", '"ok"', 4242
        )
        assert (state, after.status, after.task_id) == ("complete", "ok", following)

    return task_id, apply


def _cancel_waiting(delay: float | None) -> Setup:
    def setup(queue: Queue) -> tuple[str, Callable[[], None]]:
        task_id = queue.enqueue("x") if delay is None else queue.schedule("x", delay=delay)

        def apply() -> None:
            assert queue.cancel(task_id) == "cancelled"

        return task_id, apply

    return setup


def _cancel_reserved(queue: Queue) -> tuple[str, Callable[[], None]]:
    task_id = queue.enqueue("x")
    assert claim(queue, "w") == task_id

    def apply() -> None:
        assert queue.cancel(task_id) == "requested"
        assert queue.transitions.begin("w", task_id, 1).status == "cancelled"

    return task_id, apply


def _cancel_then(step: str) -> Setup:
    def setup(queue: Queue) -> tuple[str, Callable[[], None]]:
        task_id, attempt = begun(queue)
        t: Transitions = queue.transitions

        def apply() -> None:
            assert queue.cancel(task_id) == "requested"
            if step == "release":
                assert t.release("w", task_id, attempt) == "cancelled"
            elif step == "finish":
                assert t.finish("w", task_id, attempt, "failed", BOOM) == "cancelled"
            else:
                assert t.requeue_worker("w", "gone") == (0, 0)

        return task_id, apply

    return setup


def _lost(by: str) -> Setup:
    def setup(queue: Queue) -> tuple[str, Callable[[], None]]:
        queue.set_config(max_attempts=1)
        task_id, _ = begun(queue)
        t = queue.transitions

        def apply() -> None:
            if by == "reap":
                queue.client.redis.delete(queue.keys.worker_alive("w"))
                assert t.reap("expired") == (1, 0, 1)
            else:
                assert t.requeue_worker("w", "pod gone") == (0, 1)

        return task_id, apply

    return setup


TRANSITIONS: dict[str, tuple[Setup, str, str | None]] = {
    "finish complete": (_finish("complete", '"ok"'), "complete", None),
    "finish failed": (_finish("failed", BOOM), "failed", "ValueError"),
    "cycle": (_cycle, "complete", None),
    "cancel pending": (_cancel_waiting(None), "cancelled", None),
    "cancel scheduled": (_cancel_waiting(3600), "cancelled", None),
    "begin applies a cancel": (_cancel_reserved, "cancelled", None),
    "release applies a cancel": (_cancel_then("release"), "cancelled", None),
    "finish after a cancel": (_cancel_then("finish"), "cancelled", "ValueError"),
    "requeue_worker applies a cancel": (_cancel_then("requeue"), "cancelled", None),
    "requeue_worker at max_attempts": (_lost("requeue"), "failed", "WorkerLost"),
    "reap at max_attempts": (_lost("reap"), "failed", "WorkerLost"),
}


@pytest.mark.parametrize("aio", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("name", list(TRANSITIONS))
def test_every_transition_that_finishes_a_task_wakes_its_waiter(
    queue: Queue, name: str, aio: bool
) -> None:
    setup, state, error = TRANSITIONS[name]
    task_id, transition = setup(queue)
    [waiter] = start_waiting(queue, task_id, aio=aio, timeout=30)
    transition()
    task = assert_woken_once(queue, task_id, waiter)
    assert fields_of(task) == fields_of(queue.get_task(task_id))  # a copy of the hash
    assert task.status == state
    assert (task.error or {}).get("type") == error


def test_a_wait_for_a_task_finished_before_it_reads_the_done_stream_at_once(
    queue: Queue,
) -> None:
    task_id, attempt = begun(queue)
    queue.transitions.finish("w", task_id, attempt, "complete", '{"n": 1}')
    for aio in (False, True):
        waiter = Waiter(URLS[queue], task_id, aio=aio, timeout=30)
        waiter.start()
        assert waiter.outcome().result == {"n": 1}
        assert blocking_reads(waiter.requests) == 0  # a fresh client's first wait never blocks
    assert queue.client.redis.hget(queue.keys.task(task_id), "waited") is None
    assert 0 < queue.client.redis.pttl(queue.keys.task_done(task_id)) <= NOTIFY_TTL_MS


@pytest.mark.parametrize("raise_on_failure", [False, True])
def test_a_failure_is_returned_or_raised(queue: Queue, raise_on_failure: bool) -> None:
    task_id, attempt = begun(queue)
    [waiter] = start_waiting(queue, task_id, timeout=30, raise_on_failure=raise_on_failure)
    queue.transitions.finish("w", task_id, attempt, "failed", BOOM)
    if raise_on_failure:
        with pytest.raises(TaskFailedError, match=f"task {task_id} failed: boom"):
            waiter.outcome()
    else:
        task = waiter.outcome()
        assert (task.status, task.error["message"]) == ("failed", "boom")


def test_an_automatic_retry_does_not_end_the_wait(queue: Queue) -> None:
    queue.set_config(retry_max=1, retry_delay_s=0)
    task_id, attempt = begun(queue)
    [waiter] = start_waiting(queue, task_id, timeout=30)
    t = queue.transitions
    assert t.finish("w", task_id, attempt, "failed", BOOM) == "scheduled"
    # Not finished: the task is still waited for, nobody is woken.
    assert queue.client.redis.hget(queue.keys.task(task_id), "waited") == "1"
    assert not queue.client.redis.exists(queue.keys.task_done(task_id))
    assert blocked_readers(queue.client, queue.keys.task_done(task_id)) == 1
    assert t.promote_due(10) == (1, None)
    again = t.claim_and_begin("w", 4242, 1.0)
    assert t.finish("w", task_id, again.attempt, "complete", '"second"') == "complete"
    task = assert_woken_once(queue, task_id, waiter)
    assert (task.status, task.result, task.retries, task.attempts) == ("complete", "second", 1, 2)
    assert task.last_error["message"] == "boom"


def test_a_task_deleted_while_waited_for_is_not_found(queue: Queue) -> None:
    task_id = queue.enqueue("x")
    [waiter] = start_waiting(queue, task_id, timeout=30)
    queue.delete(task_id)
    with pytest.raises(TaskNotFoundError, match=task_id):
        waiter.outcome()
    assert blocking_reads(waiter.requests) == 1
    entries = queue.client.redis.xrange(queue.keys.task_done(task_id)) or []
    assert [fields for _, fields in entries] == [{"notify": "missing"}]


def test_a_wait_on_a_snapshot_of_a_deleted_task_is_not_found(queue: Queue) -> None:
    task_id = queue.enqueue("x")
    snapshot = queue.get_task(task_id)
    queue.delete(task_id)
    with pytest.raises(TaskNotFoundError, match=task_id):
        snapshot.wait(5)


def test_two_waiters_of_one_task_both_return(queue: Queue) -> None:
    task_id, attempt = begun(queue)
    waiters = start_waiting(queue, task_id, n=2, timeout=30)  # one sync, one asyncio
    queue.transitions.finish("w", task_id, attempt, "complete", '"both"')
    for waiter in waiters:
        assert assert_woken_once(queue, task_id, waiter).result == "both"
    assert len(queue.client.redis.xrange(queue.keys.task_done(task_id)) or []) == 1


def test_a_waiter_times_out_and_leaves_only_what_expires(queue: Queue) -> None:
    task_id = queue.enqueue("x")
    with pytest.raises(WaitTimeoutError, match=rf"task {task_id} still pending after 0(\.0)? s"):
        queue.get_task(task_id).wait(0)
    with pytest.raises(WaitTimeoutError, match=rf"task {task_id} still pending after 0\.3 s"):
        queue.get_task(task_id).wait(0.3)
    # The mark stays (a waiter that gave up is not counted off): the finish then writes a
    # done stream that nobody reads, and that expires.
    assert queue.client.redis.hget(queue.keys.task(task_id), "waited") == "1"
    queue.cancel(task_id)
    assert 0 < queue.client.redis.pttl(queue.keys.task_done(task_id)) <= NOTIFY_TTL_MS
    assert queue.get_task(task_id).wait(0).status == "cancelled"


def test_a_retried_task_is_waited_for_afresh(queue: Queue) -> None:
    task_id, attempt = begun(queue)
    t = queue.transitions
    t.finish("w", task_id, attempt, "failed", BOOM)
    assert queue.get_task(task_id).wait(5).status == "failed"  # writes its done stream
    queue.retry(task_id)
    assert not queue.client.redis.exists(queue.keys.task_done(task_id))
    [waiter] = start_waiting(queue, task_id, timeout=30)
    again = t.claim_and_begin("w", 4242, 1.0)
    t.finish("w", task_id, again.attempt, "complete", '"second"')
    assert assert_woken_once(queue, task_id, waiter).result == "second"


def test_a_stale_done_stream_of_a_task_that_may_still_finish_is_removed(queue: Queue) -> None:
    """As a retry by a client that does not know done streams would leave one."""
    task_id, attempt = begun(queue)
    done = queue.keys.task_done(task_id)
    queue.client.redis.xadd(done, {"notify": "task", "state": "complete"})
    with pytest.raises(WaitTimeoutError, match="still running"):
        queue.get_task(task_id).wait(0.2)
    assert not queue.client.redis.exists(done)
    queue.transitions.finish("w", task_id, attempt, "complete", '"real"')
    assert queue.get_task(task_id).wait(5).result == "real"


def test_await_refuses_a_done_stream_that_is_not_the_tasks(queue: Queue) -> None:
    task_id = queue.enqueue("x")
    keys = [queue.keys.task(task_id), queue.keys.task_done(task_id) + "x"]
    with pytest.raises(ResponseError, match="KEYS\\[2\\] must be"):
        queue.transitions.run(script(queue.client.scripting, "await", keys, []))
    assert queue.client.redis.hget(queue.keys.task(task_id), "waited") is None


def test_a_wait_blocks_in_slices_shorter_than_the_socket_timeout(redis_url: str) -> None:
    """A blocking read longer than the socket timeout would read as a lost connection."""
    short = redis.Redis.from_url(redis_url, socket_timeout=1.0, decode_responses=True)
    with Client(redis=short) as client:
        queue = client.get_queue(Q)
        task = queue.get_task(queue.enqueue("x"))
        requests = requests_of(client)
        with pytest.raises(WaitTimeoutError, match=r"still pending after 1\.6 s"):
            task.wait(1.6)
    blocks_ms = [
        int(c.args[2]) for r in requests for c in calls_of(r) if c.args[:2] == ("XREAD", "BLOCK")
    ]
    assert blocks_ms and max(blocks_ms) <= 500, blocks_ms
    assert sum(blocks_ms) >= 1000  # (the last look, at the deadline, does not block)


def test_a_wait_by_id_reads_nothing_first(queue: Queue, client: Client) -> None:
    """`Queue.wait` and `Client.wait` take the id `enqueue` returns and never read the task
    before waiting: the await script and the blocking read are the only requests."""
    task_id, attempt = begun(queue)
    t = queue.transitions
    assert t.finish("w", task_id, attempt, "complete", '"r"') == "complete"
    sent = requests_of(client)
    finished = queue.wait(task_id, timeout=5)
    assert (finished.id, finished.status, finished.result) == (task_id, "complete", "r")
    assert [shape(r) for r in sent] == [("await", "XREAD")], sent  # one round trip, no read
    assert client.wait(task_id, timeout=5).result == "r"
    with pytest.raises(TaskNotFoundError):
        client.wait(f"{Q}:{'0' * 32}", timeout=1)
    other = client.get_queue("other.q").enqueue(None)
    with pytest.raises(InvalidNameError):
        queue.wait(other, timeout=1)


def test_an_asyncio_wait_by_id(queue: Queue, backend_url: str) -> None:
    from blueque.aio import AsyncClient

    task_id, attempt = begun(queue)
    assert queue.transitions.finish("w", task_id, attempt, "failed", BOOM) == "failed"

    async def wait() -> None:
        async with AsyncClient(backend_url) as aclient:
            assert (await aclient.get_queue(Q).wait(task_id, timeout=5)).status == "failed"
            with pytest.raises(TaskFailedError):
                await aclient.wait(task_id, timeout=5, raise_on_failure=True)

    asyncio.run(wait())
