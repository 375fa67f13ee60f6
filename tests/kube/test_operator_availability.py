"""The operator under trouble: Redis down or slow, two replicas, two BlueQueues on one queue;
and what it reports (status, Events, metrics)."""

from __future__ import annotations

import signal
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from blueque import Client
from devtools.localkube import ApiClient
from devtools.operator_runs import Operators
from devtools.podrunner import PodRunner
from devtools.processes import wait_until
from devtools.redis_servers import RedisServer
from tests.kube.operator_support import (
    apply_bluequeue,
    bluequeue,
    bq_path,
    condition,
    replicas,
    wait_condition,
    wait_reason,
)

pytestmark = pytest.mark.kube


def _samples(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _metric(url: str, name: str, **labels: str) -> float | None:
    for (sample, found), value in _samples(url).items():
        if sample == name and set(labels.items()) <= set(found):
            return value
    return None


def test_redis_down_then_slow_flips_the_condition_and_never_scales_on_missing_data(
    kube_admin: ApiClient,
    kube_namespace: str,
    operator_runs: Operators,
    pod_runner: PodRunner,
    tmp_path: Path,
) -> None:
    ns = kube_namespace
    with RedisServer(extra_args=["--enable-debug-command", "yes"]) as server:
        operator_runs.start([ns], lease_namespace=ns)
        kube_admin.create(bq_path(ns), bluequeue("flaky", server.url, scaling={"minReplicas": 1}))
        wait_condition(kube_admin, ns, "flaky", "RedisReachable", "True")
        wait_until(lambda: replicas(kube_admin, ns, "flaky") == 1, 10, what="one replica")

        server.kill()
        down = wait_condition(kube_admin, ns, "flaky", "RedisReachable", "False", 20)
        assert condition(down, "Ready")["status"] == "False"  # type: ignore[index]
        time.sleep(2)  # several ticks without data: the replicas stay as they were
        assert replicas(kube_admin, ns, "flaky") == 1
        wait_reason(kube_admin, ns, "flaky", "RedisUnreachable")

        server.start()
        wait_condition(kube_admin, ns, "flaky", "RedisReachable", "True", 40)
        with Client(server.url) as client:  # the restarted server lost its config: rewritten
            wait_until(
                lambda: client.get_queue("flaky").config().max_attempts == 3,
                10,
                what="the queue config written again",
            )

        # Slow: the server stalls longer than the client's socket timeout.
        direct = redis.Redis(port=server.port, socket_timeout=30)
        stall = threading.Thread(
            target=lambda: direct.execute_command("DEBUG", "SLEEP", 7)  # type: ignore[no-untyped-call]
        )
        stall.start()
        try:
            wait_condition(kube_admin, ns, "flaky", "RedisReachable", "False", 15)
            assert replicas(kube_admin, ns, "flaky") == 1
        finally:
            stall.join()
            direct.close()
        wait_condition(kube_admin, ns, "flaky", "RedisReachable", "True", 40)


def test_two_operators_one_acts_and_the_other_takes_over_when_it_dies(
    kube_admin: ApiClient,
    kube_namespace: str,
    operator_runs: Operators,
    pod_runner: PodRunner,
    redis_url: str,
) -> None:
    ns = kube_namespace
    first = operator_runs.start([ns], lease_namespace=ns)
    lease = f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/blueque-operator"
    holder = kube_admin.wait_for(
        lease, lambda obj: bool(obj["spec"].get("holderIdentity")), what="a leader"
    )["spec"]["holderIdentity"]
    second = operator_runs.start([ns], lease_namespace=ns)
    apply_bluequeue(kube_admin, ns, bluequeue("pair", redis_url, scaling={"maxReplicas": 2}))
    with Client(redis_url) as client:
        queue = client.get_queue("pair")
        ids = queue.enqueue_many([{"echo": i} for i in range(4)])
        wait_until(
            lambda: all(client.get_task(i).status == "complete" for i in ids), 30, what="done"
        )
        assert "ScaledUp" in first.log(400)
        assert "ScaledUp" not in second.log(400), "the standby acted"
        assert kube_admin.get(lease)["spec"]["holderIdentity"] == holder

        first.process.signal(signal.SIGKILL)  # no release: the Lease must expire
        killed_at = time.monotonic()
        kube_admin.wait_for(
            lease,
            lambda obj: obj["spec"].get("holderIdentity") not in (None, holder),
            timeout_s=30,
            what="the standby to take the Lease",
        )
        took_s = time.monotonic() - killed_at
        assert took_s < 20, f"takeover took {took_s:.1f} s"
        # The new leader acts: it scales the idle workers away, then up for new tasks.
        wait_until(lambda: replicas(kube_admin, ns, "pair") == 0, 30, what="scale to zero")
        more = queue.enqueue_many([{"echo": i} for i in range(2)])
        wait_until(
            lambda: all(client.get_task(i).status == "complete" for i in more), 30, what="more"
        )
        assert "ScaledUp" in second.log(400)


def test_status_events_and_metrics_report_the_queue_and_an_idle_queue_writes_nothing(
    kube_admin: ApiClient,
    kube_namespace: str,
    operator_runs: Operators,
    pod_runner: PodRunner,
    redis_url: str,
) -> None:
    ns = kube_namespace
    run = operator_runs.start([ns], lease_namespace=ns)
    apply_bluequeue(kube_admin, ns, bluequeue("seen", redis_url, scaling={"maxReplicas": 0}))
    with Client(redis_url) as client:
        client.get_queue("seen").enqueue_many([{"echo": i} for i in range(3)])
    obj = kube_admin.wait_for(
        bq_path(ns, "seen"),
        lambda o: o.get("status", {}).get("pending") == 3,
        what="pending 3 in the status",
    )
    assert obj["status"]["desiredReplicas"] == 0
    labels = {"namespace": ns, "bluequeue": "seen", "queue": "seen"}
    wait_until(
        lambda: _metric(run.metrics_url, "blueque_pending_tasks", **labels) == 3.0,
        10,
        what="the pending gauge",
    )
    assert _metric(run.metrics_url, "blueque_tick_duration_seconds_count", **labels)
    # Nothing changes: no status write (the resourceVersion stays).
    version = kube_admin.get(bq_path(ns, "seen"))["metadata"]["resourceVersion"]
    time.sleep(2)
    assert kube_admin.get(bq_path(ns, "seen"))["metadata"]["resourceVersion"] == version


def test_a_second_bluequeue_on_the_same_queue_gets_conflict_and_does_nothing(
    kube_admin: ApiClient,
    kube_namespace: str,
    operator_runs: Operators,
    pod_runner: PodRunner,
    redis_url: str,
) -> None:
    ns = kube_namespace
    operator_runs.start([ns], lease_namespace=ns)
    apply_bluequeue(kube_admin, ns, bluequeue("owner", redis_url, queue="shared"))
    kube_admin.create(
        bq_path(ns), bluequeue("intruder", redis_url, queue="shared", scaling={"minReplicas": 1})
    )
    conflicted = wait_condition(kube_admin, ns, "intruder", "Conflict", "True")
    assert condition(conflicted, "Ready")["status"] == "False"  # type: ignore[index]
    wait_reason(kube_admin, ns, "intruder", "Conflict")
    with Client(redis_url) as client:
        client.get_queue("shared").enqueue({"echo": 1})
        wait_until(lambda: replicas(kube_admin, ns, "owner") == 1, 10, what="the owner scales")
    time.sleep(1)
    # The intruder created nothing: no workers of its own on a queue it does not hold.
    assert replicas(kube_admin, ns, "intruder") is None
    # The owner goes: the intruder takes over the queue.
    kube_admin.delete(bq_path(ns, "owner"))
    wait_condition(kube_admin, ns, "intruder", "Conflict", "False", 30)
    wait_until(lambda: replicas(kube_admin, ns, "intruder") is not None, 10, what="its Deployment")


def test_what_the_schema_cannot_refuse_becomes_a_condition_and_an_event(
    kube_admin: ApiClient,
    kube_namespace: str,
    operator_runs: Operators,
    pod_runner: PodRunner,
    redis_url: str,
) -> None:
    ns = kube_namespace
    run = operator_runs.start([ns], lease_namespace=ns)
    with RedisServer(
        extra_args=["--requirepass", "right-password"],
        ping_kwargs={"password": "right-password"},
    ) as guarded:
        guarded_url = f"redis://127.0.0.1:{guarded.port}/0"
        secret_ref = {"name": "redis-auth", "key": "password"}
        body = bluequeue("nosecret", guarded_url)
        body["spec"]["redis"]["passwordSecretRef"] = secret_ref
        kube_admin.create(bq_path(ns), body)
        missing = wait_condition(kube_admin, ns, "nosecret", "RedisReachable", "False")
        assert "redis-auth" in (condition(missing, "RedisReachable") or {})["message"]

        kube_admin.create(
            f"/api/v1/namespaces/{ns}/secrets",
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "redis-auth"},
                "stringData": {"password": "wrong-password"},
            },
        )
        wrong = wait_condition(kube_admin, ns, "nosecret", "RedisReachable", "False")
        wait_until(
            lambda: (
                "authentication"
                in (condition(kube_admin.get(bq_path(ns, "nosecret")), "RedisReachable") or {}).get(
                    "message", ""
                )
            ),
            20,
            what="the wrong password to be reported",
        )
        assert "right-password" not in str(wrong) and "wrong-password" not in run.log(400)
        kube_admin.patch(
            f"/api/v1/namespaces/{ns}/secrets/redis-auth",
            {"stringData": {"password": "right-password"}},
        )
        wait_condition(kube_admin, ns, "nosecret", "RedisReachable", "True", 30)

    # A spec the parser refuses (here: a reserved variable in a full template).
    bad = bluequeue("reserved", redis_url)
    bad["spec"]["worker"] = {
        "template": {
            "spec": {
                "containers": [
                    {
                        "name": "worker",
                        "image": "registry.invalid/x:1",
                        "env": [{"name": "BLUEQUE_WORKER_ID", "value": "shared"}],
                    }
                ]
            }
        }
    }
    kube_admin.create(bq_path(ns), bad)
    refused = wait_condition(kube_admin, ns, "reserved", "Ready", "False")
    assert (condition(refused, "Ready") or {})["reason"] == "InvalidSpec"
    wait_reason(kube_admin, ns, "reserved", "InvalidSpec")

    # A ReplicaSet that cannot create pods (a quota of none).
    kube_admin.create(
        f"/api/v1/namespaces/{ns}/resourcequotas",
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": "no-pods"},
            "spec": {"hard": {"pods": "0"}},
        },
    )
    kube_admin.create(bq_path(ns), bluequeue("starved", redis_url, scaling={"minReplicas": 1}))
    failing = wait_condition(kube_admin, ns, "starved", "WorkersFailing", "True", 30)
    assert "quota" in (condition(failing, "WorkersFailing") or {})["message"]
    wait_reason(kube_admin, ns, "starved", "WorkersFailing")
