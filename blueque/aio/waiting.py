"""Waiting for an `asyncio.Event` with a timeout without ever dropping a cancellation.

On Python 3.11, `asyncio.wait_for(event.wait(), timeout)` runs the wait in a task of its own;
when the event is set in the loop turn in which the waiting task is cancelled, that task ends
first and `wait_for` returns its result: the cancellation is lost, and a loop that counts on it
to end goes on (3.12 rebuilt `wait_for` on `asyncio.timeout`). `asyncio.timeout` awaits in the
waiting task itself, so a cancellation that comes with the wake-up is raised; and it turns into
`TimeoutError` only its own cancellation, never one that comes with the timeout (3.11.7's
`Timeout.__aexit__` compares the task's pending cancellations with those it found on entry;
3.11.2's compares them with zero, so there a cancellation someone else dropped earlier is
raised at the timeout instead of False: late, but not lost).

Used by the dashboard's streams and hub and by the operator's loops; the operator imports it
from here (the library never imports the operator).
"""

from __future__ import annotations

import asyncio

__all__ = ["wait_event"]


async def wait_event(event: asyncio.Event, timeout_s: float) -> bool:
    """Waits until `event` is set (returns at once if it is) or `timeout_s` seconds pass;
    returns whether it is set. A cancellation of the caller is always raised, even one that
    comes in the turn the event is set."""
    try:
        async with asyncio.timeout(timeout_s):
            return await event.wait()
    except TimeoutError:
        return event.is_set()  # set in the turn the timeout fired
