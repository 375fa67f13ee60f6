"""A pod's ServiceAccount on the host: the credentials the kubelet would mount, as a kubeconfig.

A container finds its ServiceAccount's token in /var/run/secrets/kubernetes.io/serviceaccount (a
projected token bound to the pod) and the API server in KUBERNETES_SERVICE_HOST. A host process
can have neither, so the runner hands it the same credentials the way every client also reads
them: a TokenRequest bound to the pod, in a kubeconfig that $KUBECONFIG names. The process then
has exactly the RBAC of its pod's ServiceAccount (how the e2e test runs the chart's operator),
and its token stops working once the pod object is gone, as a projected one does.

Not emulated: the kubelet's refresh of the token before it expires (it lives `TOKEN_TTL_S`; the
tests and the demo end long before), and the mounted files themselves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["TOKEN_TTL_S", "kubeconfig", "mounts_token", "service_account", "token_request"]

Json = dict[str, Any]

TOKEN_TTL_S = 3600
"""What the kubelet asks for a projected token (it refreshes it; the runner does not)."""


def mounts_token(pod: Json) -> bool:
    """Whether the kubelet would mount the token: unless the pod says no
    (`automountServiceAccountToken: false`; a ServiceAccount's own setting is not read)."""
    return (pod.get("spec") or {}).get("automountServiceAccountToken") is not False


def service_account(pod: Json) -> str:
    return str((pod.get("spec") or {}).get("serviceAccountName") or "default")


def token_request(pod: Json, ttl_s: int = TOKEN_TTL_S) -> Json:
    """An authentication.k8s.io/v1 TokenRequest for the pod's ServiceAccount, bound to the pod
    (name and UID): the API server refuses the token once that pod is deleted."""
    meta = pod["metadata"]
    return {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {
            "expirationSeconds": ttl_s,
            "boundObjectRef": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": meta["name"],
                "uid": meta["uid"],
            },
        },
    }


def kubeconfig(server: str, ca_file: Path, token: str, namespace: str) -> Json:
    """A kubeconfig that authenticates with `token`, its default namespace the pod's (as the
    mounted `namespace` file says in a pod)."""
    cluster = {"server": server, "certificate-authority": str(ca_file)}
    context = {"cluster": "cluster", "user": "service-account", "namespace": namespace}
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "cluster", "cluster": cluster}],
        "users": [{"name": "service-account", "user": {"token": token}}],
        "contexts": [{"name": "pod", "context": context}],
        "current-context": "pod",
    }
