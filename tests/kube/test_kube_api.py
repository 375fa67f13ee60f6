"""The API server is real: versions, CRDs with a status subresource, watches, RBAC, kubectl."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from devtools.localkube import PINNED, ApiClient, ApiError, LocalCluster
from devtools.localkube.api import PATCH_MERGE, Json

pytestmark = pytest.mark.kube

GROUP = "localkube.test"
PLURAL = "widgets"


def _crd() -> Json:
    schema = {
        "type": "object",
        "properties": {
            "spec": {"type": "object", "properties": {"size": {"type": "integer"}}},
            "status": {"type": "object", "properties": {"phase": {"type": "string"}}},
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"plural": PLURAL, "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                    "subresources": {"status": {}},
                }
            ],
        },
    }


def _established(crd: Json) -> bool:
    return any(
        c["type"] == "Established" and c["status"] == "True"
        for c in (crd.get("status") or {}).get("conditions") or []
    )


def test_versions_and_tools(kube_cluster: LocalCluster, kubeconfig: Path) -> None:
    version = kube_cluster.admin_client().get("/version")
    assert version["gitVersion"] == PINNED.kubernetes

    out = kube_cluster.kubectl("get", "nodes", "-o", "json")
    nodes = json.loads(out)["items"]
    assert sorted(n["metadata"]["name"] for n in nodes) == kube_cluster.state.nodes
    assert all(n["status"]["nodeInfo"]["kubeletVersion"].startswith("kwok-") for n in nodes)

    client_version = json.loads(kube_cluster.kubectl("version", "-o", "json"))["clientVersion"]
    assert client_version["minor"] in {"36", "37"}, "kubectl outside the supported skew"
    # Helm v4 reads the Kubernetes version of its client libraries (v3 assumed 1.20).
    assert f'KubeClientVersion:"v1.{PINNED.kubernetes_minor}"' in kube_cluster.helm("version")
    assert kube_cluster.helm("list", "--all-namespaces", "-q").strip() == ""
    assert Path(kubeconfig).is_file()


def test_custom_resource_with_status_subresource_is_watched_and_status_patched(
    kube_admin: ApiClient, kube_namespace: str
) -> None:
    crd_path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{PLURAL}.{GROUP}"
    try:
        kube_admin.create("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", _crd())
    except ApiError as exc:
        if exc.status != 409:  # installed once per session; a rerun in the session finds it
            raise
    kube_admin.wait_for(crd_path, _established, what="the CRD to be established")
    collection = f"/apis/{GROUP}/v1/namespaces/{kube_namespace}/{PLURAL}"
    kube_admin.wait_for(collection, lambda _: True, what="the CRD's endpoint to be served")

    listed = kube_admin.get(collection)
    events: list[Json] = []
    watching = threading.Event()

    def watch() -> None:
        watching.set()
        for event in kube_admin.watch(
            collection, resource_version=listed["metadata"]["resourceVersion"], timeout_s=20
        ):
            events.append(event)
            if event["type"] == "MODIFIED" and event["object"].get("status"):
                return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    watching.wait(5)

    created = kube_admin.create(
        collection,
        {
            "apiVersion": f"{GROUP}/v1",
            "kind": "Widget",
            "metadata": {"name": "w1"},
            "spec": {"size": 3},
            "status": {"phase": "ignored-on-create"},
        },
    )
    # With a status subresource, the main endpoint drops status writes...
    assert "status" not in created or not created["status"]
    patched = kube_admin.patch(f"{collection}/w1/status", {"status": {"phase": "Running"}})
    assert patched["status"] == {"phase": "Running"}
    # ...and the status endpoint ignores spec changes.
    again = kube_admin.patch(f"{collection}/w1/status", {"spec": {"size": 9}}, PATCH_MERGE)
    assert again["spec"] == {"size": 3}

    watcher.join(25)
    assert not watcher.is_alive(), f"the watch did not see the status change: {events}"
    assert [e["type"] for e in events][:2] == ["ADDED", "MODIFIED"]
    assert events[-1]["object"]["status"] == {"phase": "Running"}


def test_rbac_refuses_a_service_account_until_a_role_allows_it(
    kube_admin: ApiClient, kube_namespace: str
) -> None:
    ns = kube_namespace
    kube_admin.create(
        f"/api/v1/namespaces/{ns}/serviceaccounts",
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "robot"}},
    )
    token = kube_admin.create(
        f"/api/v1/namespaces/{ns}/serviceaccounts/robot/token",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}},
    )["status"]["token"]
    robot = kube_admin.with_token(token)

    review = robot.create(
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
    )
    assert review["status"]["userInfo"]["username"] == f"system:serviceaccount:{ns}:robot"

    with pytest.raises(ApiError) as refused:
        robot.get(f"/api/v1/namespaces/{ns}/pods")
    assert refused.value.status == 403

    kube_admin.create(
        f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "pod-reader"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}],
        },
    )
    kube_admin.create(
        f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "robot-reads-pods"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "pod-reader",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "robot", "namespace": ns}],
        },
    )
    # The authorizer's informer picks the binding up within moments; poll, do not sleep.
    _wait_allowed(robot, f"/api/v1/namespaces/{ns}/pods")
    # Still refused outside the role's namespace and verbs.
    with pytest.raises(ApiError) as other_ns:
        robot.get("/api/v1/namespaces/default/pods")
    assert other_ns.value.status == 403
    with pytest.raises(ApiError) as delete:
        robot.delete(f"/api/v1/namespaces/{ns}/pods/anything")
    assert delete.value.status == 403


def _wait_allowed(client: ApiClient, path: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            client.get(path)
            return
        except ApiError as exc:
            if exc.status != 403 or time.monotonic() > deadline:
                raise
        time.sleep(0.1)
