"""`wait_event`: whether an event was set within a timeout, and a cancellation is never lost,
whatever else happens in the turn it comes in (the event set, the timeout firing)."""

from __future__ import annotations

import asyncio
import time

import pytest

from blueque.aio.waiting import wait_event


def test_it_says_whether_the_event_was_set() -> None:
    async def scenario() -> tuple[bool, bool, bool, float]:
        event = asyncio.Event()
        started = time.monotonic()
        timed_out = await wait_event(event, 0.05)
        waited_s = time.monotonic() - started
        setter = asyncio.get_running_loop().call_later(0.01, event.set)
        woken = await wait_event(event, 10)
        setter.cancel()
        return timed_out, woken, await wait_event(event, 0), waited_s

    timed_out, woken, already, waited_s = asyncio.run(scenario())
    assert (timed_out, woken, already) == (False, True, True)
    assert waited_s >= 0.05


async def _waiting(event: asyncio.Event, timeout_s: float) -> asyncio.Task[bool]:
    """A task in `wait_event(event, timeout_s)`, waiting."""
    task = asyncio.create_task(wait_event(event, timeout_s))
    for _ in range(3):
        await asyncio.sleep(0)
    assert not task.done()
    return task


def test_a_cancellation_in_the_turn_the_event_is_set_is_raised() -> None:
    """The race `asyncio.wait_for` loses on Python 3.11: it returns True and the cancellation
    is gone."""

    async def scenario() -> None:
        event = asyncio.Event()
        task = await _waiting(event, 10)
        event.set()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())


def test_a_cancellation_in_the_turn_the_timeout_fires_is_raised() -> None:
    async def scenario() -> None:
        event = asyncio.Event()
        task = asyncio.create_task(wait_event(event, 0))  # its timeout fires in the next turn
        await asyncio.sleep(0)  # the task starts waiting
        task.cancel()  # cancelled in the turn its timeout fires
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())


def test_a_timeout_around_it_is_not_taken_for_its_own() -> None:
    async def scenario() -> None:
        event = asyncio.Event()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.01):
                await wait_event(event, 10)
                pytest.fail("the outer timeout was returned as False")

    asyncio.run(scenario())
