"""End to end, as a user runs it: `helm install` the chart, `kubectl apply` the example
BlueQueue, enqueue 200 tasks of 0.2-2 s with examples/produce.py and one long task behind them,
while workers are SIGKILLed and pods deleted (gracefully and by force); then `helm uninstall`.

The chart's operator pod runs the operator on the host with the pod's args and env and the
token of the chart's ServiceAccount (devtools.stack), so it has exactly the chart's RBAC; the
worker pods run examples/tasks.py, which records each execution (task, attempt, worker, time)
in Redis. From that log and a watch of the pods and the worker Deployment: every task completed,
each attempt ran once, a task ran again only after a kill of its worker during that run (never
more reruns than kills), replicas went to maxReplicas and back to minReplicas, and no pod that
a scale-down removed was busy, though one did go while the long task still ran.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from blueque import Client, Task
from devtools.localkube import ApiClient, LocalCluster
from devtools.localkube.api import Json, WatchStream
from devtools.localkube.errors import ApiError
from devtools.podrunner import PodRunner, PodStatus
from devtools.processes import Process, free_port, wait_until
from devtools.stack import (
    EXAMPLE_BLUEQUEUE,
    EXAMPLES,
    OPERATOR_ENTRYPOINT,
    apply_manifest,
    example_bluequeue,
    force_delete_pod,
    install_chart,
    operator_runner,
    uninstall_chart,
    wait_crd_established,
    worker_runner,
)
from tests.support.dockerfile import final_stage

pytestmark = pytest.mark.kube

ROOT = Path(__file__).resolve().parents[2]
TASKS = 200
MIN_S, MAX_S = 0.2, 2.0
# A scale-down delay shorter than the tasks: the scale-down starts while the tail still runs,
# so a scaler that removed busy pods would be caught (with 2 s, every task running when demand
# fell would be done before any pod went).
SCALING = {"scaleDownDelaySeconds": 0.5, "pollIntervalSeconds": 0.25}
# One long task enqueued behind the batch, so claimed last (pending is FIFO): once it begins,
# the other pods run out of work while it still runs for LONG_S, far longer than the scale-down
# takes even on a loaded machine (demand falls, the delay, drain, lower the replicas: ~1-3 s).
# So by construction pods are removed while a pod is busy: the case the no-busy-pod check is
# for. (Without it the tail was the last short tasks only, and once a scale-down came after
# all of them had finished.)
LONG_S = 8.0
ALL_TASKS = TASKS + 1
MAX_ATTEMPTS = 6  # above any plausible run of kills hitting one task
EXECUTIONS_KEY = "blueque:examples:executions"  # examples/tasks.py, default key prefix
# The disruptions, in a shuffled order, one every DISRUPT_EVERY_S once the workers are up.
DISRUPTIONS = ["sigkill"] * 4 + ["force"] * 3 + ["graceful"] * 3
DISRUPT_EVERY_S = 3.0


# -- watching the namespace -------------------------------------------------------------------


class Recorder:
    """Watches the namespace's pods and Deployments in threads: when each pod began to go
    (deletionTimestamp first seen, or DELETED), and every spec.replicas of a Deployment."""

    def __init__(self, admin: ApiClient, namespace: str, deployment: str) -> None:
        self.deleting: dict[str, float] = {}
        self.replicas: list[tuple[float, int]] = []
        self._admin, self._deployment = admin, deployment
        self._stop = threading.Event()
        self._streams: list[WatchStream] = []
        self._threads = [
            threading.Thread(target=self._watch, args=(path, on), daemon=True)
            for path, on in (
                (f"/api/v1/namespaces/{namespace}/pods", self._pod),
                (f"/apis/apps/v1/namespaces/{namespace}/deployments", self._deployment_seen),
            )
        ]
        for thread in self._threads:
            thread.start()

    def _watch(self, path: str, on: object) -> None:
        assert callable(on)
        version = self._admin.get(path)["metadata"]["resourceVersion"]
        while not self._stop.is_set():
            stream = self._admin.open_watch(path, resource_version=version, timeout_s=300)
            self._streams.append(stream)
            if self._stop.is_set():  # closed while this one opened
                stream.close()
            with stream:
                for event in stream:
                    obj = event["object"]
                    version = obj["metadata"].get("resourceVersion", version)
                    on(event["type"], obj)

    def _pod(self, kind: str, pod: Json) -> None:
        if kind == "DELETED" or "deletionTimestamp" in pod["metadata"]:
            self.deleting.setdefault(pod["metadata"]["name"], time.time())

    def _deployment_seen(self, kind: str, deployment: Json) -> None:
        if deployment["metadata"]["name"] != self._deployment or kind == "DELETED":
            return
        replicas = int(deployment["spec"].get("replicas", 0))
        if not self.replicas or self.replicas[-1][1] != replicas:
            self.replicas.append((time.time(), replicas))

    def close(self) -> None:
        self._stop.set()
        for stream in self._streams:
            stream.close()
        for thread in self._threads:
            thread.join(10)


# -- disruptions ------------------------------------------------------------------------------


@dataclass
class Disruptions:
    """What the test did to the workers, and when (time.time(), taken once it was done)."""

    kills: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    """Pod -> times its worker was SIGKILLed or the pod force-deleted: a task it ran died."""
    deleted: set[str] = field(default_factory=set)
    """Pods the test deleted (gracefully or by force): not the scale-down's doing."""
    done: list[str] = field(default_factory=list)

    @property
    def kill_count(self) -> int:
        return sum(len(times) for times in self.kills.values())


