"""The per-BlueQueue loop's timing: BlueQueues started together do not tick together; a loop
woken as it is stopped still stops."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from blueque_operator.controller import QueueController, Services
from blueque_operator.kube import Kube
from blueque_operator.metrics import Metrics
from blueque_operator.redis_link import RedisLinks
from blueque_operator.world import World


class TickTimes(QueueController):
    """A controller whose tick only notes when it ran (no spec: the loop's 1 s interval)."""

    def __init__(self, services: Services, body: dict[str, Any]) -> None:
        super().__init__(services, body)
        self.ticks: list[float] = []

    async def tick(self) -> None:
        self.ticks.append(time.monotonic())


def test_bluequeues_started_together_spread_their_ticks_over_the_interval() -> None:
    """An operator starting (or 200 BlueQueues applied at once) starts every loop in the same
    instant; with the same interval, every tick would then fall in the same instant forever,
    and each waits behind all the others (the fleet benchmark's p95 tick was ~0.4 s for 200
    BlueQueues). After its first tick, a loop waits a random part of the interval."""

    async def scenario() -> list[float]:
        services = _services()
        loops = [
            TickTimes(services, {"metadata": {"namespace": "ns", "name": f"q{i}", "uid": f"u{i}"}})
            for i in range(20)
        ]
        for loop in loops:
            loop.start()
        deadline = time.monotonic() + 5
        while any(len(loop.ticks) < 2 for loop in loops) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for loop in loops:
            await loop.stop(deleted=False)
        return [loop.ticks[1] for loop in loops]

    second_ticks = asyncio.run(scenario())
    assert max(second_ticks) - min(second_ticks) > 0.3  # of the 1 s interval


def _services() -> Services:
    return Services(
        kube=Kube(api=None),
        world=World(),
        links=RedisLinks(),
        metrics=Metrics(process_metrics=False),
        is_leader=lambda: True,
    )


class DropsCancellation(TickTimes):
    """A tick that drops a cancellation, as redis-py's asyncio client does with most of those
    that come during a command (it returns the reply)."""

    async def tick(self) -> None:
        await super().tick()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(0.2)


async def _stops_within(loop: TickTimes, timeout_s: float) -> bool:
    stopping = asyncio.ensure_future(loop.stop(deleted=False))
    done, _ = await asyncio.wait({stopping}, timeout=timeout_s)
    return bool(done)


def test_a_loop_woken_as_it_is_stopped_stops() -> None:
    """A watch event wakes a loop in the instant the operator stops it (SIGTERM stops the fleet
    while Kopf still delivers events). The loop used to wait with asyncio.wait_for, which on
    Python 3.11 returned the wake-up and dropped the cancellation that came with it: the loop
    went on for ever, and the operator never exited."""

    async def scenario() -> bool:
        loop = TickTimes(_services(), {"metadata": {"namespace": "ns", "name": "q", "uid": "u"}})
        loop.start()
        while not loop.ticks:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.01)  # waiting for the next tick
        loop.wake()
        return await _stops_within(loop, 3)  # it cancels in the same turn

    assert asyncio.run(scenario())


def test_a_loop_whose_tick_drops_the_cancellation_stops_after_that_tick() -> None:
    async def scenario() -> tuple[bool, int]:
        loop = DropsCancellation(
            _services(), {"metadata": {"namespace": "ns", "name": "q", "uid": "u"}}
        )
        loop.start()
        while not loop.ticks:
            await asyncio.sleep(0.01)
        return await _stops_within(loop, 3), len(loop.ticks)

    assert asyncio.run(scenario()) == (True, 1)
