"""The dashboard's hub and event stream on fakeredis: one subscription per queue however
many pages, a page that connects mid-stream gets a snapshot then every later event, a page
that falls behind gets a fresh snapshot instead of its backlog, and counts are re-read,
debounced, for all pages at once."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import fakeredis
import pytest

from blueque.aio import AsyncClient
from blueque.dashboard.hub import Hub, Message, QueueFeed
from blueque.dashboard.settings import DashboardSettings
from blueque.dashboard.stream import frames


def _fake(server: fakeredis.FakeServer) -> AsyncClient:
    return AsyncClient(redis=fakeredis.FakeAsyncRedis(server=server, decode_responses=True))


def parse(frame: bytes) -> list[tuple[str, Any]]:
    """(event, data) of each message in a chunk of the stream (comments and retry skipped)."""
    found = []
    for block in frame.decode().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in lines:
            found.append((lines["event"], json.loads(lines["data"])))
    return found


class Page:
    """A page's stream, read in the background into `messages`."""

    def __init__(self, stream: AsyncIterator[bytes]) -> None:
        self.messages: list[tuple[str, Any]] = []
        self.arrived = asyncio.Event()
        self._task = asyncio.create_task(self._read(stream))

    async def _read(self, stream: AsyncIterator[bytes]) -> None:
        async for chunk in stream:
            self.messages += parse(chunk)
            self.arrived.set()

    def events(self) -> list[dict[str, Any]]:
        return [data for kind, data in self.messages if kind == "event"]

    async def until(self, check: Any, timeout_s: float = 5.0) -> None:
        async def wait() -> None:
            while not check():
                self.arrived.clear()
                await self.arrived.wait()

        await asyncio.wait_for(wait(), timeout_s)

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


SETTINGS = DashboardSettings(refresh_s=0.1, debounce_s=0.2, keepalive_s=0.5)


def test_a_page_connecting_mid_stream_misses_nothing() -> None:
    async def scenario() -> None:
        server = fakeredis.FakeServer()
        async with _fake(server) as client:
            queue = client.get_queue("mid")
            await queue.enqueue("before the hub")
            hub = Hub(client, SETTINGS)
            await hub.start()
            try:
                before = [await queue.enqueue(i) for i in range(5)]
                while "mid" not in hub.feeds:
                    await asyncio.sleep(0.01)
                await asyncio.wait_for(hub.feeds["mid"].confirmed.wait(), 5)
                listener = hub.register(None)
                page = Page(frames(hub, listener, SETTINGS.keepalive_s))
                # Events keep coming while the page takes its snapshot.
                after = [await queue.enqueue(i) for i in range(30)]
                await page.until(lambda: after[-1] in [e["task"] for e in page.events()])
                first_kind, snapshot = page.messages[0]
                assert first_kind == "snapshot"
                assert snapshot["queues"] == ["mid"]
                # What the snapshot counted happened before its read; every task enqueued
                # after that came as an event, in order: nothing in between is missing.
                counted = snapshot["states"]["mid"]["stats"]["pending"] - 1 - len(before)
                assert 0 <= counted < len(after)
                seen = [e["task"] for e in page.events() if e["task"] in after]
                assert seen[-(len(after) - counted) :] == after[counted:]
                # The counts come from Redis, re-read: the last state says 36 pending.
                await page.until(
                    lambda: (
                        [d for k, d in page.messages if k == "state"][-1:]
                        and [d for k, d in page.messages if k == "state"][-1]["stats"]["pending"]
                        == 36
                    )
                )
                await page.close()
                assert listener not in hub.listeners
            finally:
                await hub.stop()

    asyncio.run(scenario())


