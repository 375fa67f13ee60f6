"""The operator's view of a queue (`observe`) and the queue's ownership claim (`claim_owner`,
`release_owner`), on standalone Redis and a 3-master Cluster (the `client` fixture)."""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import pytest

from blueque import Client, CorruptKeyError, InvalidArgumentError, WorkerObservation
from devtools.processes import wait_until
from tests.support.protocol import claim

Q = "observe.q"


def _by_id(workers: tuple[WorkerObservation, ...]) -> dict[str, WorkerObservation]:
    return {w.id: w for w in workers}


def _register(client: Client, wid: str, **fields: str | int) -> None:
    client.get_queue(Q).transitions.heartbeat(wid, 30_000, dict(fields))


def test_observe_an_empty_queue(client: Client) -> None:
    before_ms = time.time() * 1000
    seen = client.get_queue(Q).observe()
    assert (seen.queue, seen.pending, seen.scheduled, seen.running, seen.reserved) == (
        Q,
        0,
        0,
        0,
        0,
    )
    assert seen.workers == ()
    # The server's clock (same host): within a few seconds of ours.
    assert abs(seen.server_time_ms - before_ms) < 5_000
    assert seen.server_time.timestamp() == seen.server_time_ms / 1000


def test_observe_follows_each_worker_through_its_states(client: Client) -> None:
    queue = client.get_queue(Q)
    _register(client, "idle", owner="uid-1", pod_uid="pod-1")
    _register(client, "busy", owner="uid-1", pod_uid="pod-2")
    _register(client, "other")  # a laptop's worker: no owner, no pod
    first, second, _ = queue.enqueue_many([1, 2, 3])
    queue.schedule(4, delay=3600)

    assert claim(queue, "busy") == first
    seen = queue.observe()
    assert (seen.pending, seen.scheduled, seen.reserved, seen.running) == (2, 1, 1, 0)
    w = _by_id(seen.workers)
    assert sorted(w) == ["busy", "idle", "other"]
    assert w["idle"] == WorkerObservation(
        id="idle",
        owner="uid-1",
        pod_uid="pod-1",
        task=None,
        begun=False,
        task_started_at=None,
        draining=False,
        registered=True,
        alive=True,
        heartbeat_ttl_ms=30_000,
    )
    assert (w["busy"].task, w["busy"].begun, w["busy"].task_started_at) == (first, False, None)
    assert (w["other"].owner, w["other"].pod_uid) == (None, None)

    assert queue.transitions.begin("busy", first, 7).status == "ok"
    seen = queue.observe()
    assert (seen.reserved, seen.running) == (0, 1)
    busy = _by_id(seen.workers)["busy"]
    started = queue.get_task(first).started_at
    assert (busy.task, busy.begun, busy.task_started_at) == (first, True, started)
    assert started is not None

    # A drained idle worker, then the worker dies while drained: its mark outlives it.
    assert queue.drain("idle")
    assert _by_id(queue.observe().workers)["idle"].draining
    assert queue.requeue_worker("idle") == (0, 0)
    gone = _by_id(queue.observe().workers)["idle"]
    assert (gone.registered, gone.draining, gone.alive, gone.owner, gone.task) == (
        False,
        True,
        False,
        None,
        None,
    )

    # A drain of an id that never registered (a pod still starting) shows too.
    assert queue.drain("starting")
    starting = _by_id(queue.observe().workers)["starting"]
    assert (starting.registered, starting.draining, starting.alive) == (False, True, False)

    # A dead worker: its alive key expired (deleted here: expiry is what a reaper sees).
    client.redis.delete(queue.keys.worker_alive("busy"))
    dead = _by_id(queue.observe().workers)["busy"]
    assert (dead.alive, dead.registered, dead.task, dead.begun) == (False, True, first, True)

    assert second in [t.id for t in queue.tasks("pending")]
    assert sorted(_by_id(queue.observe().workers)) == ["busy", "idle", "other", "starting"]


def test_a_corrupt_worker_key_does_not_hide_the_others(client: Client) -> None:
    queue = client.get_queue(Q)
    _register(client, "good", owner="o")
    _register(client, "bad", owner="o")
    client.redis.delete(queue.keys.worker("bad"))
    client.redis.set(queue.keys.worker("bad"), "not a hash")
    client.redis.set(queue.keys.worker_tasks("bad"), "not a list")
    w = _by_id(queue.observe().workers)
    assert (w["good"].owner, w["bad"].owner, w["bad"].task, w["bad"].alive) == (
        "o",
        None,
        None,
        True,
    )


def test_a_corrupt_counter_is_named(client: Client) -> None:
    queue = client.get_queue(Q)
    client.redis.hset(queue.keys.stats, "running", "many")
    with pytest.raises(CorruptKeyError) as caught:
        queue.observe()
    assert caught.value.key == queue.keys.stats


