"""What happened, with timestamps: the Deployment's replicas, each pod's life, the queue's demand.

Two watches (the Deployment, the worker pods) and a sampler run in threads for a whole setup.
A pod picked for removal is seen when its deletionTimestamp appears; at that moment the
recorder reads the worker's in-progress list in Redis: a task there means a busy worker was
picked (the worker id is the pod name). The read comes a few milliseconds after the
ReplicaSet's choice: a worker that finished its task in between counts as idle, one that
claimed a task in between as busy (it is then stopped with that task, which is what counts).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from blueque import Client
from blueque.keys import queue_keys
from devtools.localkube.api import ApiClient, Json
from devtools.localkube.errors import ApiError

__all__ = ["Recorder", "Removal", "ReplicaChange", "Sample"]


@dataclass(frozen=True)
class Sample:
    t: float
    pending: int
    reserved: int
    running: int
    replicas: int
    pods: int
    """Worker pods not being deleted."""
    terminating: int


@dataclass(frozen=True)
class ReplicaChange:
    t: float
    replicas: int


@dataclass(frozen=True)
class Removal:
    t: float
    pod: str
    busy: bool
    task_id: str | None


@dataclass
class _PodState:
    created: float
    deleting: float | None = None


@dataclass
class Recorder:
    """Records one setup: start() before its objects exist, close() after its last trial."""

    admin: ApiClient
    client: Client
    namespace: str
    deployment: str
    queue: str
    sample_every_s: float = 0.25
    samples: list[Sample] = field(default_factory=list)
    changes: list[ReplicaChange] = field(default_factory=list)
    removals: list[Removal] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._pods: dict[str, _PodState] = {}
        self._replicas = 0
        self._threads: list[threading.Thread] = []
        self._keys = queue_keys(self.queue)

    def start(self) -> Recorder:
        for target in (self._watch_deployment, self._watch_pods, self._sample):
            thread = threading.Thread(target=self._guard(target), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)

    @property
    def replicas(self) -> int:
        return self._replicas

    def live_pods(self) -> int:
        with self._lock:
            return len(self._pods)

    def _guard(self, target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            while not self._stop.is_set():
                try:
                    target()
                except Exception as exc:  # a watch may drop; note it and go on
                    self.errors.append(f"{getattr(target, '__name__', target)}: {exc!r}")
                    time.sleep(0.5)

        return run

    def _watch_deployment(self) -> None:
        path = f"/apis/apps/v1/namespaces/{self.namespace}/deployments"
        query = {"fieldSelector": f"metadata.name={self.deployment}"}
        listed = self.admin.get(path, query)
        for item in listed["items"]:
            self._replicas_seen(item)
        version = listed["metadata"]["resourceVersion"]
        while not self._stop.is_set():
            stream = self.admin.open_watch(
                path, resource_version=version, timeout_s=30, query=query
            )
            with stream:
                for event in stream:
                    if self._stop.is_set():
                        return
                    obj = event["object"]
                    if event["type"] == "ERROR":
                        return  # too old a version: list again
                    version = obj["metadata"]["resourceVersion"]
                    if event["type"] != "DELETED":
                        self._replicas_seen(obj)

    def _replicas_seen(self, deployment: Json) -> None:
        replicas = int(deployment["spec"].get("replicas") or 0)
        if replicas != self._replicas or not self.changes:
            self._replicas = replicas
            self.changes.append(ReplicaChange(time.time(), replicas))

    def _watch_pods(self) -> None:
        path = f"/api/v1/namespaces/{self.namespace}/pods"
        query = {"labelSelector": "app.kubernetes.io/name=blueque-worker"}
        listed = self.admin.get(path, query)
        with self._lock:
            self._pods.clear()
        for item in listed["items"]:
            self._pod_seen("ADDED", item)
        version = listed["metadata"]["resourceVersion"]
        while not self._stop.is_set():
            stream = self.admin.open_watch(
                path, resource_version=version, timeout_s=30, query=query
            )
            with stream:
                for event in stream:
                    if self._stop.is_set():
                        return
                    if event["type"] == "ERROR":
                        return
                    version = event["object"]["metadata"]["resourceVersion"]
                    self._pod_seen(event["type"], event["object"])

    def _pod_seen(self, kind: str, pod: Json) -> None:
        name = pod["metadata"]["name"]
        now = time.time()
        with self._lock:
            if kind == "DELETED":
                self._pods.pop(name, None)
                return
            state = self._pods.setdefault(name, _PodState(created=now))
            newly_deleting = "deletionTimestamp" in pod["metadata"] and state.deleting is None
            if newly_deleting:
                state.deleting = now
        if newly_deleting:
            held = self.client.redis.lrange(self._keys.worker_tasks(name), 0, -1)
            task = held[0] if held else None
            task_id = task.decode() if isinstance(task, bytes) else task
            self.removals.append(Removal(now, name, bool(held), task_id))

    def _sample(self) -> None:
        queue = self.client.get_queue(self.queue)
        while not self._stop.wait(self.sample_every_s):
            stats = queue.stats()
            with self._lock:
                live = sum(1 for p in self._pods.values() if p.deleting is None)
                terminating = len(self._pods) - live
            self.samples.append(
                Sample(
                    time.time(),
                    stats.pending,
                    stats.reserved,
                    stats.running,
                    self._replicas,
                    live,
                    terminating,
                )
            )


def deployment_exists(admin: ApiClient, namespace: str, name: str) -> bool:
    try:
        admin.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}")
    except ApiError as exc:
        if exc.status == 404:
            return False
        raise
    return True
