"""Deployments, pod death and scale-down on the real controllers, with KWOK as the kubelets.

These are the behaviours the operator relies on: a Deployment's pods are replaced when they die,
and `controller.kubernetes.io/pod-deletion-cost` chooses which pods a scale-down removes, but
only among pods that rank equal on the ReplicaSet controller's earlier criteria (scheduled,
phase, readiness). The last test records the case where the cost is not honoured.
"""

from __future__ import annotations

import pytest

from devtools.localkube import ApiClient
from devtools.localkube.api import Json

pytestmark = pytest.mark.kube

COST = "controller.kubernetes.io/pod-deletion-cost"


def _deployment(name: str, replicas: int) -> Json:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    # KWOK never pulls or runs the image; it only plays the kubelet's part.
                    "containers": [{"name": "worker", "image": "registry.invalid/worker:1"}],
                    "terminationGracePeriodSeconds": 30,
                },
            },
        },
    }


def _is_ready(pod: Json) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def _live_pods(kube: ApiClient, ns: str, app: str) -> list[Json]:
    pods: list[Json] = kube.get(f"/api/v1/namespaces/{ns}/pods", {"labelSelector": f"app={app}"})[
        "items"
    ]
    return [p for p in pods if "deletionTimestamp" not in p["metadata"]]


def _wait_running(kube: ApiClient, ns: str, app: str, count: int) -> list[Json]:
    """Wait until exactly `count` pods of `app` exist and all are Running and Ready."""
    found: list[Json] = []

    def done(_: Json) -> bool:
        nonlocal found
        found = kube.get(f"/api/v1/namespaces/{ns}/pods", {"labelSelector": f"app={app}"})["items"]
        return len(found) == count and all(
            p["status"].get("phase") == "Running" and _is_ready(p) for p in found
        )

    kube.wait_for(
        f"/api/v1/namespaces/{ns}", done, timeout_s=60, what=f"{count} Running pods of {app}"
    )
    return found


def _start(kube: ApiClient, ns: str, name: str, replicas: int) -> list[Json]:
    kube.create(f"/apis/apps/v1/namespaces/{ns}/deployments", _deployment(name, replicas))
    pods = _wait_running(kube, ns, name, replicas)
    kube.wait_for(
        f"/apis/apps/v1/namespaces/{ns}/deployments/{name}",
        lambda d: d.get("status", {}).get("availableReplicas") == replicas,
        what=f"deployment {name} available",
    )
    return pods


def _annotate_costs(kube: ApiClient, ns: str, pods: list[Json]) -> dict[str, int]:
    costs = {}
    for cost, pod in enumerate(sorted(pods, key=lambda p: p["metadata"]["name"]), start=1):
        name = pod["metadata"]["name"]
        kube.patch(
            f"/api/v1/namespaces/{ns}/pods/{name}",
            {"metadata": {"annotations": {COST: str(cost)}}},
        )
        costs[name] = cost
    return costs


def _scale(kube: ApiClient, ns: str, name: str, replicas: int) -> None:
    kube.patch(
        f"/apis/apps/v1/namespaces/{ns}/deployments/{name}/scale",
        {"spec": {"replicas": replicas}},
    )


