"""The asyncio event stream (`blueque.aio.events`) on a real standalone server and a real
3-master Redis Cluster: streams of queues on every node, all open at once in one loop, each
reading from the node that owns its queue's slot, get each event at once (redis-py's asyncio
cluster pub/sub polled node after node and delayed them by a second or more); and a stream
follows its queue's slot when it moves to another node, counting the gap."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis

from blueque import Client
from blueque.aio import AsyncClient
from blueque.keys import queue_keys
from devtools.redis_servers import RedisCluster

QUEUES = [f"ev.{i}" for i in range(9)]


def test_streams_on_every_node_get_each_event_at_once(backend_url: str) -> None:
    async def scenario(sync: Client) -> dict[str, float]:
        async with AsyncClient(backend_url) as client:
            streams = [client.get_queue(name).events() for name in QUEUES]
            for stream in streams:
                await stream.__aenter__()
            try:
                if "cluster" in backend_url:
                    nodes = {s.node for s in streams}
                    assert len(nodes) == 3, nodes  # the queues are spread over all masters
                    for name, stream in zip(QUEUES, streams, strict=True):
                        assert isinstance(sync.redis, redis.RedisCluster)
                        owner = sync.redis.get_node_from_key(queue_keys(name).events)  # type: ignore[no-untyped-call]
                        assert stream.node == f"{owner.host}:{owner.port}"
                latency: dict[str, float] = {}
                # Every stream is blocked in one read, without a timeout, while the
                # events are published one queue after the other.
                readers = [asyncio.create_task(s.next(None)) for s in streams]
                for name, reader in zip(QUEUES, readers, strict=True):
                    await asyncio.sleep(0.05)
                    sent = time.monotonic()
                    task_id = await asyncio.to_thread(sync.get_queue(name).enqueue, name)
                    event = await asyncio.wait_for(reader, 5)
                    latency[name] = time.monotonic() - sent
                    assert event is not None and event["task"] == task_id
                again = asyncio.create_task(
                    asyncio.to_thread(sync.get_queue(QUEUES[0]).enqueue, "again")
                )
                async for event in streams[0]:  # async iteration works too
                    assert event["task"] == await again
                    break
                return latency
            finally:
                for stream in streams:
                    await stream.__aexit__(None, None, None)

    with Client(backend_url) as sync:
        latency = asyncio.run(scenario(sync))
    # Not a benchmark: a bound far above a direct read (milliseconds) and below the
    # second-long delays of polling node after node.
    assert max(latency.values()) < 0.5, latency


def _node_id(node: redis.Redis) -> str:
    return str(node.execute_command("CLUSTER", "MYID"))  # type: ignore[no-untyped-call]


def test_a_stream_follows_its_slot_to_another_node(redis_cluster: RedisCluster) -> None:
    redis_cluster.flush()
    channel = queue_keys("moving").events
    conns = [redis.Redis(port=n.port, decode_responses=True) for n in redis_cluster.nodes]
    try:
        slot = int(conns[0].execute_command("CLUSTER", "KEYSLOT", channel))  # type: ignore[no-untyped-call]

        ports = [n.port for n in redis_cluster.nodes]

        def owner_index() -> int:
            with Client(redis_cluster.url) as fresh:  # a fresh slot map
                assert isinstance(fresh.redis, redis.RedisCluster)
                return ports.index(int(fresh.redis.get_node_from_key(channel).port))  # type: ignore[no-untyped-call]

        async def scenario() -> None:
            async with AsyncClient(redis_cluster.url) as client:
                queue = client.get_queue("moving")
                async with queue.events() as stream:
                    before = stream.node
                    source = owner_index()
                    target = (source + 1) % 3
                    src, dst = conns[source], conns[target]
                    src_id, dst_id = _node_id(src), _node_id(dst)
                    # The queue has no key yet: only the slot's owner changes.
                    dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)  # type: ignore[no-untyped-call]
                    src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)  # type: ignore[no-untyped-call]
                    for c in (dst, src, conns[3 - source - target]):
                        c.execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)  # type: ignore[no-untyped-call]
                    # The old owner ended the subscription: a gap, then the new owner.
                    assert await stream.next(5) is None
                    assert stream.gaps == 1
                    assert stream.node != before
                    assert stream.node == f"127.0.0.1:{ports[target]}"
                    assert owner_index() == target
                    with Client(redis_cluster.url) as sync:
                        task_id = await asyncio.to_thread(sync.get_queue("moving").enqueue, 1)
                    event = await stream.next(5)
                    assert event is not None and event["task"] == task_id

        asyncio.run(scenario())
    finally:
        for c in conns:
            c.close()


@pytest.mark.parametrize("timeout_s", [0.2])
def test_a_quiet_stream_times_out_with_none(backend_url: str, timeout_s: float) -> None:
    async def scenario() -> None:
        async with AsyncClient(backend_url) as client, client.get_queue("quiet").events() as stream:
            started = time.monotonic()
            assert await stream.next(timeout_s) is None
            assert time.monotonic() - started >= timeout_s * 0.9
            assert stream.gaps == 0

    asyncio.run(scenario())
