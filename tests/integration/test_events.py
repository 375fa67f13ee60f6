"""Event subscriptions: `Task.wait` reuses its pub/sub connection instead of opening one per
call, and a reused connection does not deliver events of an earlier subscription."""

from __future__ import annotations

import redis

from blueque import Client


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
        # The kept connection is unsubscribed while idle: events published now are not
        # queued on it for the next wait.
        assert probe.pubsub_shardnumsub(queue.keys.events) == [(queue.keys.events.encode(), 0)]
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