def disrupt(
    action: str, admin: ApiClient, runner: PodRunner, ns: str, rng: random.Random, out: Disruptions
) -> bool:
    """One disruption on a random pod whose worker process runs; False when none runs."""
    candidates = [
        s
        for s in runner.statuses()
        if s.state == "running" and not s.gone and s.name not in out.deleted
    ]
    if not candidates:
        return False
    target = rng.choice(candidates)
    if action == "sigkill":  # the worker's main process, as the OOM killer would: restarted
        assert target.pid is not None
        os.kill(target.pid, signal.SIGKILL)
        out.kills[target.name].append(time.time())
    elif action == "force":  # kubectl delete --force --grace-period=0 on a real node
        out.deleted.add(target.name)
        force_delete_pod(admin, runner, ns, target.name)
        out.kills[target.name].append(time.time())
    else:  # graceful: SIGTERM, a busy worker finishes its task first
        out.deleted.add(target.name)
        admin.delete(f"/api/v1/namespaces/{ns}/pods/{target.name}")
    out.done.append(f"{action} {target.name}")
    return True


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def chart(kube_cluster: LocalCluster, kube_namespace: str) -> Iterator[list[str]]:
    """Where the chart is installed (the test uninstalls it; this does if the test did not)."""
    installed: list[str] = []
    yield installed
    for namespace in installed:
        try:
            uninstall_chart(kube_cluster, namespace)
        except Exception as exc:  # already uninstalled by the test
            if "not found" not in str(exc):
                raise


@pytest.fixture
def runners(
    kube_admin: ApiClient, kube_namespace: str, tmp_path: Path, chart: list[str]
) -> Iterator[tuple[PodRunner, PodRunner]]:
    """(operator runner, worker runner), closed before the chart's teardown and the namespace's
    deletion."""
    ops = operator_runner(kube_admin, kube_namespace, tmp_path / "operator-pods")
    workers = worker_runner(kube_admin, kube_namespace, tmp_path / "worker-pods")
    with ops, workers:
        yield ops, workers


# -- the test ---------------------------------------------------------------------------------