def test_observe_is_one_read_only_round_trip(
    client_standalone: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = client_standalone.get_queue(Q)
    redis: Any = client_standalone.redis
    for wid in ("w1", "w2", "w3"):
        _register(client_standalone, wid, owner="o")
    queue.enqueue_many([1, 2])
    claim(queue, "w1")
    queue.drain("w3")
    queue.observe()  # loads the script
    changes = redis.info("persistence")["rdb_changes_since_last_save"]
    connection_class = redis.connection_pool.connection_class
    sent: list[object] = []
    real_send = connection_class.send_packed_command

    def counting_send(self: Any, command: Any, check_health: bool = True) -> None:
        sent.append(command)
        real_send(self, command, check_health)

    monkeypatch.setattr(connection_class, "send_packed_command", counting_send)
    seen = queue.observe()
    monkeypatch.undo()
    assert len(sent) == 1  # one request, whatever the number of workers
    assert len(seen.workers) == 3
    assert redis.info("persistence")["rdb_changes_since_last_save"] == changes  # wrote nothing


# -- ownership ------------------------------------------------------------------------------


def test_claim_renew_and_release(client: Client) -> None:
    queue = client.get_queue(Q)
    first = queue.claim_owner("uid-a", 30)
    assert (first.holder, first.acquired, first.ttl_s) == ("uid-a", True, 30.0)
    assert client.redis.get(queue.keys.owner) == "uid-a"
    assert 29_000 < client.redis.pttl(queue.keys.owner) <= 30_000

    refused = queue.claim_owner("uid-b", 30)
    assert (refused.holder, refused.acquired) == ("uid-a", False)
    assert 0 < refused.ttl_s <= 30

    renewed = queue.claim_owner("uid-a", 60)  # the holder renews, with its new TTL
    assert (renewed.acquired, renewed.ttl_s) == (True, 60.0)
    assert 59_000 < client.redis.pttl(queue.keys.owner) <= 60_000

    assert queue.release_owner("uid-b") is False  # not the holder: refused
    assert client.redis.get(queue.keys.owner) == "uid-a"
    assert queue.release_owner("uid-a") is True
    assert client.redis.exists(queue.keys.owner) == 0
    assert queue.release_owner("uid-a") is False
    assert queue.claim_owner("uid-b", 30).acquired


def test_two_owners_race_for_one_queue(client: Client, backend_url: str) -> None:
    contenders = [f"uid-{i}" for i in range(6)]
    start = threading.Barrier(len(contenders))
    results: dict[str, bool] = {}

    def contend(owner: str) -> None:
        with Client(backend_url) as own:
            queue = own.get_queue(Q)
            queue.stats()  # connected before the race starts
            start.wait()
            results[owner] = queue.claim_owner(owner, 30).acquired

    threads = [threading.Thread(target=contend, args=(o,)) for o in contenders]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [o for o, won in results.items() if won]
    assert len(results) == len(contenders)
    assert len(winners) == 1
    assert client.redis.get(client.get_queue(Q).keys.owner) == winners[0]


def test_an_expired_claim_hands_over(client: Client) -> None:
    queue = client.get_queue(Q)
    assert queue.claim_owner("uid-a", 0.2).acquired
    assert not queue.claim_owner("uid-b", 30).acquired
    # The holder stopped renewing: once its TTL ran out, the next claimant gets the queue.
    taken = wait_until(lambda: queue.claim_owner("uid-b", 30).acquired, timeout_s=5)
    assert taken
    assert not queue.claim_owner("uid-a", 30).acquired
    assert queue.claim_owner("uid-b", 30).holder == "uid-b"


def test_a_claim_without_ttl_reads_as_endless(client: Client) -> None:
    queue = client.get_queue(Q)
    client.redis.set(queue.keys.owner, "by-hand")
    claim = queue.claim_owner("uid-a", 30)
    assert (claim.holder, claim.acquired, claim.ttl_s) == ("by-hand", False, math.inf)


@pytest.mark.parametrize(
    ("owner", "ttl_s"),
    [
        ("", 30),
        ("a b", 30),
        ("a\nb", 30),
        ("x" * 257, 30),
        (5, 30),
        (None, 30),
        ("uid", 0),
        ("uid", -1),
        ("uid", math.nan),
        ("uid", math.inf),
        ("uid", 86_401),
        ("uid", True),
        ("uid", "30"),
    ],
)
def test_bad_claims_are_refused(client: Client, owner: Any, ttl_s: Any) -> None:
    queue = client.get_queue(Q)
    with pytest.raises(InvalidArgumentError):
        queue.claim_owner(owner, ttl_s)
    assert client.redis.exists(queue.keys.owner) == 0


@pytest.mark.parametrize("owner", ["", "a b", 5, "x" * 257])
def test_bad_releases_are_refused(client: Client, owner: Any) -> None:
    with pytest.raises(InvalidArgumentError):
        client.get_queue(Q).release_owner(owner)


def test_a_corrupt_owner_key_is_named(client: Client) -> None:
    queue = client.get_queue(Q)
    client.redis.hset(queue.keys.owner, "x", "1")
    with pytest.raises(CorruptKeyError) as caught:
        queue.claim_owner("uid-a", 30)
    assert caught.value.key == queue.keys.owner
