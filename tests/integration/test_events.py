"""Events and waits: a reused pub/sub connection does not deliver events of an earlier
subscription; the event of a finish carries the payload; `Task.wait` subscribes to nothing
and is one round trip (its await and XREAD), since the task's done stream carries the
finished task."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from blueque import Client
from blueque.aio import AsyncClient
from blueque.keys import queue_of_task
from blueque.states import as_outcome
from devtools.processes import wait_until
from tests.support.aio import Blocking
from tests.support.protocol import collect
from tests.support.waiting import requests_of, shape


def finish_now(client: Client, task_id: str) -> None:
    queue = client.get_queue(queue_of_task(task_id))
    queue.transitions.heartbeat("w", 60_000, {})  # a worker registers before it begins
    assert queue.transitions.claim("w", 1) == task_id
    attempt = queue.transitions.begin("w", task_id, 1).attempt
    assert queue.transitions.finish("w", task_id, attempt, "complete", '"ok"') == "complete"


def test_waits_open_no_connection_and_subscribe_to_nothing(redis_url: str) -> None:
    client = Client(redis_url)
    probe = redis.Redis.from_url(redis_url)
    try:
        queue = client.get_queue("ev.q")
        first = queue.enqueue(0)
        finish_now(client, first)
        client.get_task(first).wait(timeout=5)
        before = probe.info("stats")["total_connections_received"]
        for i in range(20):
            task_id = queue.enqueue(i)
            finish_now(client, task_id)
            assert client.get_task(task_id).wait(timeout=5).result == "ok"
        assert probe.info("stats")["total_connections_received"] == before
        assert probe.pubsub_shardnumsub(queue.keys.events) == [(queue.keys.events.encode(), 0)]
        assert not client.subscribers._idle, "no pub/sub connection was opened"
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


# -- what the event of a finish carries, and a wait that is one round trip -------------------

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


@pytest.mark.parametrize(
    ("outcome", "payload", "progress", "trips"),
    [
        ("complete", '"ok"', None, [("await", "XREAD")]),
        (
            "failed",
            json.dumps({"type": "ValueError", "message": "boom"}),
            None,
            [("await", "XREAD")],
        ),
        ("complete", json.dumps("déjà", ensure_ascii=False), None, [("await", "XREAD")]),
        ("complete", '"ok"', '"half"', [("await", "XREAD")]),  # progress: in the copy too
        # Too big to copy (over 64 KiB): read once.
        ("complete", json.dumps("x" * 70_000), None, [("await", "XREAD"), ("HGETALL",)]),
    ],
)
def test_a_wait_is_one_round_trip_when_the_done_stream_carries_the_task(
    bq: Any, client: Client, outcome: str, payload: str, progress: str | None, trips: Any
) -> None:
    queue = bq.get_queue(Q)
    warm_up = queue.enqueue("first")  # the client's first wait learns that its server has await
    finish_now(client, warm_up)
    bq.get_task(warm_up).wait(timeout=10)
    task_id = queue.enqueue("x")
    task = bq.get_task(task_id)
    worker = client.get_queue(Q)
    got = requests_of(bq)

    def work() -> None:  # once the waiter is registered (its XREAD follows in its pipeline)
        wait_until(lambda: client.redis.hget(worker.keys.task(task_id), "waited") == "1", 10)
        t = worker.transitions
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
    assert [shape(r) for r in got] == trips
    first = got[0].calls
    assert first[1].args[:2] == ("XREAD", "BLOCK")  # blocked: woken by the finish
    fresh = bq.get_task(task_id)
    assert getattr(done, "wrapped", done) == getattr(fresh, "wrapped", fresh)  # as the hash has it
    assert (done.status, done.attempts, done.worker, done.pid) == (outcome, 1, "w", None)
    assert done.started_at is not None and done.finished_at is not None
    assert done.progress == (None if progress is None else json.loads(progress))
    assert done.parameters == "x"


def test_a_wait_for_a_finished_task_is_one_round_trip(bq: Any, client: Client) -> None:
    queue = bq.get_queue(Q)
    first, second = queue.enqueue_many(["a", "b"])
    for task_id in (first, second):
        finish_now(client, task_id)
    got = requests_of(bq)
    assert bq.get_task(first).wait(timeout=5).result == "ok"  # the client's first wait
    assert bq.get_task(second).wait(timeout=5).result == "ok"
    assert [shape(r) for r in got] == [("HGETALL",), ("await", "XREAD")] * 2


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
