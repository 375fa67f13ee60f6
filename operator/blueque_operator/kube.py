"""The operator's Kubernetes calls: plain JSON over the official client, off the event loop.

Kopf watches (pods, Deployments, ReplicaSets, BlueQueues); every read it cannot give and every
write goes through `Kube`. Writes pass `gate()` first: with two operator replicas only the Lease
holder may change anything. The calls run in a worker thread (`asyncio.to_thread`) because the
`kubernetes` client is synchronous; they are few (writes happen on change only).
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import kubernetes
import urllib3

from blueque_operator.errors import KubeError

Json = dict[str, Any]

MERGE_PATCH = "application/merge-patch+json"
BLUEQUEUE_API = "/apis/blueque.io/v1alpha1"

Gate = Callable[[], None]
"""Raises (`NotLeaderError`) when this replica may not write."""


def _allow() -> None:
    return None


def load_api_client() -> Any:
    """A `kubernetes.client.ApiClient` configured as kubectl would be: $KUBECONFIG (or
    ~/.kube/config), else the in-cluster service account."""
    config = kubernetes.client.Configuration()
    try:
        kubernetes.config.load_kube_config(client_configuration=config)  # type: ignore[no-untyped-call]
    except kubernetes.config.ConfigException:
        kubernetes.config.load_incluster_config(client_configuration=config)  # type: ignore[no-untyped-call]
    return kubernetes.client.ApiClient(config)


class Kube:
    """JSON calls on the API server. `gate` is checked before every write."""

    def __init__(self, api: Any, gate: Gate = _allow, timeout_s: float = 10.0) -> None:
        self.api = api
        self.gate = gate
        self.timeout_s = timeout_s

    # -- transport -----------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        query: Mapping[str, str] | None = None,
    ) -> Json | None:
        """One request; the decoded body, None for a 404 on a read, KubeError otherwise."""
        headers = {"Accept": "application/json", "Content-Type": content_type}
        serialized = self.api.param_serialize(
            method=method,
            resource_path=path,
            query_params=list((query or {}).items()),
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            response = self.api.call_api(*serialized, _request_timeout=self.timeout_s)
            data = response.read()
        except kubernetes.client.ApiException as exc:  # transport failures (status 0)
            raise KubeError(exc.status or 0, f"{method} {path}: {exc.reason}") from exc
        except (OSError, urllib3.exceptions.HTTPError) as exc:  # refused, timed out, reset
            raise KubeError(0, f"{method} {path}: {exc}") from exc
        if response.status == 404 and method == "GET":
            return None
        if not 200 <= response.status <= 299:
            raise KubeError(response.status, f"{method} {path}: {_message(data)}")
        decoded: Json = json.loads(data) if data else {}
        return decoded

    async def _request(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        query: Mapping[str, str] | None = None,
    ) -> Json | None:
        if method != "GET":
            self.gate()
        return await asyncio.to_thread(self._call, method, path, body, content_type, query)

    async def _write(
        self, method: str, path: str, body: Any, content_type: str = "application/json"
    ) -> Json:
        result = await self._request(method, path, body, content_type)
        assert result is not None  # only GET answers None
        return result

    # -- reads ---------------------------------------------------------------------------------

    async def get(self, path: str) -> Json | None:
        """Any object by path; None when it does not exist."""
        return await self._request("GET", path)

    async def get_pod(self, namespace: str, name: str) -> Json | None:
        return await self.get(f"/api/v1/namespaces/{namespace}/pods/{name}")

    async def get_node(self, name: str) -> Json | None:
        return await self.get(f"/api/v1/nodes/{name}")

    async def get_deployment(self, namespace: str, name: str) -> Json | None:
        return await self.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}")

    async def read_secret_key(self, namespace: str, name: str, key: str) -> str | None:
        """The decoded value, or None when the Secret or its key is missing."""
        secret = await self.get(f"/api/v1/namespaces/{namespace}/secrets/{name}")
        if secret is None or key not in (secret.get("data") or {}):
            return None
        return base64.b64decode(secret["data"][key]).decode()

    # -- writes --------------------------------------------------------------------------------

    async def create_deployment(self, namespace: str, body: Json) -> Json:
        return await self._write("POST", f"/apis/apps/v1/namespaces/{namespace}/deployments", body)

    async def patch_deployment(self, namespace: str, name: str, patch: Json) -> Json:
        path = f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}"
        return await self._write("PATCH", path, patch, MERGE_PATCH)

    async def delete_deployment(self, namespace: str, name: str) -> None:
        path = f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}"
        await self._write("DELETE", path, {"propagationPolicy": "Background"})

    async def scale(self, namespace: str, name: str, replicas: int) -> Json:
        path = f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"
        return await self._write("PATCH", path, {"spec": {"replicas": replicas}}, MERGE_PATCH)

    async def annotate_pod(
        self, namespace: str, name: str, annotations: Mapping[str, str | None]
    ) -> Json:
        """Sets (or with None removes) annotations of a pod."""
        path = f"/api/v1/namespaces/{namespace}/pods/{name}"
        body = {"metadata": {"annotations": dict(annotations)}}
        return await self._write("PATCH", path, body, MERGE_PATCH)

    async def patch_status(self, namespace: str, name: str, status: Json) -> Json:
        path = f"{BLUEQUEUE_API}/namespaces/{namespace}/bluequeues/{name}/status"
        return await self._write("PATCH", path, {"status": status}, MERGE_PATCH)

    async def post_event(
        self, involved: Json, event_type: str, reason: str, message: str, component: str
    ) -> Json:
        """A core/v1 Event about `involved` (an object with apiVersion, kind, metadata)."""
        meta = involved["metadata"]
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{meta['name']}.{secrets.token_hex(8)}",
                "namespace": meta["namespace"],
            },
            "involvedObject": {
                "apiVersion": involved["apiVersion"],
                "kind": involved["kind"],
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta["uid"],
            },
            "type": event_type,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": component},
            "reportingComponent": component,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        return await self._write("POST", f"/api/v1/namespaces/{meta['namespace']}/events", body)


def _message(data: bytes) -> str:
    try:
        status = json.loads(data)
    except ValueError:
        return data[:300].decode(errors="replace")
    return str(status.get("message", status)) if isinstance(status, dict) else str(status)
