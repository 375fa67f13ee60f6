"""Watched objects into the policy's values: pods ranked as the ReplicaSet ranks them, the
Deployment settled or rolling out."""

from __future__ import annotations

from typing import Any

from blueque_operator import world as w
from blueque_operator.policy import LOWEST_DELETION_COST, PROTECTION_ANNOTATIONS

Json = dict[str, Any]
LABELS = {"app.kubernetes.io/name": "blueque-worker", "blueque.io/bluequeue": "clips"}


def pod(name: str, rv: int = 1, **changes: Any) -> Json:
    obj: Json = {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "resourceVersion": str(rv),
            "labels": {**LABELS, "pod-template-hash": changes.pop("hash", "aaa")},
            "annotations": changes.pop("annotations", {}),
        },
        "spec": {"nodeName": changes.pop("node", "kwok-0")},
        "status": {
            "phase": changes.pop("phase", "Running"),
            "conditions": [{"type": "Ready", "status": changes.pop("ready", "True")}],
        },
    }
    obj["metadata"].update(changes)
    return obj


def deployment(replicas: int, generation: int = 1, observed: int = 1, revision: str = "2") -> Json:
    return {
        "metadata": {
            "name": "clips-workers",
            "namespace": "ns",
            "uid": "d-uid",
            "generation": generation,
            "resourceVersion": "5",
            "labels": LABELS,
            "annotations": {w.REVISION_ANNOTATION: revision},
        },
        "spec": {"replicas": replicas},
        "status": {"observedGeneration": observed},
    }


def replicaset(
    name: str, revision: str, spec: int, status: int, template_hash: str = "aaa"
) -> Json:
    return {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "generation": 1,
            "resourceVersion": "3",
            "labels": {**LABELS, "pod-template-hash": template_hash},
            "annotations": {w.REVISION_ANNOTATION: revision},
            "ownerReferences": [{"uid": "d-uid"}],
        },
        "spec": {"replicas": spec},
        "status": {"replicas": status, "observedGeneration": 1},
    }


def test_the_world_keeps_the_newest_version_and_forgets_deleted_objects() -> None:
    world = w.World()
    key = world.seen("pods", None, pod("a", rv=5))
    assert key == ("ns", "clips")
    world.seen("pods", "MODIFIED", pod("a", rv=4, phase="Pending"))  # older: ignored
    assert world.pod(key, "a")["status"]["phase"] == "Running"  # type: ignore[index]
    world.seen("pods", "DELETED", pod("a", rv=6))
    assert world.pods(key) == []
    assert world.seen("pods", None, {"metadata": {"name": "x", "labels": {}}}) is None


def test_pods_are_ranked_from_their_phase_readiness_schedule_and_cost() -> None:
    lowest = {w.DELETION_COST_ANNOTATION: str(LOWEST_DELETION_COST), **PROTECTION_ANNOTATIONS}
    p = w.policy_pod(pod("a", annotations=lowest, ready="False"), "aaa")
    assert (p.phase, p.ready, p.scheduled, p.deletion_cost, p.protected, p.current) == (
        "Running",
        False,
        True,
        LOWEST_DELETION_COST,
        True,
        True,
    )
    q = w.policy_pod(pod("b", node="", phase="Pending", hash="bbb"), "aaa")
    assert (q.scheduled, q.phase, q.current, q.terminating) == (False, "Pending", False, False)
    assert w.policy_pod(pod("c", deletionTimestamp="2026-01-01T00:00:00Z"), None).terminating


def test_a_deployment_is_settled_when_its_one_replicaset_caught_up() -> None:
    current = replicaset("rs2", "2", 2, 2)
    assert w.workload(deployment(2), [current]) == w.Workload(2, settled=True, rollout=False)
    assert not w.workload(deployment(3), [current]).settled  # the ReplicaSet lags
    assert not w.workload(deployment(2, generation=2), [current]).settled  # not observed yet
    old = replicaset("rs1", "1", 1, 1, "old")
    rolling = w.workload(deployment(2), [current, old])
    assert rolling.rollout and not rolling.settled
    assert w.current_replicaset(deployment(2), [old, current]) is current


def test_failing_workers_are_named_from_the_replicaset_or_the_pods() -> None:
    rs = replicaset("rs2", "2", 2, 0)
    rs["status"]["conditions"] = [
        {"type": "ReplicaFailure", "status": "True", "message": "forbidden: exceeded quota"}
    ]
    assert "exceeded quota" in (w.failing_reason([], [rs]) or "")
    crashing = pod("a")
    crashing["status"]["containerStatuses"] = [{"state": {"waiting": {"reason": "ErrImagePull"}}}]
    assert w.failing_reason([crashing], []) == "pod a: ErrImagePull"
    assert w.failing_reason([pod("b")], [replicaset("rs2", "2", 1, 1)]) is None
