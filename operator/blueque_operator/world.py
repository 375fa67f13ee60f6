"""What the watches saw: worker pods, Deployments and ReplicaSets, by BlueQueue.

Kopf's event handlers feed `World` (one dict update per event, no API call); each tick reads
it. The functions below turn those objects into the policy's plain values (`policy.Pod`,
`policy.Workload`), so the policy never sees JSON and the tick never lists anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from blueque_operator.builders import BLUEQUEUE_LABEL
from blueque_operator.policy import (
    DELETION_COST_ANNOTATION,
    PROTECTION_ANNOTATIONS,
    Pod,
    PodPhase,
    Workload,
)

__all__ = [
    "DELETION_COST_ANNOTATION",
    "REVISION_ANNOTATION",
    "Key",
    "Workload",
    "World",
    "current_replicaset",
    "failing_reason",
    "owner_key",
    "pod_template_hash",
    "policy_pod",
    "workload",
]

Json = dict[str, Any]
Key = tuple[str, str]
"""(namespace, BlueQueue name)."""

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
_PHASES: tuple[PodPhase, ...] = ("Pending", "Running", "Succeeded", "Failed", "Unknown")


def owner_key(obj: Mapping[str, Any]) -> Key | None:
    """The BlueQueue an object belongs to, by its label."""
    meta = obj.get("metadata") or {}
    name = (meta.get("labels") or {}).get(BLUEQUEUE_LABEL)
    return None if not name else (str(meta.get("namespace", "")), str(name))


@dataclass
class _Objects:
    pods: dict[str, Json] = field(default_factory=dict)
    deployments: dict[str, Json] = field(default_factory=dict)
    replicasets: dict[str, Json] = field(default_factory=dict)


class World:
    """The latest version of every watched object, by BlueQueue and kind."""

    def __init__(self) -> None:
        self._by_key: dict[Key, _Objects] = {}

    def seen(self, kind: str, event_type: str | None, obj: Json) -> Key | None:
        """Records one watch event (`kind`: pods, deployments or replicasets); returns the
        BlueQueue it belongs to."""
        key = owner_key(obj)
        if key is None:
            return None
        store: dict[str, Json] = getattr(self._by_key.setdefault(key, _Objects()), kind)
        name = str(obj["metadata"]["name"])
        if event_type == "DELETED":
            store.pop(name, None)
        elif _newer(obj, store.get(name)):
            store[name] = obj
        return key

    def pods(self, key: Key) -> list[Json]:
        objects = self._by_key.get(key)
        return [] if objects is None else list(objects.pods.values())

    def pod(self, key: Key, name: str) -> Json | None:
        objects = self._by_key.get(key)
        return None if objects is None else objects.pods.get(name)

    def deployment(self, key: Key, name: str) -> Json | None:
        objects = self._by_key.get(key)
        return None if objects is None else objects.deployments.get(name)

    def replicasets(self, key: Key) -> list[Json]:
        objects = self._by_key.get(key)
        return [] if objects is None else list(objects.replicasets.values())

    def forget(self, key: Key) -> None:
        self._by_key.pop(key, None)


def _newer(obj: Json, known: Json | None) -> bool:
    if known is None:
        return True
    try:
        return int(obj["metadata"]["resourceVersion"]) >= int(known["metadata"]["resourceVersion"])
    except (KeyError, ValueError):
        return True


# -- into the policy's values ------------------------------------------------------------------


def _condition(obj: Json, kind: str) -> str | None:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind:
            return str(condition.get("status"))
    return None


def current_replicaset(deployment: Json, replicasets: list[Json]) -> Json | None:
    """The ReplicaSet of the Deployment's current revision."""
    revision = ((deployment.get("metadata") or {}).get("annotations") or {}).get(
        REVISION_ANNOTATION
    )
    uid = deployment["metadata"].get("uid")
    for rs in replicasets:
        meta = rs.get("metadata") or {}
        owned = any(ref.get("uid") == uid for ref in meta.get("ownerReferences") or [])
        if owned and (meta.get("annotations") or {}).get(REVISION_ANNOTATION) == revision:
            return rs
    return None


def workload(deployment: Json, replicasets: list[Json]) -> Workload:
    spec_replicas = int((deployment.get("spec") or {}).get("replicas", 1))
    status = deployment.get("status") or {}
    uid = deployment["metadata"].get("uid")
    owned = [
        rs
        for rs in replicasets
        if any(ref.get("uid") == uid for ref in rs["metadata"].get("ownerReferences") or [])
    ]
    with_pods = [
        rs
        for rs in owned
        if int((rs.get("spec") or {}).get("replicas", 0)) > 0
        or int((rs.get("status") or {}).get("replicas", 0)) > 0
    ]
    current = current_replicaset(deployment, owned)
    settled = (
        int(status.get("observedGeneration", 0)) >= int(deployment["metadata"].get("generation", 0))
        and current is not None
        and int((current.get("spec") or {}).get("replicas", -1)) == spec_replicas
        and int((current.get("status") or {}).get("replicas", -1)) == spec_replicas
        and int((current.get("status") or {}).get("observedGeneration", 0))
        >= int(current["metadata"].get("generation", 0))
        and all(rs is current for rs in with_pods)
    )
    rollout = len([rs for rs in with_pods if rs is not current]) > 0
    return Workload(replicas=spec_replicas, settled=settled, rollout=rollout)


def policy_pod(obj: Json, current_hash: str | None) -> Pod:
    meta = obj.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    status = obj.get("status") or {}
    phase = status.get("phase", "Pending")
    try:
        cost = int(annotations.get(DELETION_COST_ANNOTATION, 0))
    except ValueError:
        cost = 0
    template_hash = (meta.get("labels") or {}).get("pod-template-hash")
    return Pod(
        name=str(meta["name"]),
        phase=phase if phase in _PHASES else "Unknown",
        ready=_condition(obj, "Ready") == "True",
        scheduled=bool((obj.get("spec") or {}).get("nodeName")),
        deletion_cost=cost,
        terminating="deletionTimestamp" in meta,
        current=current_hash is None or template_hash == current_hash,
        protected=all(annotations.get(k) == v for k, v in PROTECTION_ANNOTATIONS.items()),
    )


def pod_template_hash(replicaset: Json | None) -> str | None:
    if replicaset is None:
        return None
    value = (replicaset["metadata"].get("labels") or {}).get("pod-template-hash")
    return None if value is None else str(value)


def parse_time(value: str | None) -> float | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def failing_reason(pods: list[Json], replicasets: list[Json]) -> str | None:
    """Why workers cannot run, when the cluster says so: a ReplicaSet that cannot create pods,
    or a worker container stuck waiting (image pull, crash loop)."""
    for rs in replicasets:
        for condition in (rs.get("status") or {}).get("conditions") or []:
            if condition.get("type") == "ReplicaFailure" and condition.get("status") == "True":
                return f"ReplicaSet {rs['metadata']['name']}: {condition.get('message', '')}"
    stuck = ("CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "CreateContainerConfigError")
    for pod in pods:
        for container in (pod.get("status") or {}).get("containerStatuses") or []:
            waiting = (container.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in stuck:
                return f"pod {pod['metadata']['name']}: {waiting['reason']}"
    return None
