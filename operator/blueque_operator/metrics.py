"""The operator's Prometheus metrics: one series set per BlueQueue, on a registry of its own.

A registry of its own (not prometheus_client's global one) keeps the exposition to what this
module defines plus the process's own `process_*` / `python_*` collectors, and lets tests run
several operators in one process. Every per-queue series carries the labels `namespace`,
`bluequeue` and `queue`; `forget()` drops a deleted BlueQueue's series so they stop being
exported (a renamed queue is a new key: forget the old one). The counters of a key are created
at zero when the key is first seen, so `rate()` sees their first increment.

The controller calls this from the event loop; prometheus_client is thread-safe, and the HTTP
endpoint (`serve`) answers from a thread of its own.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Literal, NamedTuple
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
)

PREFIX = "blueque"
LABELS = ("namespace", "bluequeue", "queue")
TICK_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""A tick is one Redis round trip (about a millisecond) plus the API writes it decides on."""

Direction = Literal["up", "down"]
DIRECTIONS: tuple[Direction, ...] = ("up", "down")


class QueueKey(NamedTuple):
    """The label values of one BlueQueue's series."""

    namespace: str
    bluequeue: str
    queue: str


Key = tuple[str, str, str]
"""A `QueueKey`, or any (namespace, bluequeue, queue) tuple."""


class MetricsServer:
    """The running HTTP endpoint; `close()` stops it."""

    def __init__(self, server: WSGIServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread
        self.port: int = server.server_port

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


class Metrics:
    """Every metric the operator exports."""

    def __init__(
        self, registry: CollectorRegistry | None = None, *, process_metrics: bool = True
    ) -> None:
        """`process_metrics` adds the process's CPU, memory, file descriptors and garbage
        collector to the registry (the collectors prometheus_client registers globally)."""
        self.registry = registry or CollectorRegistry()
        if process_metrics:
            for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
                self.registry.register(collector)
        r = self.registry

        def gauge(name: str, doc: str) -> Gauge:
            return Gauge(f"{PREFIX}_{name}", doc, LABELS, registry=r)

        self.pending = gauge("pending_tasks", "Tasks waiting in the queue's pending list.")
        self.running = gauge(
            "running_tasks", "Tasks reserved or running on this BlueQueue's workers."
        )
        self.scheduled = gauge("scheduled_tasks", "Tasks scheduled for later.")
        self.desired_replicas = gauge(
            "desired_replicas", "Worker replicas the scaling policy asks for."
        )
        self.replicas = gauge("replicas", "Worker replicas of the Deployment (its status).")
        self.scale_events = Counter(
            f"{PREFIX}_scale_events_total",
            "Changes of the worker Deployment's replicas, by direction.",
            (*LABELS, "direction"),
            registry=r,
        )
        self.reaped_tasks = Counter(
            f"{PREFIX}_reaped_tasks_total",
            "Tasks requeued (or failed at max attempts) because their worker's pod died.",
            LABELS,
            registry=r,
        )
        self.redis_errors = Counter(
            f"{PREFIX}_redis_errors_total",
            "Ticks or calls that failed because Redis was unreachable, slow or refused.",
            LABELS,
            registry=r,
        )
        self.tick_duration = Histogram(
            f"{PREFIX}_tick_duration_seconds",
            "Duration of one tick (read Redis, decide, write) of a BlueQueue.",
            LABELS,
            buckets=TICK_BUCKETS_S,
            registry=r,
        )
        self.leader = Gauge(
            f"{PREFIX}_leader",
            "1 while this operator replica holds the leader Lease (and acts), else 0.",
            registry=r,
        )
        self._keys: set[Key] = set()

    def _seen(self, key: Key) -> None:
        if key in self._keys:
            return
        self._keys.add(key)
        for direction in DIRECTIONS:
            self.scale_events.labels(*key, direction)
        self.reaped_tasks.labels(*key)
        self.redis_errors.labels(*key)

    def observe_tick(
        self,
        key: Key,
        duration_s: float,
        *,
        pending: int | None = None,
        running: int | None = None,
        scheduled: int | None = None,
        desired_replicas: int | None = None,
        replicas: int | None = None,
    ) -> None:
        """Records one tick; the counts left None (e.g. Redis could not be read) keep their
        last value."""
        self._seen(key)
        self.tick_duration.labels(*key).observe(duration_s)
        for gauge, value in (
            (self.pending, pending),
            (self.running, running),
            (self.scheduled, scheduled),
            (self.desired_replicas, desired_replicas),
            (self.replicas, replicas),
        ):
            if value is not None:
                gauge.labels(*key).set(value)

    def scaled(self, key: Key, direction: Direction) -> None:
        """One change of the Deployment's replicas."""
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be 'up' or 'down', not {direction!r}")
        self._seen(key)
        self.scale_events.labels(*key, direction).inc()

    def reaped(self, key: Key, tasks: int = 1) -> None:
        """`tasks` tasks given back (or failed) because their worker died."""
        self._seen(key)
        self.reaped_tasks.labels(*key).inc(tasks)

    def redis_error(self, key: Key) -> None:
        self._seen(key)
        self.redis_errors.labels(*key).inc()

    def set_leader(self, leading: bool) -> None:
        """Fits `LeaderElector(on_change=...)`."""
        self.leader.set(1 if leading else 0)

    def forget(self, key: Key) -> None:
        """Drops every series of `key` (its BlueQueue was deleted, or its queue renamed)."""
        self._keys.discard(key)
        for metric in (
            self.pending,
            self.running,
            self.scheduled,
            self.desired_replicas,
            self.replicas,
            self.reaped_tasks,
            self.redis_errors,
            self.tick_duration,
        ):
            with contextlib.suppress(KeyError):  # (older prometheus_client: never created)
                metric.remove(*key)
        for direction in DIRECTIONS:
            with contextlib.suppress(KeyError):
                self.scale_events.remove(*key, direction)

    def serve(self, port: int, addr: str = "0.0.0.0") -> MetricsServer:
        """Serves `/metrics` on `addr:port` from a daemon thread (port 0: any free port, see
        `MetricsServer.port`)."""
        server, thread = start_http_server(port, addr, registry=self.registry)
        return MetricsServer(server, thread)