def test_deployment_runs_pods_on_kwok_nodes_and_replaces_a_deleted_one(
    kube_admin: ApiClient, kube_namespace: str
) -> None:
    pods = _start(kube_admin, kube_namespace, "workers", 3)
    nodes = {n["metadata"]["name"]: n for n in kube_admin.get("/api/v1/nodes")["items"]}
    for pod in pods:
        node = nodes[pod["spec"]["nodeName"]]
        assert node["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
        assert pod["status"]["podIP"]

    victim = pods[0]["metadata"]["name"]
    kube_admin.delete(f"/api/v1/namespaces/{kube_namespace}/pods/{victim}")
    after = _wait_running(kube_admin, kube_namespace, "workers", 3)
    names = {p["metadata"]["name"] for p in after}
    assert victim not in names
    assert len(names - {p["metadata"]["name"] for p in pods}) == 1


def test_scale_down_keeps_the_pod_with_the_highest_deletion_cost(
    kube_admin: ApiClient, kube_namespace: str
) -> None:
    pods = _start(kube_admin, kube_namespace, "costly", 3)
    costs = _annotate_costs(kube_admin, kube_namespace, pods)

    _scale(kube_admin, kube_namespace, "costly", 1)
    (survivor,) = _wait_running(kube_admin, kube_namespace, "costly", 1)

    assert costs[survivor["metadata"]["name"]] == 3


def test_a_not_ready_pod_is_removed_first_whatever_its_deletion_cost(
    kube_admin: ApiClient, kube_namespace: str
) -> None:
    """Readiness ranks before the cost: an operator must not rely on the cost alone."""
    pods = _start(kube_admin, kube_namespace, "unready", 3)
    costs = _annotate_costs(kube_admin, kube_namespace, pods)
    by_cost = {cost: name for name, cost in costs.items()}
    # Play a failing readiness probe on the pod the cost says to keep. KWOK only acts on
    # Pending pods, so it leaves this status alone.
    kube_admin.patch(
        f"/api/v1/namespaces/{kube_namespace}/pods/{by_cost[3]}/status",
        {"status": {"conditions": [{"type": "Ready", "status": "False"}]}},
        content_type="application/strategic-merge-patch+json",
    )
    kube_admin.wait_for(
        f"/apis/apps/v1/namespaces/{kube_namespace}/deployments/unready",
        lambda d: d.get("status", {}).get("readyReplicas") == 2,
        what="the deployment to see 2 ready pods",
    )

    _scale(kube_admin, kube_namespace, "unready", 1)
    kube_admin.wait_for(
        f"/api/v1/namespaces/{kube_namespace}",
        lambda _: len(_live_pods(kube_admin, kube_namespace, "unready")) == 1,
        what="scale-down to 1 pod",
    )
    (survivor,) = _live_pods(kube_admin, kube_namespace, "unready")

    assert survivor["metadata"]["name"] == by_cost[2]


def test_an_unscheduled_pod_is_removed_first_whatever_its_deletion_cost(
    kube_admin: ApiClient, kube_namespace: str
) -> None:
    """The scheduled/unscheduled rank comes first: a Pending pod goes before any running one."""
    ns = kube_namespace
    pods = _start(kube_admin, ns, "pending", 3)
    costs = _annotate_costs(kube_admin, ns, pods)
    nodes = [n["metadata"]["name"] for n in kube_admin.get("/api/v1/nodes")["items"]]
    try:
        for node in nodes:
            kube_admin.patch(f"/api/v1/nodes/{node}", {"spec": {"unschedulable": True}})
        _scale(kube_admin, ns, "pending", 4)
        kube_admin.wait_for(
            f"/api/v1/namespaces/{ns}",
            lambda _: any(
                not p["spec"].get("nodeName") for p in _live_pods(kube_admin, ns, "pending")
            ),
            what="a fourth, unschedulable pod",
        )
        (unscheduled,) = [
            p for p in _live_pods(kube_admin, ns, "pending") if not p["spec"].get("nodeName")
        ]
        kube_admin.patch(
            f"/api/v1/namespaces/{ns}/pods/{unscheduled['metadata']['name']}",
            {"metadata": {"annotations": {COST: "100"}}},
        )
        _scale(kube_admin, ns, "pending", 3)
        kube_admin.wait_for(
            f"/api/v1/namespaces/{ns}",
            lambda _: len(_live_pods(kube_admin, ns, "pending")) == 3,
            what="scale-down to 3 pods",
        )
        remaining = {p["metadata"]["name"] for p in _live_pods(kube_admin, ns, "pending")}
        assert remaining == set(costs)
    finally:
        for node in nodes:
            kube_admin.patch(f"/api/v1/nodes/{node}", {"spec": {"unschedulable": False}})
