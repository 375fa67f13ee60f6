"""The asyncio client offers the sync client's calls, with the same arguments, awaited; and
runs the same steps (checked here on fakeredis; tests/integration/test_parity.py runs them on
real servers)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator

import fakeredis
import pytest

import blueque
from blueque import Client, Queue, Task, TaskNotFoundError
from blueque.aio import AsyncClient, AsyncQueue, AsyncTask

# What only one side has, on purpose: the worker's sync handle on the transitions.
ONLY_SYNC = {"transitions", "subscribers"}


def _public(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in inspect.getmembers(cls, callable)
        if not name.startswith("_") and name not in ONLY_SYNC and not isinstance(member, type)
    }


@pytest.mark.parametrize(
    ("sync", "aio"), [(Client, AsyncClient), (Queue, AsyncQueue), (Task, AsyncTask)]
)
def test_the_same_calls_with_the_same_arguments(sync: type, aio: type) -> None:
    sync_calls, async_calls = _public(sync), _public(aio)
    assert sorted(sync_calls) == sorted(async_calls)
    for name, signature in sync_calls.items():
        theirs = async_calls[name]
        assert list(signature.parameters.values()) == list(theirs.parameters.values()), name
        sync_io = inspect.iscoroutinefunction(getattr(sync, name))
        assert not sync_io, name
    awaited = {n for n in async_calls if inspect.iscoroutinefunction(getattr(aio, n))}
    pure = {"get_queue", "events", "from_hash", "unreadable", "running"}
    assert awaited == set(async_calls) - pure
    mine, theirs = inspect.signature(sync), inspect.signature(aio)  # the constructors
    assert [(p.name, p.kind, p.default) for p in mine.parameters.values()] == [
        (p.name, p.kind, p.default) for p in theirs.parameters.values()
    ]


def test_the_async_names_are_re_exported_lazily() -> None:
    assert (blueque.AsyncClient, blueque.AsyncQueue, blueque.AsyncTask) == (
        AsyncClient,
        AsyncQueue,
        AsyncTask,
    )
    with pytest.raises(AttributeError):
        getattr(blueque, "NoSuchThing")  # noqa: B009 (the module's __getattr__ under test)


@pytest.fixture
def server() -> Iterator[fakeredis.FakeServer]:
    yield fakeredis.FakeServer()


def test_one_protocol_two_clients_on_fakeredis(server: fakeredis.FakeServer) -> None:
    sync = Client(redis=fakeredis.FakeRedis(server=server, decode_responses=True))

    async def scenario() -> None:
        fake = fakeredis.FakeAsyncRedis(server=server, decode_responses=True)
        async with AsyncClient(redis=fake) as client:
            queue = client.get_queue("unit.q")
            task_id = await queue.enqueue({"n": 1})
            task = await client.get_task(task_id)
            assert isinstance(task, AsyncTask)
            assert (task.status, task.parameters) == ("pending", {"n": 1})
            assert sync.get_task(task_id).parameters == {"n": 1}  # the same keys
            assert (await queue.stats()).pending == 1
            assert (await queue.claim_owner("uid", 10)).acquired
            await task.delete()
            with pytest.raises(TaskNotFoundError):
                await task.refresh()
            assert await client.queues() == ["unit.q"]

    try:
        asyncio.run(scenario())
    finally:
        sync.close()
