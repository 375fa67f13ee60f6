"""What a measurement waits on, recorded with the time it arrived: a Kubernetes watch and a
queue's event stream, each read by a thread of its own from before the trial starts, so no
arrival is missed between the action and the wait."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from blueque import Queue
from devtools.errors import WaitTimeoutError
from devtools.localkube.api import ApiClient, Json, WatchStream

_WATCH_TIMEOUT_S = 300.0
_RETRY_S = 0.2


@dataclass(frozen=True)
class Arrival:
    at: float
    """time.time() when the reader got it."""
    kind: str
    """The watch event's type, or the queue event's name."""
    data: Json


class _Log:
    """Arrivals in order, with a wait for the first one that matches, after a time."""

    def __init__(self) -> None:
        self.arrivals: list[Arrival] = []
        self._changed = threading.Condition()

    def add(self, arrival: Arrival) -> None:
        with self._changed:
            self.arrivals.append(arrival)
            self._changed.notify_all()

    def wait(
        self, match: Callable[[Arrival], bool], *, after: float, timeout_s: float, what: str
    ) -> Arrival:
        """The first arrival at or after `after` (time.time()) that `match`es."""
        deadline = time.monotonic() + timeout_s
        checked = 0
        with self._changed:
            while True:
                for arrival in self.arrivals[checked:]:
                    if arrival.at >= after and match(arrival):
                        return arrival
                checked = len(self.arrivals)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise WaitTimeoutError(f"timed out after {timeout_s} s waiting for {what}")
                self._changed.wait(left)


class WatchRecorder(_Log):
    """Every event of one collection's watch (`query`: a field or label selector)."""

    def __init__(self, api: ApiClient, path: str, query: dict[str, str] | None = None) -> None:
        super().__init__()
        self._api, self._path, self._query = api, path, dict(query or {})
        self._stopping = threading.Event()
        self._stream: WatchStream | None = None
        listed = api.get(path, self._query)
        self._version: str = listed["metadata"]["resourceVersion"]
        self._thread = threading.Thread(target=self._run, name=f"watch {path}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._stream = self._api.open_watch(
                    self._path,
                    resource_version=self._version,
                    timeout_s=_WATCH_TIMEOUT_S,
                    query={**self._query, "allowWatchBookmarks": "true"},
                )
                with self._stream:
                    for event in self._stream:
                        obj = event["object"]
                        if event["type"] == "ERROR":
                            raise RuntimeError(f"watch of {self._path}: {obj}")
                        self._version = obj["metadata"].get("resourceVersion", self._version)
                        if event["type"] != "BOOKMARK":
                            self.add(Arrival(time.time(), event["type"], obj))
            except Exception:
                if self._stopping.is_set():
                    return
                # A dropped watch resumes from the last version (an expired version fails
                # the next wait, loudly, by its timeout).
                self._stopping.wait(_RETRY_S)

    def close(self) -> None:
        self._stopping.set()
        if self._stream is not None:
            self._stream.close()
        self._thread.join(10)


class EventRecorder(_Log):
    """Every event of one queue (`Queue.events()`), subscribed before the constructor returns."""

    def __init__(self, queue: Queue) -> None:
        super().__init__()
        self._stopping = threading.Event()
        self._subscribed = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(queue,), name=f"events {queue.name}", daemon=True
        )
        self._thread.start()
        if not self._subscribed.wait(10):
            raise WaitTimeoutError(f"no subscription to the events of {queue.name}")
        if self._failure is not None:
            raise RuntimeError(f"cannot subscribe to {queue.name}: {self._failure!r}")

    def _run(self, queue: Queue) -> None:
        try:
            with queue.events() as events:
                self._subscribed.set()
                while not self._stopping.is_set():
                    event: dict[str, Any] | None = events.next(0.2)
                    if event is not None:
                        self.add(Arrival(time.time(), str(event.get("event")), event))
        except BaseException as exc:
            self._failure = exc
            self._subscribed.set()

    def close(self) -> None:
        self._stopping.set()
        self._thread.join(10)
        if self._failure is not None:
            raise RuntimeError(f"the event stream failed: {self._failure!r}")


@contextlib.contextmanager
def watching(
    api: ApiClient, path: str, query: dict[str, str] | None = None
) -> Iterator[WatchRecorder]:
    recorder = WatchRecorder(api, path, query)
    try:
        yield recorder
    finally:
        recorder.close()
