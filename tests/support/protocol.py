"""Driving the protocol by hand, as a worker would: claim (BLMOVE), begin, finish."""

from __future__ import annotations

import time
from typing import Any

from blueque import Queue
from blueque.events import EventStream


def claim(queue: Queue, worker_id: str, timeout_s: float = 1.0) -> str | None:
    """Registers the worker if it is not (begin refuses an unregistered worker), then moves
    the head of pending into its list."""
    if not queue.client.redis.sismember(queue.keys.workers, worker_id):
        queue.transitions.heartbeat(worker_id, 60_000, {})
    return queue.transitions.claim(worker_id, timeout_s)


def run_one(queue: Queue, worker_id: str, result: str = '"ok"') -> str:
    """Claims, begins and completes the task at the head of pending; returns its id."""
    task_id = claim(queue, worker_id)
    assert task_id is not None, "nothing to claim"
    begun = queue.transitions.begin(worker_id, task_id, 1)
    assert begun.status == "ok", begun
    assert queue.transitions.finish(worker_id, task_id, begun.attempt, "complete", result) == (
        "complete"
    )
    return task_id


def collect(stream: EventStream, count: int, timeout_s: float = 5.0) -> list[dict[str, Any]]:
    """The next `count` events (fewer if the timeout passes first)."""
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    while len(events) < count:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        event = stream.next(timeout=remaining)
        if event is not None:
            events.append(event)
    return events


def names(events: list[dict[str, Any]]) -> list[str]:
    return [e["event"] for e in events]
