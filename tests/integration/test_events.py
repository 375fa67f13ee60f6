"""Event subscriptions: `Task.wait` reuses its pub/sub connection instead of opening one per
call, and a reused connection does not deliver events of an earlier subscription. The event
of a finish carries what a waiter needs, so a wait reads its task once."""

from __future__ import annotations

import inspect
import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from blueque import Client
from blueque.aio import AsyncClient
from blueque.states import as_outcome
from blueque.steps import Call
from devtools.processes import wait_until
from tests.support.aio import Blocking
from tests.support.protocol import collect


def finish_now(client: Client, task_id: str) -> None:
    queue = client.get_task(task_id)._q()
    queue.transitions.heartbeat("w", 60_000, {})  # a worker registers before it begins
    assert queue.transitions.claim("w", 1) == task_id
    attempt = queue.transitions.begin("w", task_id, 1).attempt
    assert queue.transitions.finish("w", task_id, attempt, "complete", '"ok"') == "complete"


def test_waits_reuse_one_pubsub_connection(redis_url: str) -> None:
    client = Client(redis_url)
    probe = redis.Redis.from_url(redis_url)
    try:
        queue = client.get_queue("ev.q")
        first = queue.enqueue(0)
        finish_now(client, first)
        client.get_task(first).wait(timeout=5)  # opens the one connection the pool keeps
        before = probe.info("stats")["total_connections_received"]
        for i in range(20):
            task_id = queue.enqueue(i)
            finish_now(client, task_id)
            assert client.get_task(task_id).wait(timeout=5).result == "ok"
        assert probe.info("stats")["total_connections_received"] == before
        # The kept connection is unsubscribed while idle (the unsubscribe is sent as the
        # wait ends, on the pub/sub connection: the probe may get there first by a hair):
        # events published now are not queued on it for the next wait.
        unsubscribed = [(queue.keys.events.encode(), 0)]
        wait_until(lambda: probe.pubsub_shardnumsub(queue.keys.events) == unsubscribed, 5)
        assert client.subscribers._idle, "the connection is kept"
    finally:
        probe.close()
        client.close()


def test_a_reused_connection_follows_only_its_new_channel(redis_url: str) -> None:
    client = Client(redis_url)
    try:
        a, b = client.get_queue("ev.a"), client.get_queue("ev.b")
        with a.events():
            pass
        with b.events() as events:
            a.enqueue("for a")
            b_id = b.enqueue("for b")
            event = events.next(timeout=2)
        assert event is not None and event["task"] == b_id
    finally:
        client.close()


# -- what the event of a finish carries, and a wait that reads the task once -----------------

Q = "ev.wait"


@pytest.fixture(params=["sync", "async"])
def bq(request: pytest.FixtureRequest, backend_url: str) -> Iterator[Any]:
    if request.param == "sync":
        with Client(backend_url) as sync:
            yield sync
        return
    blocking = Blocking(AsyncClient(backend_url))
    try:
        yield blocking
    finally:
        blocking.close()


def reads_of(bq: Any, key: str, on_read: Callable[[], None]) -> list[str]:
    """Records each HGETALL of `key` the client's runner serves, calling `on_read` after it."""
    runner = bq.runner
    original = runner.serve
    reads: list[str] = []

    def seen(request: Any) -> None:
        if isinstance(request, Call) and request.args == ("HGETALL", key):
            reads.append(key)
            on_read()

    if inspect.iscoroutinefunction(original):

        async def serve_async(request: Any, scope: Any) -> Any:
            reply = await original(request, scope)
            seen(request)
            return reply

        runner.serve = serve_async
    else:

        def serve(request: Any, scope: Any) -> Any:
            reply = original(request, scope)
            seen(request)
            return reply

        runner.serve = serve
    return reads


@pytest.mark.parametrize(
    ("outcome", "payload", "progress", "reads"),
    [
        ("complete", '"ok"', None, 1),
        ("failed", json.dumps({"type": "ValueError", "message": "boom"}), None, 1),
        ("complete", json.dumps("x" * 2000), None, 2),  # too big for the event
        ("complete", json.dumps("déjà", ensure_ascii=False), None, 2),  # not ASCII
        ("complete", '"ok"', '"half"', 2),  # progress: read again
    ],
)
def test_a_wait_reads_the_task_once_when_its_finish_event_carries_the_rest(
    bq: Any, client: Client, outcome: str, payload: str, progress: str | None, reads: int
) -> None:
    task_id = bq.get_queue(Q).enqueue("x")
    task = bq.get_task(task_id)
    worker = client.get_queue(Q)
    read = threading.Event()
    got = reads_of(bq, worker.keys.task(task_id), read.set)

    def work() -> None:  # once the waiter has read the task
        assert read.wait(10)
        t = worker.transitions
        t.heartbeat("w", 60_000, {})
        begun = t.claim_and_begin("w", 4242, 1.0)
        if progress is not None:
            assert t.set_progress("w", task_id, begun.attempt, progress)
        assert t.finish("w", task_id, begun.attempt, as_outcome(outcome), payload) == outcome

    thread = threading.Thread(target=work)
    thread.start()
    try:
        done = task.wait(timeout=10)
    finally:
        thread.join()
    assert len(got) == reads
    fresh = bq.get_task(task_id)
    assert getattr(done, "wrapped", done) == getattr(fresh, "wrapped", fresh)  # as the hash has it
    assert (done.status, done.attempts, done.worker, done.pid) == (outcome, 1, "w", None)
    assert done.started_at is not None and done.finished_at is not None
    assert done.progress == (None if progress is None else json.loads(progress))


def test_the_event_of_a_finish_carries_the_payload_and_what_begin_wrote(client: Client) -> None:
    queue = client.get_queue(Q)
    with queue.events() as events:
        first, second, third = queue.enqueue_many([1, 2, 3])
        for task_id, outcome, payload in (
            (first, "complete", '{"n":1}'),
            (second, "failed", '{"type":"E","message":"m"}'),
            (third, "complete", json.dumps("y" * 1025)),
        ):
            t = queue.transitions
            t.heartbeat("w", 60_000, {})
            begun = t.claim_and_begin("w", 1, 1.0)
            assert begun.task_id == task_id
            t.finish("w", task_id, begun.attempt, as_outcome(outcome), payload)
        got = [e for e in collect(events, 9) if e["event"] in ("complete", "failed")]
    hashes = [client.redis.hgetall(queue.keys.task(i)) for i in (first, second, third)]
    for event, h, field in zip(got, hashes, ("result", "error", "result"), strict=True):
        assert event["task"] == h["id"] and event["state"] == event["event"] == h["state"]
        assert event["worker"] == "w" and event["ts"] == int(h["finished_at"])
        assert event["attempts"] == 1 and event["started_at"] == int(h["started_at"])
        assert event["size"] == len(str(h[field]).encode())
    assert [e.get("result") for e in got] == ['{"n":1}', None, None]  # the third: too big
    assert got[1]["error"] == hashes[1]["error"]
