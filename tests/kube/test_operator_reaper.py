"""Requeueing the tasks of workers whose pods died; never of pods that are only terminating,
never of workers the operator does not own."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from blueque import Client, Task
from devtools.localkube import ApiClient
from devtools.operator_runs import Operators
from devtools.podrunner import PodRunner
from devtools.processes import wait_until
from tests.kube.operator_support import (
    apply_bluequeue,
    bluequeue,
    bq_path,
    running_on,
    wait_condition,
    wait_reason,
)

pytestmark = pytest.mark.kube


def _force_delete(admin: ApiClient, runner: PodRunner, ns: str, pod: str) -> None:
    """What `kubectl delete --force --grace-period=0` does to a pod on a real node: the process
    dies at once (KWOK cannot tell, so the runner is told), and the object goes."""
    runner.kill(pod, ns)
    body = json.dumps({"gracePeriodSeconds": 0}).encode()
    status, answer = admin.raw(
        "DELETE", f"/api/v1/namespaces/{ns}/pods/{pod}", body, content_type="application/json"
    )
    assert status in (200, 202, 404), answer


def _in_state(client: Client, task_id: str, state: str) -> Task | None:
    task = client.get_task(task_id)
    return task if task.status == state else None


def test_a_force_deleted_busy_pod_has_its_task_requeued_then_failed_at_max_attempts(
    kube_admin: ApiClient,
    kube_namespace: str,
    operator_runs: Operators,
    pod_runner: PodRunner,
    redis_url: str,
    tmp_path: Path,
) -> None:
    ns = kube_namespace
    operator_runs.start([ns], lease_namespace=ns)
    kube_admin.create(
        bq_path(ns),
        bluequeue("lost", redis_url, scaling={"maxReplicas": 1}, tasks={"maxAttempts": 2}),
    )
    wait_condition(kube_admin, ns, "lost", "Ready", "True")
    release = tmp_path / "release"
    with Client(redis_url) as client:
        queue = client.get_queue("lost")
        task_id = queue.enqueue({"hold": str(release)})
        with queue.events() as events:
            first = wait_until(
                lambda: running_on(client, task_id),
                30,
                what="the task to run",
            )
            _force_delete(kube_admin, pod_runner, ns, first)
            requeued = wait_until(
                lambda: (e := events.next(0.2)) and e["event"] == "requeued" and e,
                10,
                what="a requeued event",
            )
            assert requeued["task"] == task_id

        def on_another_pod() -> str | None:
            task = client.get_task(task_id)
            return task.worker if task.status == "running" and task.worker != first else None

        second = wait_until(
            on_another_pod,
            30,
            what="the task on a second pod",
        )
        assert client.get_task(task_id).attempts == 2
        _force_delete(kube_admin, pod_runner, ns, second)
        failed = wait_until(
            lambda: _in_state(client, task_id, "failed"),
            15,
            what="the task to fail at max attempts",
        )
        assert failed.error is not None and "worker lost" in failed.error.get("message", "")
    wait_reason(kube_admin, ns, "lost", "WorkerReaped")


def test_a_terminating_pod_finishing_its_task_is_not_reaped(
    kube_admin: ApiClient,
    kube_namespace: str,
    operator_runs: Operators,
    pod_runner: PodRunner,
    redis_url: str,
    tmp_path: Path,
) -> None:
    ns = kube_namespace
    operator_runs.start([ns], lease_namespace=ns)
    apply_bluequeue(kube_admin, ns, bluequeue("calm", redis_url, scaling={"maxReplicas": 1}))
    release = tmp_path / "release"
    with Client(redis_url) as client:
        task_id = client.get_queue("calm").enqueue({"hold": str(release)})
        pod = wait_until(
            lambda: running_on(client, task_id),
            30,
            what="the task to run",
        )
        kube_admin.delete(f"/api/v1/namespaces/{ns}/pods/{pod}")  # graceful: SIGTERM
        wait_until(
            lambda: (
                (status := pod_runner.status(pod)) is not None and status.state == "terminating"
            ),
            10,
            what="SIGTERM",
        )
        time.sleep(2)  # many ticks and sweeps: a terminating pod must not be reaped
        assert client.get_task(task_id).status == "running"
        release.touch()
        done = wait_until(
            lambda: _in_state(client, task_id, "complete"),
            20,
            what="the task to finish under the grace period",
        )
    assert (done.attempts, done.worker) == (1, pod)


def test_after_a_restart_the_sweep_requeues_what_died_meanwhile_and_undoes_stray_drains(
    kube_admin: ApiClient,
    kube_namespace: str,
    operator_runs: Operators,
    pod_runner: PodRunner,
    redis_url: str,
    tmp_path: Path,
) -> None:
    ns = kube_namespace
    first = operator_runs.start([ns], lease_namespace=ns)
    apply_bluequeue(
        kube_admin, ns, bluequeue("swept", redis_url, scaling={"minReplicas": 2, "maxReplicas": 2})
    )
    release = tmp_path / "release"
    with Client(redis_url) as client:
        queue = client.get_queue("swept")
        task_id = queue.enqueue({"hold": str(release)})
        busy = wait_until(
            lambda: running_on(client, task_id),
            30,
            what="the task to run",
        )
        idle = wait_until(
            lambda: next((w.id for w in queue.workers() if w.id != busy), None),
            30,
            what="the idle worker to register",
        )
        first.process.stop()  # the operator is down from here
        # What an operator killed between its drain and its status write leaves behind:
        assert queue.drain(idle)
        _force_delete(kube_admin, pod_runner, ns, busy)
        time.sleep(1)
        assert client.get_task(task_id).status == "running"  # nobody reaped it yet

        operator_runs.start([ns], lease_namespace=ns)
        wait_until(
            lambda: client.get_task(task_id).attempts == 2, 30, what="the sweep to requeue it"
        )
        wait_until(
            lambda: not any(w.draining for w in queue.workers() if w.id == idle),
            15,
            what="the stray drain to be undone",
        )
        release.touch()
        done = wait_until(lambda: _in_state(client, task_id, "complete"), 30, what="done")
    assert done.worker != busy
