"""The claim, through the protocol layer: `Transitions.claim`, `held`, and the pipelines a
worker sends ([BLMOVE, begin] when idle, and `cycle` after a task: finish, claim and begin
in one script): one round trip each."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import redis.connection

from blueque import Client


@pytest.fixture
def sends(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bytes]]:
    """Every write of a request (or a pipeline) to a Redis socket: one per round trip."""
    sent: list[bytes] = []
    original: Callable[..., None] = redis.connection.AbstractConnection.send_packed_command

    def counting(
        self: redis.connection.AbstractConnection,
        command: bytes | list[bytes],
        check_health: bool = True,
    ) -> None:
        sent.append(command if isinstance(command, bytes) else b"".join(command))
        original(self, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)
    yield sent


def test_claim_and_held(client: Client) -> None:
    queue = client.get_queue("claim.q")
    first, second = queue.enqueue_many(["a", "b"])
    t = queue.transitions
    assert t.held("w") is None
    assert t.claim("w", 1) == first
    assert t.held("w") == first
    assert queue.stats().reserved == 1
    assert t.claim("other", 1) == second
    assert t.claim("third", 0.05) is None  # nothing within the timeout


def test_a_task_costs_one_round_trip(client_standalone: Client, sends: list[bytes]) -> None:
    queue = client_standalone.get_queue("rt.q")
    queue.enqueue_many(["a", "b", "c"])
    t = queue.transitions
    t.heartbeat("w", 60_000, {})  # a worker registers before it begins
    warm = t.claim_and_begin("w", 1, 1.0)  # loads the library ("Function not found", then load)
    assert warm.status == "ok"
    state, begun = t.finish_claim_begin("w", warm.task_id, warm.attempt, "complete", "1", 1)
    assert state == "complete" and begun.status == "ok"

    before = len(sends)
    state, after = t.finish_claim_begin("w", begun.task_id, begun.attempt, "complete", "2", 1)
    assert state == "complete" and after.status == "ok"
    assert len(sends) - before == 1  # finish, claim and begin: one script, one write
    assert b"_cycle" in sends[-1] and b"BLMOVE" not in sends[-1]
    before = len(sends)
    assert t.finish("w", after.task_id, after.attempt, "complete", "3") == "complete"
    nothing = t.claim_and_begin("w", 1, 0.05)
    assert nothing.status == "empty"
    assert len(sends) - before == 2


def test_the_cycle_never_blocks_nor_claims_a_second_task(client: Client) -> None:
    """With nothing pending, `cycle` finishes and answers 'empty' at once (the worker then
    claims with BLMOVE, which waits); while the worker's list still holds a task it claims
    nothing: one task at a time."""
    queue = client.get_queue("cycle.q")
    t = queue.transitions
    t.heartbeat("w", 60_000, {})
    only = queue.enqueue("a")
    begun = t.claim_and_begin("w", 1, 1.0)
    assert begun.task_id == only
    state, nothing = t.finish_claim_begin("w", only, begun.attempt, "complete", "1", 1)
    assert (state, nothing.status) == ("complete", "empty")
    assert t.held("w") is None

    first, second, third = queue.enqueue_many(["b", "c", "d"])
    begun = t.claim_and_begin("w", 1, 1.0)
    assert begun.task_id == first
    client.redis.rpush(queue.keys.worker_tasks("w"), "stray")  # a second id in its list
    state, after = t.finish_claim_begin("w", first, begun.attempt, "complete", "2", 1)
    assert (state, after.status) == ("complete", "empty")
    assert [task.id for task in queue.tasks("pending")] == [second, third]  # nothing claimed


def test_a_cycle_that_begins_the_next_task_counts_once_and_writes_the_worker_once(
    client_standalone: Client,
) -> None:
    """When `cycle` begins the next task, finish's `running -= 1` and begin's `+= 1` cancel
    out and begin's write of the worker hash replaces finish's, so neither is sent; no
    counter is read ahead either (finish and begin count first, each increment a check)."""
    queue = client_standalone.get_queue("cyclecost.q")
    k = queue.keys
    t = queue.transitions
    t.heartbeat("w", 60_000, {})
    queue.enqueue_many(["a", "b"])
    begun = t.claim_and_begin("w", 1, 1.0)
    with client_standalone.redis.monitor() as monitor:  # type: ignore[no-untyped-call]
        state, after = t.finish_claim_begin("w", begun.task_id, begun.attempt, "complete", "1", 1)
        client_standalone.redis.echo("cycle done")
        sent = []
        for entry in monitor.listen():
            if entry["command"] == "ECHO cycle done":
                break
            if entry["client_type"] == "lua":
                sent.append(entry["command"].split())
    assert (state, after.status) == ("complete", "ok")
    assert [c for c in sent if c[1:2] == [k.stats]] == [
        ["HINCRBY", k.stats, "running", "0"],  # checks it: a begin refusal would decrement it
        ["HINCRBY", k.stats, "live", "-1"],
        ["HINCRBY", k.stats, "completed", "1"],
        ["HINCRBY", k.stats, "started", "1"],
    ]
    worker_writes = [c for c in sent if c[1:2] == [k.worker("w")]]
    assert [c[:4] for c in worker_writes] == [["HSET", k.worker("w"), "task", after.task_id]]
    stats = queue.stats()
    assert (stats.running, stats.totals["completed"], stats.totals["started"]) == (1, 1, 2)
    assert [w.task for w in queue.workers()] == [after.task_id]
