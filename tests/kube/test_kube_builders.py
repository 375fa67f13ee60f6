"""The built worker Deployment on the real API server: valid, and its pods admitted by the
restricted Pod Security Standard with no warning (a server-side dry run: nothing is created,
so no CRD and no garbage collection of a Deployment whose owner does not exist)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from blueque_operator import build_deployment, parse_bluequeue
from devtools.localkube import ApiClient, ApiError, ClusterError, LocalCluster

pytestmark = pytest.mark.kube

UID = "6c1e2b7a-0d4f-4f59-9a43-3d1f0c9b7e21"


def built(worker: dict[str, Any], namespace: str) -> dict[str, Any]:
    obj = {
        "metadata": {"name": "videos", "uid": UID},
        "spec": {
            "redis": {
                "url": "redis://redis.default.svc:6379/0",
                "passwordSecretRef": {"name": "redis-auth", "key": "password"},
                "keyPrefix": "media",
            },
            "worker": worker,
        },
    }
    return build_deployment(parse_bluequeue(obj), namespace=namespace, uid=UID, replicas=2)


def without_security_contexts(deployment: dict[str, Any]) -> dict[str, Any]:
    bare = copy.deepcopy(deployment)
    pod_spec = bare["spec"]["template"]["spec"]
    pod_spec.pop("securityContext")
    for container in pod_spec["containers"] + pod_spec.get("initContainers", []):
        container.pop("securityContext")
    return bare


def dry_run_deployment(kube: LocalCluster, deployment: dict[str, Any]) -> str:
    # kubectl turns the API server's Warning headers (where PodSecurity reports a workload's
    # template) into a failure.
    return kube.kubectl(
        "create",
        "--dry-run=server",
        "--warnings-as-errors",
        "-f",
        "-",
        stdin=json.dumps(deployment),
    )


def dry_run_pod(admin: ApiClient, deployment: dict[str, Any]) -> dict[str, Any]:
    template = deployment["spec"]["template"]
    namespace = deployment["metadata"]["namespace"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {**template["metadata"], "name": "videos-workers-probe"},
        "spec": template["spec"],
    }
    return admin.request(
        "POST", f"/api/v1/namespaces/{namespace}/pods", pod, query={"dryRun": "All"}
    )


def test_the_built_deployment_passes_the_restricted_standard(
    kube_cluster: LocalCluster, kube_admin: ApiClient, kube_namespace: str
) -> None:
    kube_admin.patch(
        f"/api/v1/namespaces/{kube_namespace}",
        {
            "metadata": {
                "labels": {
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/warn": "restricted",
                }
            }
        },
    )
    short = built({"image": "example/videos:1.0", "args": ["--task", "t:f"]}, kube_namespace)
    template = built(
        {
            "template": {
                "spec": {
                    "initContainers": [{"name": "fetch", "image": "busybox:1"}],
                    "containers": [
                        {"name": "proxy", "image": "proxy:1"},
                        {"name": "worker", "image": "example/videos:1.0"},
                    ],
                    "volumes": [{"name": "scratch", "emptyDir": {}}],
                }
            }
        },
        kube_namespace,
    )
    for deployment in (short, template):
        out = dry_run_deployment(kube_cluster, deployment)
        assert "deployment.apps/videos-workers created (server dry run)" in out
        stored = dry_run_pod(kube_admin, deployment)
        env = {e["name"]: e for e in stored["spec"]["containers"][-1]["env"]}
        assert env["BLUEQUE_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "redis-auth"
        # The checks are live: the same objects without the defaults are warned and refused.
        bare = without_security_contexts(deployment)
        with pytest.raises(ClusterError, match="would violate PodSecurity"):
            dry_run_deployment(kube_cluster, bare)
        with pytest.raises(ApiError, match="violates PodSecurity") as refused:
            dry_run_pod(kube_admin, bare)
        assert refused.value.status == 403
