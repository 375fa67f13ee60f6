"""The words of the protocol: the states a task is in, and the outcomes a worker records.

`TaskState` is a `StrEnum`: a state read from Redis is checked once, when a task is parsed,
and a member still compares equal to its word (`task.status == "complete"`) and prints as
it (JSON, f-strings). An `Outcome` is a `Literal`: the word a worker hands to `finish`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal, get_args

from blueque.errors import InvalidArgumentError


class TaskState(StrEnum):
    SCHEDULED = "scheduled"
    """In the scheduled set, due later."""
    PENDING = "pending"
    """In the pending list, waiting for a worker."""
    RESERVED = "reserved"
    """Claimed into a worker's list, not begun yet (the task's hash still says pending)."""
    RUNNING = "running"
    """Begun by the worker whose list holds it."""
    COMPLETE = "complete"
    FAILED = "failed"
    CANCELLED = "cancelled"
    CORRUPT = "corrupt"
    """Never stored: a snapshot in a list or view whose hash could not be read (see
    `Task.corrupt`)."""


Outcome = Literal["complete", "failed", "cancelled"]
OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)


def as_outcome(word: str) -> Outcome:
    """`word` as an Outcome; `InvalidArgumentError` (a ValueError) if it is none."""
    if word not in OUTCOMES:
        raise InvalidArgumentError(f"not an outcome: {word!r} (one of {', '.join(OUTCOMES)})")
    return word


FINISHED = frozenset({TaskState.COMPLETE, TaskState.FAILED, TaskState.CANCELLED})
# States whose tasks the queue keeps in one list or set of its own (listable, purgeable);
# reserved and running tasks are in their workers' lists.
LISTABLE = (
    TaskState.PENDING,
    TaskState.SCHEDULED,
    TaskState.COMPLETE,
    TaskState.FAILED,
    TaskState.CANCELLED,
)
HELD = (TaskState.RESERVED, TaskState.RUNNING)
