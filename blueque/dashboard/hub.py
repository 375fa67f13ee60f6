"""The live core: one event subscription per queue, shared by every open page.

Each queue has a `QueueFeed`: it subscribes to the queue's event channel once (and again
after Redis comes back), forwards each event to the pages that follow the queue, and marks
the queue's state dirty. The state (stats and workers) is re-read from Redis, never added up
from events, at most once per `debounce_s` whatever the number of events and pages. What no
event announces (heartbeat ages, a worker registering, a config change, a new queue) comes
from the shared refresh every `refresh_s`.

A page registers a `Listener` (a bounded buffer) first, then asks for a snapshot: states read
after the registration, once the subscription is confirmed. So an event published after the
snapshot's read is in the buffer, and the page misses nothing; a page that falls further
behind than its buffer gets a fresh snapshot instead of the backlog. Every message is
serialized once, whatever the number of pages.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import redis.exceptions

from blueque.aio import AsyncClient
from blueque.aio.waiting import wait_event
from blueque.connection import redact
from blueque.dashboard import documents
from blueque.dashboard.settings import DashboardSettings
from blueque.errors import BluequeError

log = logging.getLogger("blueque.dashboard")

CONFIRM_WAIT_S = 5.0
MAX_BACKOFF_S = 10.0
YIELD_EVERY = 50  # events read in a row before the pages' writers get a turn
# What one queue's failure may be (Redis down, a corrupt key); anything else is a bug.
FAILURES = (BluequeError, redis.exceptions.RedisError, OSError)


def dumps(document: Any) -> str:
    return json.dumps(document, ensure_ascii=False, default=str, separators=(",", ":"))


async def cancel_all(tasks: Sequence[asyncio.Task[None]]) -> None:
    """Cancels the tasks and waits for them. A cancellation that lands inside a Redis call
    can be swallowed by the client library (the task then waits on, cancelled in name only):
    such a task is cancelled again until it ends."""
    pending = {t for t in tasks if not t.done()}
    for task in pending:
        task.cancel()
    while pending:
        _, pending = await asyncio.wait(pending, timeout=0.5)
        for task in pending:
            task.cancel()
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            log.warning("%s ended with %r", task.get_name(), task.exception())


class Message:
    """One server-sent event, serialized once for every page that gets it."""

    __slots__ = ("data", "frame", "kind", "queue")

    def __init__(self, kind: str, queue: str | None, document: Any) -> None:
        self.kind = kind
        self.queue = queue
        self.data = dumps(document)
        self.frame = f"event: {kind}\ndata: {self.data}\n\n".encode()


EXTRAS = frozenset({"scaling"})
"""Kinds of message only the pages that ask for them get (large, and of one view only)."""


class Listener:
    """One page's registration: the queues it follows (None: all), the extras it wants, and
    its buffer."""

    def __init__(
        self, queues: frozenset[str] | None, limit: int, extras: frozenset[str] = frozenset()
    ) -> None:
        self.queues = queues
        self.extras = extras
        self.limit = limit
        self.buffer: deque[Message] = deque()
        self.behind = False
        """The buffer overflowed: the page gets a fresh snapshot, not the backlog."""
        self.wake = asyncio.Event()
        self.tickets: dict[str, int] = {}
        """Per queue, the number of the first state read that started after registering."""
        self.dropped = 0

    def wants(self, queue: str | None) -> bool:
        return queue is None or self.queues is None or queue in self.queues

    def wants_message(self, message: Message) -> bool:
        if message.kind in EXTRAS:
            return message.kind in self.extras
        return self.wants(message.queue)

    def push(self, message: Message) -> None:
        if self.behind:
            self.dropped += 1
            return
        if len(self.buffer) >= self.limit:
            self.dropped += len(self.buffer) + 1
            self.buffer.clear()
            self.behind = True
        else:
            self.buffer.append(message)
        self.wake.set()

    def take(self) -> list[Message]:
        taken = list(self.buffer)
        self.buffer.clear()
        return taken


class QueueFeed:
    """One queue's subscription, state and shared reads."""

    def __init__(self, hub: Hub, name: str) -> None:
        self.hub = hub
        self.name = name
        self.queue = hub.client.get_queue(name)
        self.confirmed = asyncio.Event()
        self.state: dict[str, Any] | None = None
        self.state_ticket = -1
        self.config: dict[str, Any] | None = None
        self.spark: dict[str, Any] | None = None
        self.events_seen = 0
        self._reads = 0
        self._inflight: tuple[int, asyncio.Future[dict[str, Any]]] | None = None
        self._dirty = asyncio.Event()
        self._last_read = -1e9
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._follow(), name=f"dashboard follow {self.name}"),
            asyncio.create_task(self._refresher(), name=f"dashboard refresh {self.name}"),
        ]

    async def stop(self) -> None:
        await cancel_all(self._tasks)

    @property
    def next_ticket(self) -> int:
        return self._reads

    def mark_dirty(self) -> None:
        self._dirty.set()

    async def _follow(self) -> None:
        backoff_s = 0.5
        while True:
            try:
                async with self.queue.events() as stream:
                    self.confirmed.set()
                    backoff_s = 0.5
                    self.mark_dirty()  # (re)subscribed: what happened meanwhile is re-read
                    while True:
                        event = await stream.next(self.hub.settings.keepalive_s)
                        if event is None:
                            continue
                        self.events_seen += 1
                        self.hub.publish(Message("event", self.name, {"queue": self.name, **event}))
                        self.mark_dirty()
                        if self.events_seen % YIELD_EVERY == 0:
                            # Reading buffered messages never waits: let the pages' writers
                            # drain their buffers now and then, or a burst overflows them.
                            await asyncio.sleep(0)
            except FAILURES as exc:
                self.confirmed.clear()
                log.warning("queue %s: events: %s (retrying)", self.name, redact(str(exc)))
                self._publish_error(str(exc))
                await asyncio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, MAX_BACKOFF_S)

    async def _refresher(self) -> None:
        while True:
            await self._dirty.wait()
            wait_s = self._last_read + self.hub.settings.debounce_s - time.monotonic()
            if wait_s > 0:
                await asyncio.sleep(wait_s)
            self._dirty.clear()
            await self.read()

    async def read(self) -> dict[str, Any]:
        """Reads the queue's state now (shared by whoever asks while it runs) and sends it
        to the pages."""
        ticket = self._reads
        self._reads += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._inflight = (ticket, future)
        self._last_read = time.monotonic()
        try:
            state = await documents.queue_state(self.queue, self.hub.settings.max_value_chars)
            state["error"] = None if self.confirmed.is_set() else "not subscribed to events"
        except FAILURES as exc:
            state = self._error_state(str(exc))
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: nobody else may be waiting
            raise
        if ticket > self.state_ticket:
            self.state, self.state_ticket = state, ticket
        self.hub.publish(Message("state", self.name, state))
        future.set_result(state)
        return state

    async def state_since(self, ticket: int) -> dict[str, Any]:
        """A state read that started at or after read number `ticket`."""
        await wait_event(self.confirmed, CONFIRM_WAIT_S)  # unconfirmed after it: read anyway
        if self.state is not None and self.state_ticket >= ticket:
            return self.state
        inflight = self._inflight
        if inflight is not None and inflight[0] >= ticket and not inflight[1].done():
            return await asyncio.shield(inflight[1])
        return await self.read()

    def _error_state(self, message: str) -> dict[str, Any]:
        last = self.state or {}
        return {
            "queue": self.name,
            "stats": last.get("stats"),
            "workers": last.get("workers", []),
            "error": redact(message),
        }

    def _publish_error(self, message: str) -> None:
        self.state = self._error_state(message)
        self.hub.publish(Message("state", self.name, self.state))

    async def read_config(self) -> None:
        try:
            config = (await self.queue.config()).as_dict()
        except FAILURES as exc:
            config = {"error": redact(str(exc))}
        if config != self.config:
            self.config = config
            self.hub.publish(Message("config", self.name, {"queue": self.name, "config": config}))

    async def read_spark(self) -> None:
        try:
            self.spark = await documents.sparks(self.queue, int(time.time() * 1000))
        except FAILURES as exc:
            log.info("queue %s: sparklines: %s", self.name, redact(str(exc)))
            return
        self.hub.publish(Message("spark", self.name, self.spark))