def test_one_subscription_and_debounced_reads_for_many_pages() -> None:
    async def scenario() -> None:
        server = fakeredis.FakeServer()
        probe = fakeredis.FakeAsyncRedis(server=server, decode_responses=True)
        async with _fake(server) as client:
            queue = client.get_queue("many")
            await queue.enqueue(0)
            hub = Hub(client, DashboardSettings(refresh_s=60, debounce_s=0.5, keepalive_s=5))
            await hub.start()
            try:
                pages = [Page(frames(hub, hub.register(["many"]), 5)) for _ in range(10)]
                for page in pages:
                    await page.until(lambda p=page: bool(p.messages))
                channel = queue.keys.events
                numsub = await probe.execute_command("PUBSUB", "SHARDNUMSUB", channel)  # type: ignore[no-untyped-call]
                assert numsub[1] == 1  # one subscription, shared by ten pages
                reads_before = hub.feeds["many"].next_ticket
                ids = [await queue.enqueue(i) for i in range(50)]
                for page in pages:
                    await page.until(lambda p=page: len(p.events()) >= 50)
                await asyncio.sleep(1.2)
                reads = hub.feeds["many"].next_ticket - reads_before
                assert reads <= 4  # fifty events, ten pages: a read at most every 0.5 s
                last = [d for k, d in pages[0].messages if k == "state"][-1]
                assert last["stats"]["pending"] == 1 + len(ids)
                for page in pages:
                    await page.close()
            finally:
                await hub.stop()
                await probe.aclose()

    asyncio.run(scenario())


def test_a_page_that_falls_behind_gets_a_fresh_snapshot_not_the_backlog() -> None:
    async def scenario() -> None:
        server = fakeredis.FakeServer()
        async with _fake(server) as client:
            queue = client.get_queue("slow")
            await queue.enqueue(0)
            settings = DashboardSettings(refresh_s=0.1, debounce_s=0.1, page_buffer=10)
            hub = Hub(client, settings)
            await hub.start()
            try:
                listener = hub.register(None)
                stream = frames(hub, listener, 5)
                assert parse(await anext(stream)) == []  # the retry line
                assert parse(await anext(stream))[0][0] == "snapshot"
                # The page reads nothing while 40 events arrive: more than its buffer.
                ids = [await queue.enqueue(i) for i in range(40)]
                await asyncio.sleep(0.3)
                assert listener.behind and not listener.buffer
                kind, fresh = parse(await anext(stream))[0]
                assert kind == "snapshot"
                assert fresh["states"]["slow"]["stats"]["pending"] == 1 + len(ids)
                # It follows again from there.
                later = await queue.enqueue("later")
                got: list[Any] = []
                while later not in [d.get("task") for k, d in got if k == "event"]:
                    got += parse(await asyncio.wait_for(anext(stream), 5))
                await stream.aclose()
            finally:
                await hub.stop()

    asyncio.run(scenario())


async def _blocked(task: asyncio.Task[Any]) -> None:
    """Lets `task` run until it waits (a few turns: a wait may start a task of its own)."""
    for _ in range(5):
        await asyncio.sleep(0)
    assert not task.done()


def test_a_stream_cancelled_in_the_turn_a_message_wakes_it_ends() -> None:
    """The page's stream waits for its listener's wake-up; a message arrives in the same turn
    as the cancellation (a server stopping, a client gone, while a queue is busy). On Python
    3.11 `asyncio.wait_for` returned the wake-up and dropped the cancellation: the stream went
    on sending to a page that was gone."""

    async def scenario() -> None:
        async with _fake(fakeredis.FakeServer()) as client:
            hub = Hub(client, SETTINGS)
            await hub.start()
            try:
                listener = hub.register(None)
                stream = frames(hub, listener, 60)
                assert parse(await anext(stream)) == []  # the retry line
                assert parse(await anext(stream))[0][0] == "snapshot"

                async def next_frame() -> bytes:
                    return await anext(stream)

                reader = asyncio.create_task(next_frame())
                await _blocked(reader)
                hub.publish(Message("event", None, {"queue": "q", "event": "enqueued"}))
                reader.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await reader
                assert listener not in hub.listeners
            finally:
                await hub.stop()

    asyncio.run(scenario())


def test_a_snapshot_cancelled_in_the_turn_its_subscription_is_confirmed_reads_nothing() -> None:
    async def scenario() -> None:
        async with _fake(fakeredis.FakeServer()) as client:
            feed = QueueFeed(Hub(client, SETTINGS), "q")
            waiting = asyncio.create_task(feed.state_since(0))
            await _blocked(waiting)
            feed.confirmed.set()
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            assert feed.next_ticket == 0  # no state read started

    asyncio.run(scenario())
