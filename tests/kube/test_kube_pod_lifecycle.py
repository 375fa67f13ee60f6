"""What a pod's end looks like on this cluster, which the operator's reaper will depend on.

KWOK's fast pod stages remove a deleted pod at once (no grace period is simulated), so a plain
delete goes straight to a watch DELETED event. A finalizer is how a test keeps a pod in the
Terminating state (deletionTimestamp set, object still there) for as long as it wants.
"""

from __future__ import annotations

import pytest

from devtools.localkube import ApiClient
from devtools.localkube.api import PATCH_JSON, Json

pytestmark = pytest.mark.kube


def _pod(name: str, finalizers: list[str] | None = None) -> Json:
    metadata: Json = {"name": name}
    if finalizers:
        metadata["finalizers"] = finalizers
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {"containers": [{"name": "c", "image": "registry.invalid/worker:1"}]},
    }


def _running(pod: Json) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running"


def test_a_deleted_pod_is_gone_at_once_unless_a_finalizer_holds_it(
    kube_admin: ApiClient, kube_namespace: str
) -> None:
    pods = f"/api/v1/namespaces/{kube_namespace}/pods"
    kube_admin.create(pods, _pod("plain"))
    kube_admin.create(pods, _pod("held", ["localkube.test/hold"]))
    for name in ("plain", "held"):
        kube_admin.wait_for(f"{pods}/{name}", _running, what=f"pod {name} Running")
    listed = kube_admin.get(pods)
    events: list[tuple[str, str, bool]] = []

    kube_admin.delete(f"{pods}/plain")
    kube_admin.delete(f"{pods}/held")
    held = kube_admin.wait_for(
        f"{pods}/held",
        lambda p: "deletionTimestamp" in p["metadata"],
        what="the held pod to be Terminating",
    )
    assert held["metadata"]["finalizers"] == ["localkube.test/hold"]
    kube_admin.patch(f"{pods}/held", [{"op": "remove", "path": "/metadata/finalizers"}], PATCH_JSON)

    for event in kube_admin.watch(
        pods, resource_version=listed["metadata"]["resourceVersion"], timeout_s=30
    ):
        meta = event["object"]["metadata"]
        events.append((event["type"], meta["name"], "deletionTimestamp" in meta))
        if ("DELETED", "held", True) in events and any(
            e[:2] == ("DELETED", "plain") for e in events
        ):
            break

    # The held pod was seen Terminating (MODIFIED with a deletionTimestamp) before it went.
    held_events = [e for e in events if e[1] == "held"]
    assert ("MODIFIED", "held", True) in held_events
    assert held_events[-1] == ("DELETED", "held", True)
    assert any(e[:2] == ("DELETED", "plain") for e in events)