Extra = Callable[[], Awaitable[dict[str, Any]]]


class Hub:
    """Every queue's feed, the pages listening, and the shared refresh."""

    def __init__(
        self, client: AsyncClient, settings: DashboardSettings, names: Sequence[str] = ()
    ) -> None:
        self.client = client
        self.settings = settings
        self.fixed = tuple(names)
        """Only these queues (none: every registered queue, new ones as they appear)."""
        self.feeds: dict[str, QueueFeed] = {}
        self.listeners: set[Listener] = set()
        self.extras: dict[str, Any] = {}
        """Documents other parts keep current (the scaling view), sent in every snapshot."""
        self.published = 0
        self._task: asyncio.Task[None] | None = None
        self._discovered = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._refresh_loop(), name="dashboard refresh")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_all([self._task])
        for feed in list(self.feeds.values()):
            await feed.stop()

    # -- pages ---------------------------------------------------------------------------------

    def register(self, queues: Sequence[str] | None, extras: Sequence[str] = ()) -> Listener:
        listener = Listener(
            None if queues is None else frozenset(queues),
            self.settings.page_buffer,
            frozenset(extras) & EXTRAS,
        )
        self._renew(listener)
        self.listeners.add(listener)
        return listener

    def _renew(self, listener: Listener) -> None:
        listener.tickets = {name: feed.next_ticket for name, feed in self.feeds.items()}

    def unregister(self, listener: Listener) -> None:
        self.listeners.discard(listener)

    def publish(self, message: Message) -> None:
        self.published += 1
        for listener in list(self.listeners):
            if listener.wants_message(message):
                listener.push(message)

    def publish_extra(self, kind: str, document: dict[str, Any]) -> None:
        self.extras[kind] = document
        self.publish(Message(kind, None, document))

    async def snapshot(self, listener: Listener) -> Message:
        """Everything the listener's page shows, read after it registered (call again after
        `listener.behind`: it starts over)."""
        if listener.behind:
            listener.buffer.clear()
            self._renew(listener)
            listener.behind = False
        await wait_event(self._discovered, CONFIRM_WAIT_S)
        names = [n for n in sorted(self.feeds) if listener.wants(n)]
        feeds = [self.feeds[n] for n in names]
        states = await asyncio.gather(
            *(f.state_since(listener.tickets.get(f.name, 0)) for f in feeds)
        )
        document = {
            "queues": sorted(self.feeds),
            "server_ms": int(time.time() * 1000),
            "states": dict(zip(names, states, strict=True)),
            "config": {f.name: f.config for f in feeds if f.config is not None},
            "spark": {f.name: f.spark for f in feeds if f.spark is not None},
            **{kind: doc for kind, doc in self.extras.items() if kind in listener.extras},
        }
        return Message("snapshot", None, document)

    # -- the shared refresh --------------------------------------------------------------------

    async def _refresh_loop(self) -> None:
        last_spark = -1e9
        while True:
            await self._discover()
            self._discovered.set()
            sparks = time.monotonic() - last_spark >= self.settings.spark_refresh_s
            if sparks:
                last_spark = time.monotonic()
            for feed in list(self.feeds.values()):
                feed.mark_dirty()
                await feed.read_config()
                if sparks:
                    await feed.read_spark()
            await asyncio.sleep(self.settings.refresh_s)

    async def _discover(self) -> None:
        try:
            names = await documents.queue_names(self.client, self.fixed)
        except FAILURES as exc:
            log.warning("listing queues: %s", redact(str(exc)))
            return
        new = [n for n in names if n not in self.feeds]
        for name in new:
            feed = self.feeds[name] = QueueFeed(self, name)
            feed.start()
        if new:
            self.publish(Message("queues", None, {"queues": sorted(self.feeds)}))
