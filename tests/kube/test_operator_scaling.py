"""Scaling from the queue's real demand: up at once, down only by draining idle workers."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from blueque import Client
from devtools.localkube import ApiClient
from devtools.operator_runs import Operators
from devtools.podrunner import PodRunner
from devtools.processes import wait_until
from tests.kube.operator_support import (
    apply_bluequeue,
    bluequeue,
    condition,
    live_pod_names,
    replicas,
    wait_condition,
    wait_reason,
)

pytestmark = pytest.mark.kube


class PodDeletions:
    """Records which pods went, and when, from a watch (in a thread) for the whole test."""

    def __init__(self, admin: ApiClient, namespace: str) -> None:
        self.deleted: dict[str, float] = {}
        self._admin, self._namespace = admin, namespace
        self._stop = threading.Event()
        listed = admin.get(f"/api/v1/namespaces/{namespace}/pods")
        self._version = listed["metadata"]["resourceVersion"]
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            for event in self._admin.watch(
                f"/api/v1/namespaces/{self._namespace}/pods",
                resource_version=self._version,
                timeout_s=2,
            ):
                obj = event["object"]
                self._version = obj["metadata"].get("resourceVersion", self._version)
                if event["type"] == "DELETED":
                    self.deleted.setdefault(obj["metadata"]["name"], time.time())

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)


def _start(
    admin: ApiClient, ns: str, runs: Operators, redis_url: str, name: str, **scaling: object
) -> None:
    runs.start([ns], lease_namespace=ns)
    apply_bluequeue(admin, ns, bluequeue(name, redis_url, scaling=dict(scaling)))


def test_a_burst_scales_up_at_once_busy_workers_hold_replicas_then_zero_then_one(
    kube_admin: ApiClient,
    kube_namespace: str,
    operator_runs: Operators,
    pod_runner: PodRunner,
    redis_url: str,
    tmp_path: Path,
) -> None:
    ns = kube_namespace
    _start(kube_admin, ns, operator_runs, redis_url, "burst", maxReplicas=3)
    release = tmp_path / "release"
    with Client(redis_url) as client:
        queue = client.get_queue("burst")
        ids = queue.enqueue_many([{"hold": str(release)}] * 5)
        wait_until(lambda: replicas(kube_admin, ns, "burst") == 3, 10, what="3 replicas")
        wait_until(lambda: queue.stats().running == 3, 30, what="3 tasks running")
        time.sleep(3)  # well past scaleDownDelaySeconds: busy workers keep every replica
        assert replicas(kube_admin, ns, "burst") == 3
        assert len(live_pod_names(kube_admin, ns, "burst")) == 3

        release.touch()
        wait_until(
            lambda: all(client.get_task(i).status == "complete" for i in ids), 30, what="done"
        )
        wait_until(lambda: replicas(kube_admin, ns, "burst") == 0, 20, what="scale to zero")
        wait_until(lambda: not live_pod_names(kube_admin, ns, "burst"), 20, what="no pods")
        assert all(client.get_task(i).attempts == 1 for i in ids)

        (late,) = queue.enqueue_many([{"echo": "again"}])
        wait_until(lambda: replicas(kube_admin, ns, "burst") == 1, 10, what="back to one")
        wait_until(lambda: client.get_task(late).status == "complete", 30, what="the late task")
    wait_reason(kube_admin, ns, "burst", "ScaledUp")
    wait_reason(kube_admin, ns, "burst", "ScaledDown")


def test_scale_down_removes_only_idle_pods_even_as_tasks_keep_arriving(
    kube_admin: ApiClient,
    kube_namespace: str,
    operator_runs: Operators,
    pod_runner: PodRunner,
    redis_url: str,
    tmp_path: Path,
) -> None:
    ns = kube_namespace
    _start(kube_admin, ns, operator_runs, redis_url, "mixed", maxReplicas=3)
    deletions = PodDeletions(kube_admin, ns)
    try:
        with Client(redis_url) as client:
            queue = client.get_queue("mixed")
            holds = [tmp_path / f"release-{i}" for i in range(3)]
            ids = [queue.enqueue({"hold": str(p)}) for p in holds]
            wait_until(lambda: queue.stats().running == 3, 30, what="3 busy workers")
            busy = {client.get_task(i).worker: i for i in ids}
            long_task = ids[0]
            long_pod = client.get_task(long_task).worker
            holds[1].touch()
            holds[2].touch()
            # Short tasks keep arriving while the operator drains and removes idle workers.
            extra: list[str] = []
            deadline = time.monotonic() + 6
            while time.monotonic() < deadline:
                extra += queue.enqueue_many([{"echo": len(extra)}])
                time.sleep(0.7)
            wait_until(
                lambda: all(client.get_task(i).status == "complete" for i in extra + ids[1:]),
                30,
                what="the short tasks",
            )
            wait_until(lambda: replicas(kube_admin, ns, "mixed") == 1, 30, what="down to one")
            wait_until(
                lambda: live_pod_names(kube_admin, ns, "mixed") == {long_pod}, 30, what="1 pod"
            )
            assert client.get_task(long_task).status == "running"
            assert long_pod not in deletions.deleted
            holds[0].touch()
            wait_until(lambda: client.get_task(long_task).status == "complete", 20, what="done")
            tasks = [client.get_task(i) for i in ids + extra]
    finally:
        deletions.close()
    assert {t.attempts for t in tasks} == {1}, "a task lost its worker"
    # Every removed pod was idle: no task ever ran on a pod after it was deleted.
    for task in tasks:
        gone_at = deletions.deleted.get(task.worker or "")
        if gone_at is not None:
            assert task.finished_at is not None and task.finished_at.timestamp() <= gone_at
    assert len(busy) == 3


def test_a_busy_pod_that_is_not_ready_blocks_the_scale_down_and_is_never_removed(
    kube_admin: ApiClient,
    kube_namespace: str,
    operator_runs: Operators,
    pod_runner: PodRunner,
    redis_url: str,
    tmp_path: Path,
) -> None:
    ns = kube_namespace
    _start(kube_admin, ns, operator_runs, redis_url, "stuck", maxReplicas=2)
    deletions = PodDeletions(kube_admin, ns)
    try:
        with Client(redis_url) as client:
            queue = client.get_queue("stuck")
            holds = [tmp_path / "release-0", tmp_path / "release-1"]
            ids = [queue.enqueue({"hold": str(p)}) for p in holds]
            wait_until(lambda: queue.stats().running == 2, 30, what="2 busy workers")
            busy_pod = client.get_task(ids[0]).worker
            assert busy_pod is not None
            # The ReplicaSet removes a not-Ready pod before any Ready one, whatever its cost.
            kube_admin.patch(
                f"/api/v1/namespaces/{ns}/pods/{busy_pod}/status",
                {"status": {"conditions": [{"type": "Ready", "status": "False"}]}},
            )
            holds[1].touch()  # demand falls to 1
            blocked = wait_condition(kube_admin, ns, "stuck", "ScaleDownBlocked", "True", 20)
            assert busy_pod in (condition(blocked, "ScaleDownBlocked") or {}).get("message", "")
            time.sleep(2)
            assert replicas(kube_admin, ns, "stuck") == 2
            assert busy_pod in live_pod_names(kube_admin, ns, "stuck")
            assert client.get_task(ids[0]).status == "running"
            holds[0].touch()
            wait_until(lambda: client.get_task(ids[0]).status == "complete", 20, what="done")
            wait_until(lambda: replicas(kube_admin, ns, "stuck") == 0, 30, what="down to zero")
            wait_condition(kube_admin, ns, "stuck", "ScaleDownBlocked", "False", 20)
            finished = client.get_task(ids[0])
    finally:
        deletions.close()
    assert finished.attempts == 1
    assert finished.finished_at is not None
    assert deletions.deleted.get(busy_pod, float("inf")) >= finished.finished_at.timestamp()
    wait_reason(kube_admin, ns, "stuck", "ScaleDownBlocked")
