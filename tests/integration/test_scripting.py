"""How the scripts reach the server: as one function library (FUNCTION LOAD once per server,
on every Cluster primary, then FCALL), and as scripts (EVALSHA) where the server refuses
functions. Both paths on a real Redis 7, through the sync and the asyncio client."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import pytest

from blueque import Client, Queue
from blueque.aio import AsyncClient
from blueque.keys import QueueKeys
from blueque.scripts import library_name, load_library
from devtools.redis_servers import RedisCluster, RedisServer
from tests.support.aio import Blocking

Q = "scripting.q"


@pytest.fixture
def nodes(request: pytest.FixtureRequest, backend_url: str) -> list[RedisServer]:
    """Every server behind `backend_url`: the one standalone server, or the three primaries;
    with no function library loaded and fresh command statistics."""
    if backend_url.startswith("redis+cluster"):
        cluster: RedisCluster = request.getfixturevalue("redis_cluster")
        servers = list(cluster.nodes)
    else:
        servers = [request.getfixturevalue("redis_server")]
    for server in servers:
        with server.connection() as r:
            r.function_flush()
            r.config_resetstat()
    return servers


@pytest.fixture(params=["sync", "async"])
def bq(request: pytest.FixtureRequest, backend_url: str) -> Iterator[Any]:
    yield from _client(request.param, backend_url)


def _client(kind: str, url: str) -> Iterator[Any]:
    if kind == "sync":
        with Client(url) as sync:
            yield sync
        return
    blocking = Blocking(AsyncClient(url))
    try:
        yield blocking
    finally:
        blocking.close()


def libraries(server: RedisServer) -> list[str]:
    with server.connection() as r:
        listed = r.function_list()  # RESP2: each library a flat list of names and values
    return sorted(
        dict(zip(lib[::2], lib[1::2], strict=True))[b"library_name"].decode() for lib in listed
    )


def calls(server: RedisServer, command: str) -> int:
    with server.connection() as r:
        stats: dict[str, Any] = r.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


def lifecycle(bq: Any, worker: Queue) -> None:
    """Producer calls through `bq`, a worker's through the sync transitions (one pipeline of
    claim and begin, then finish with the next claim), then reads."""
    queue = bq.get_queue(Q)
    first, second = queue.enqueue_many(["a", "b"])
    t = worker.transitions
    t.heartbeat("w", 60_000, {})
    begun = t.claim_and_begin("w", 1, 1.0)
    assert (begun.status, begun.task_id) == ("ok", first)
    state, after = t.finish_claim_begin("w", first, begun.attempt, "complete", '"r1"', 1)
    assert (state, after.task_id) == ("complete", second)
    assert t.finish("w", second, after.attempt, "complete", '"r2"') == "complete"
    stats = queue.stats()
    assert (stats.complete, stats.pending, stats.running) == (2, 0, 0)
    assert bq.get_task(second).result == "r2"
    assert queue.config().max_attempts == 3
    assert queue.observe().workers[0].id == "w"


def test_scripts_run_as_functions_of_one_library_loaded_on_every_primary(
    bq: Any, client: Client, nodes: list[RedisServer]
) -> None:
    lifecycle(bq, client.get_queue(Q))
    assert bq.scripting.functions and client.scripting.functions
    name = library_name()
    assert name.startswith("blueque_v2_") and len(name) == len("blueque_v2_") + 16
    for node in nodes:  # the nodes that hold no key of the queue too
        assert libraries(node) == [name]
        assert calls(node, "evalsha") == calls(node, "eval") == 0
        # A Cluster client routes FCALL itself: redis-py would ask for its keys every time.
        assert calls(node, "command|getkeys") == 0
    assert sum(calls(node, "fcall") for node in nodes) >= 6
    assert sum(calls(node, "fcall_ro") for node in nodes) == 0  # (read-only ones: plain FCALL)


def test_a_flushed_library_is_loaded_again_also_inside_a_pipeline(
    bq: Any, client: Client, nodes: list[RedisServer]
) -> None:
    queue, worker = bq.get_queue(Q), client.get_queue(Q)
    first = queue.enqueue("a")
    t = worker.transitions
    t.heartbeat("w", 60_000, {})
    begun = t.claim_and_begin("w", 1, 1.0)
    second = queue.enqueue("b")
    for node in nodes:
        with node.connection() as r:
            r.function_flush()
    # finish fails with "Function not found", the claim after it runs, begin fails too:
    # the library is loaded, then finish and begin run again, in order.
    state, after = t.finish_claim_begin("w", first, begun.attempt, "complete", "1", 1)
    assert (state, after.status, after.task_id) == ("complete", "ok", second)
    for node in nodes:
        with node.connection() as r:
            r.function_flush()
    assert queue.stats().running == 1
    assert client.scripting.functions and bq.scripting.functions
    for node in nodes:
        assert libraries(node) == [library_name()]
        assert calls(node, "evalsha") == 0


def test_another_library_is_never_replaced(client: Client, nodes: list[RedisServer]) -> None:
    """Workers of another version keep calling their own library while this one loads."""
    older = "blueque_v2_0000000000000000"
    text = f"#!lua name={older}\nredis.register_function('{older}_stats', function() return 7 end)"
    for node in nodes:
        with node.connection() as r:
            r.function_load(text)
    queue = client.get_queue(Q)
    queue.enqueue("a")
    assert queue.stats().pending == 1
    for node in nodes:
        assert libraries(node) == sorted([older, library_name()])
    keys = QueueKeys("blueque", Q)
    assert client.redis.fcall(f"{older}_stats", 1, keys.stats) == 7
    # Loading again, as a second client would, keeps what is there: "already exists".
    assert client.runner.run(load_library(client.scripting))
    assert client.scripting.functions


def test_keys_and_time_come_from_each_call(client: Client, nodes: list[RedisServer]) -> None:
    """One library serves every queue and namespace: each call derives its prefix from its
    own KEYS[1] and reads the server clock afresh."""
    queues = [
        Client(redis=client.redis, namespace=ns).get_queue(name)
        for ns, name in (("one", "q1"), ("two:sub", "q2"), ("one", "q2"))
    ]
    ids = [q.enqueue(q.keys.prefix) for q in queues]
    for q, task_id in zip(queues, ids, strict=True):
        q.transitions.heartbeat("w", 60_000, {})
        # begin with no task id finds the task hash from the prefix of its KEYS[1]
        begun = q.transitions.claim_and_begin("w", 1, 1.0)
        assert (begun.status, begun.task_id, begun.parameters) == (
            "ok",
            task_id,
            f'"{q.keys.prefix}"',
        )
    queue = queues[0]
    first = queue.get_task(queue.enqueue(1)).enqueued_at
    assert first is not None
    deadline = time.monotonic() + 5
    while server_ms(client) <= first.timestamp() * 1000 and time.monotonic() < deadline:
        pass  # until the server's clock, in ms, moves on
    later = queue.get_task(queue.enqueue(2)).enqueued_at
    assert later is not None and later > first


def server_ms(client: Client) -> int:
    seconds, micros = client.redis.time()
    return int(seconds) * 1000 + int(micros) // 1000


# -- where the server refuses functions ----------------------------------------------------


@pytest.fixture(params=["no-function-load", "no-fcall"])
def limited_url(request: pytest.FixtureRequest, redis_server: RedisServer) -> Iterator[str]:
    """A user whose ACL denies FUNCTION (so the library cannot be loaded, FCALL answers
    "Function not found"), or FCALL itself, as managed services do."""
    denied = ["-function"] if request.param == "no-function-load" else ["-fcall", "-fcall_ro"]
    user = f"limited-{request.param}"
    with redis_server.connection() as r:
        r.function_flush()
        r.config_resetstat()
        r.acl_setuser(
            user, enabled=True, passwords=["+secret"], keys=["*"], channels=["*"],
            commands=["+@all", *denied],
        )  # fmt: skip
    try:
        yield f"redis://{user}:secret@127.0.0.1:{redis_server.port}/0"
    finally:
        with redis_server.connection() as r:
            r.acl_deluser(user)


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_server_that_refuses_functions_gets_scripts(
    kind: str, limited_url: str, redis_server: RedisServer, redis_url: str
) -> None:
    with contextlib.contextmanager(_client)(kind, limited_url) as bq, Client(limited_url) as worker:
        lifecycle(bq, worker.get_queue(Q))
        assert not worker.scripting.functions
        assert not bq.scripting.functions
    assert libraries(redis_server) == []
    assert calls(redis_server, "evalsha") > 6
    assert calls(redis_server, "fcall") <= 2  # the first try of each client