@pytest.mark.timeout(300)
def test_helm_install_example_chaos_scale_to_max_and_back_then_uninstall(
    kube_cluster: LocalCluster,
    kube_admin: ApiClient,
    kube_namespace: str,
    redis_url: str,
    runners: tuple[PodRunner, PodRunner],
    chart: list[str],
    tmp_path: Path,
) -> None:
    ns = kube_namespace
    ops_runner, worker_pods = runners
    rng = random.Random(20240610)
    timings: dict[str, float] = {}
    began = time.monotonic()

    def mark(phase: str) -> None:
        timings[phase] = round(time.monotonic() - began, 1)

    # The operator pod runs what the operator image's entrypoint says.
    assert final_stage(ROOT / "operator" / "Dockerfile").entrypoint == OPERATOR_ENTRYPOINT

    chart.append(ns)
    notes = install_chart(kube_cluster, ns, metrics_port=free_port())
    wait_crd_established(kube_admin)
    (operator_pod,) = wait_until(
        lambda: [s for s in ops_runner.statuses() if s.state == "running"],
        30,
        what="the chart's operator pod running",
    )
    mark("installed")

    manifest = example_bluequeue(redis_url, scaling=SCALING, tasks={"maxAttempts": MAX_ATTEMPTS})
    name, queue_name = manifest["metadata"]["name"], manifest["spec"]["queue"]
    min_replicas = manifest["spec"]["scaling"]["minReplicas"]
    max_replicas = manifest["spec"]["scaling"]["maxReplicas"]
    assert (min_replicas, max_replicas) == (0, 4)  # the file's own
    deployment_path = f"/apis/apps/v1/namespaces/{ns}/deployments/{name}-workers"
    bq_path = f"/apis/blueque.io/v1alpha1/namespaces/{ns}/bluequeues/{name}"
    recorder = Recorder(kube_admin, ns, f"{name}-workers")
    disruptions = Disruptions()
    try:
        out = apply_manifest(kube_cluster, ns, manifest)
        assert out.strip() == f"bluequeue.blueque.io/{name} created"
        kube_admin.wait_for(deployment_path, lambda _: True, what="the worker Deployment")

        argv = [sys.executable, str(EXAMPLES / "produce.py"), str(TASKS), "--seed", "7"]
        argv += ["--min-seconds", str(MIN_S), "--max-seconds", str(MAX_S)]
        producer = Process.start(
            "produce.py",
            [*argv, "--wait", "--timeout", "200"],
            log_file=tmp_path / "produce.log",
            env={**os.environ, "BLUEQUE_REDIS_URL": redis_url},
        )
        with Client(redis_url) as client:
            queue = client.get_queue(queue_name)
            wait_until(lambda: queue.stats().totals.get("enqueued", 0) >= TASKS or None, 30)
            long_task = queue.enqueue({"video": TASKS + 1, "seconds": LONG_S})
            mark("enqueued")
            wait_until(
                lambda: (
                    len([s for s in worker_pods.statuses() if s.state == "running"]) == max_replicas
                ),
                30,
                what="max replicas' workers running",
            )
            mark("at max replicas")

            plan = list(DISRUPTIONS)
            rng.shuffle(plan)
            for action in plan:
                time.sleep(DISRUPT_EVERY_S)
                if queue.stats().pending == 0:
                    break  # too late to disrupt anything but the tail
                wait_until(
                    lambda: disrupt(action, kube_admin, worker_pods, ns, rng, disruptions),  # noqa: B023
                    20,
                    what=f"a worker to {action}",
                )
            mark("disruptions done")

            assert producer.wait_exit(200) == 0, producer.output()
            assert re.search(rf"\bcomplete: {TASKS}\b", producer.output()), producer.output()
            assert client.get_task(long_task).wait(60).status == "complete"
            mark("all complete")

            wait_until(
                lambda: recorder.replicas and recorder.replicas[-1][1] == min_replicas,
                60,
                what=lambda: f"back to {min_replicas} replicas: {recorder.replicas}",
            )
            wait_until(
                lambda: not [s for s in worker_pods.statuses() if s.state != "exited"],
                30,
                what=lambda: f"no worker process left: {worker_pods.statuses()}",
            )
            mark("scaled down")
            status = kube_admin.get(bq_path)["status"]

            tasks = queue.tasks("complete", limit=1000)
            stats = queue.stats()
            executions = [json.loads(r) for r in client.redis.lrange(EXECUTIONS_KEY, 0, -1)]
    finally:
        recorder.close()
        print(f"disruptions: {disruptions.done}")

    # Every task completed: none lost, none failed, nothing left anywhere.
    assert len(tasks) == ALL_TASKS and {t.status for t in tasks} == {"complete"}
    assert (stats.pending, stats.reserved, stats.running, stats.failed) == (0, 0, 0, 0)
    assert len(disruptions.done) >= 6, disruptions.done
    reruns = check_executions(tasks, executions, disruptions)
    assert 1 <= reruns <= disruptions.kill_count, (reruns, disruptions.kills)

    # Replicas rose to max and came back to min; the status says so too.
    seen = [replicas for _, replicas in recorder.replicas]
    assert max(seen) == max_replicas and seen[-1] == min_replicas, recorder.replicas
    assert (status["replicas"], status["desiredReplicas"]) == (min_replicas, min_replicas)
    assert (status["pending"], status["running"]) == (0, 0)
    reasons = {
        e["reason"]
        for e in kube_admin.get(
            f"/api/v1/namespaces/{ns}/events",
            {"fieldSelector": f"involvedObject.kind=BlueQueue,involvedObject.name={name}"},
        )["items"]
    }
    assert {"ScaledUp", "ScaledDown"} <= reasons, reasons

    # No pod removed by a scale-down was busy: whatever ran there had ended before it went.
    removed = {p: t for p, t in recorder.deleting.items() if p not in disruptions.deleted}
    removed.pop(operator_pod.name, None)
    last_finish = max(t.finished_at.timestamp() for t in tasks if t.finished_at is not None)
    # The case that matters: pods removed while others still worked (the tail of the run).
    assert any(went < last_finish for went in removed.values()), (removed, last_finish)
    tail = round(last_finish - min(removed.values()), 1)  # first removal before the last finish
    check_no_busy_pod_removed(removed, tasks, executions, disruptions)
    mark("checked")

    # helm uninstall: the operator goes; the CRD, the BlueQueue, its Deployment and the tasks
    # stay, as the chart's NOTES say.
    assert (
        "removes the operator only: the CRD, the BlueQueues, their worker Deployments (at their "
        "last replica count) and the tasks in Redis stay" in " ".join(notes.split())
    ), notes
    # The chart's RBAC sufficed: not one refusal while the operator ran, up to the uninstall.
    # (`helm uninstall` deletes the RBAC as it deletes the Deployment, before the pod gets
    # SIGTERM: a tick or the Lease's release in between is refused, and the Lease expires by
    # itself.) A refusal reads "HTTP 403" in the Lease's log, "forbidden" in the API's
    # message; a bare "403" also matches a timestamp's milliseconds.
    before_uninstall = ops_runner.tail(operator_pod.name, lines=100_000)
    assert "HTTP 403" not in before_uninstall, before_uninstall[-3000:]
    assert "forbidden" not in before_uninstall.lower(), before_uninstall[-3000:]
    uninstall_chart(kube_cluster, ns)
    chart.remove(ns)

    def operator_gone() -> PodStatus | None:
        s = ops_runner.status(operator_pod.name)
        return s if s is not None and s.gone and s.state == "exited" else None

    gone = wait_until(operator_gone, 30, what="the operator pod gone and its process ended")
    assert gone.exit_codes == (0,), ops_runner.tail(operator_pod.name)
    assert kube_cluster.helm("list", "--namespace", ns, "--short").strip() == ""
    with pytest.raises(ApiError) as no_operator:
        kube_admin.get(f"/apis/apps/v1/namespaces/{ns}/deployments/blueque")
    assert no_operator.value.status == 404
    wait_crd_established(kube_admin)
    lease = f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/blueque-operator"
    assert kube_admin.get(lease)["kind"] == "Lease"  # left behind (the chart's README says so)
    assert kube_admin.get(bq_path)["spec"]["queue"] == queue_name
    assert kube_admin.get(deployment_path)["spec"]["replicas"] == min_replicas
    with Client(redis_url) as client:
        kept = client.get_queue(queue_name).get_tasks(t.id for t in tasks)
    assert [t.status for t in kept] == ["complete"] * ALL_TASKS
    mark("uninstalled")
    print(
        f"timings (s since start): {timings}; reruns {reruns}; kills {disruptions.kill_count}; "
        f"first scale-down removal {tail} s before the last task finished"
    )
    log = ops_runner.tail(operator_pod.name, lines=100_000)
    # The operator's own lines (it handles SIGTERM itself, not Kopf): told, and ended cleanly.
    assert "SIGTERM received: stopping" in log, log[-3000:]
    assert "blueque_operator: stopped" in log, log[-3000:]


