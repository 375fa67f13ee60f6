"""The operator's shared Redis connections under the load of many BlueQueues (real Redis)."""

from __future__ import annotations

import asyncio

import pytest

from blueque_operator.redis_link import Endpoint, RedisLinks

pytestmark = pytest.mark.redis


def test_hundreds_of_bluequeues_calling_at_once_all_get_an_answer(redis_url: str) -> None:
    """redis.asyncio's pool refuses a command ("Too many connections") rather than wait when
    more are in flight than it holds connections (100 by default): 200 BlueQueues whose ticks
    fall together (created together, or back from a Redis outage together) must each be
    answered, not see Redis as unreachable."""
    links = RedisLinks()
    endpoint = Endpoint(redis_url, None, "blueque")

    async def scenario() -> None:
        try:
            queues = [links.queue(endpoint, f"q{i}", f"uid-{i}") for i in range(300)]
            observed = await asyncio.gather(*(q.observe() for q in queues))
            assert [o.pending for o in observed] == [0] * 300
        finally:
            await links.close()

    asyncio.run(scenario())
