"""Task states are a StrEnum that still reads and prints as the protocol's words; outcomes
and begin's answers are checked where they enter Python."""

from __future__ import annotations

import json

import pytest

from blueque import Client, CorruptTaskError, TaskState
from blueque.errors import ProtocolError
from blueque.protocol import Begun
from blueque.states import FINISHED, HELD, LISTABLE, OUTCOMES, as_outcome


def test_states_are_the_protocols_words() -> None:
    assert [s.value for s in TaskState] == [
        "scheduled", "pending", "reserved", "running", "complete", "failed", "cancelled",
        "corrupt",
    ]  # fmt: skip
    # `corrupt` is never stored: only a view's word for a snapshot it could not read.
    stored = set(TaskState) - {TaskState.CORRUPT}
    assert set(LISTABLE) | set(HELD) == stored and not set(LISTABLE) & set(HELD)
    assert {s.value for s in FINISHED} == set(OUTCOMES) == {"complete", "failed", "cancelled"}


def test_a_tasks_status_is_a_state_that_reads_as_its_word(fake_client: Client) -> None:
    queue = fake_client.get_queue("st.q")
    task = queue.get_task(queue.enqueue("x"))
    assert task.status == "pending" and f"{task.status}" == "pending"
    assert type(task.status) is TaskState and task.status is TaskState.PENDING
    assert json.dumps({"state": task.status}) == '{"state": "pending"}'
    assert [t.id for t in queue.tasks(TaskState.PENDING)] == [t.id for t in queue.tasks("pending")]


def test_an_unknown_state_in_redis_is_a_corrupt_task(fake_client: Client) -> None:
    queue = fake_client.get_queue("st.q")
    task_id = queue.enqueue("x")
    fake_client.redis.hset(queue.keys.task(task_id), "state", "exploded")
    with pytest.raises(CorruptTaskError, match="state='exploded'"):
        queue.get_task(task_id)


def test_outcomes_and_begin_answers_are_checked() -> None:
    assert as_outcome("failed") == "failed"
    with pytest.raises(ValueError, match="not an outcome"):
        as_outcome("exploded")
    assert Begun.from_reply(["draining", "q:1"]) == Begun("draining", "q:1")
    with pytest.raises(ProtocolError, match="begin answered"):
        Begun.from_reply(["maybe", "q:1"])