def check_executions(tasks: list[Task], executions: list[Json], disruptions: Disruptions) -> int:
    """Each attempt of each task ran once; the completing one is the task's last; every other
    ran on a worker that a kill hit after it began. Returns the number of reruns."""
    by_task: dict[str, list[Json]] = defaultdict(list)
    for execution in executions:
        by_task[execution["task"]].append(execution)
    assert set(by_task) == {t.id for t in tasks}, "an execution of an unknown task, or none"
    reruns = 0
    for task in tasks:
        runs = sorted(by_task[task.id], key=lambda e: e["attempt"])
        attempts = [e["attempt"] for e in runs]
        assert len(set(attempts)) == len(attempts), f"{task.id} ran an attempt twice: {runs}"
        # A kill between begin and the task's first line leaves an attempt with no record.
        assert attempts[-1] == task.attempts and task.losses == task.attempts - 1, (task, runs)
        assert runs[-1]["worker"] == task.worker
        for interrupted in runs[:-1]:
            kills = disruptions.kills.get(interrupted["worker"], [])
            assert any(at >= interrupted["at"] for at in kills), (
                f"{task.id} ran again though no kill hit {interrupted['worker']} after its "
                f"attempt {interrupted['attempt']} began: {runs}; kills {dict(disruptions.kills)}"
            )
        reruns += task.attempts - 1
    return reruns


