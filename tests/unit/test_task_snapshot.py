"""`Task.running`, the worker's quick build of a begun task, is the snapshot `Task(...)` builds."""

from __future__ import annotations

import dataclasses

import pytest

from blueque import Client, Task, TaskState
from blueque.aio import AsyncTask


@pytest.mark.parametrize("kind", [Task, AsyncTask])
def test_running_is_the_snapshot_the_constructor_builds(
    fake_client: Client, kind: type[Task] | type[AsyncTask]
) -> None:
    queue = fake_client.get_queue("snap.q")
    quick = kind.running(queue, "t1", {"a": [1]}, 2, "w1")
    built = kind(
        id="t1",
        queue="snap.q",
        status=TaskState.RUNNING,
        parameters={"a": [1]},
        attempts=2,
        worker="w1",
        _queue=queue,
    )
    assert type(quick) is kind
    assert vars(quick) == vars(built)  # every field, _queue included
    assert quick == built and repr(quick) == repr(built)
    assert quick._bound() is queue
    with pytest.raises(dataclasses.FrozenInstanceError):
        quick.status = TaskState.COMPLETE  # type: ignore[misc]