def check_no_busy_pod_removed(
    removed: dict[str, float],
    tasks: list[Task],
    executions: list[Json],
    disruptions: Disruptions,
) -> None:
    """Every execution on a pod the scale-down removed ended (finished, or was killed by the
    test) before the pod began to go."""
    finished = {t.id: (t.attempts, t.finished_at) for t in tasks}
    for execution in executions:
        went = removed.get(execution["worker"])
        if went is None:
            continue
        attempts, finished_at = finished[execution["task"]]
        if execution["attempt"] == attempts:
            assert finished_at is not None
            ended = finished_at.timestamp()
        else:
            ended = min(t for t in disruptions.kills[execution["worker"]] if t >= execution["at"])
        assert ended <= went, (
            f"pod {execution['worker']} began to go at {went:.3f} while it ran "
            f"{execution} (ended {ended:.3f})"
        )


def test_the_example_manifest_is_what_the_e2e_test_applies() -> None:
    """example_bluequeue() reads examples/bluequeue.yaml: only the Redis URL, the scaling and
    tasks settings and the worker env differ."""
    original = yaml.safe_load(EXAMPLE_BLUEQUEUE.read_text())
    patched = example_bluequeue("redis://127.0.0.1:1/0", scaling=SCALING, tasks={"maxAttempts": 6})
    assert patched["metadata"] == original["metadata"]
    assert patched["spec"]["redis"] == {"url": "redis://127.0.0.1:1/0"}
    assert patched["spec"]["scaling"] == {**original["spec"]["scaling"], **SCALING}
    worker = {k: v for k, v in patched["spec"]["worker"].items() if k != "env"}
    assert worker == original["spec"]["worker"]
