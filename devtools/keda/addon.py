"""KEDA on the local control plane: its operator and metrics adapter as host processes.

What a `kubectl apply` of the release would create is applied from the release's own `config/`
(server-side apply): the namespace, the CRDs (with the release's patches), the service account
`keda/keda-operator`, its ClusterRoles, Roles and bindings (the HPA's service account may read
external metrics; the adapter may delegate authentication), and the APIService
`v1beta1.external.metrics.k8s.io`. Both processes run as that service account, with a token
from the TokenRequest API: KEDA's published RBAC, not the admin's.

Where a pod network would be, loopback stands in:

- The Deployments are not applied: the two binaries run on the host (`devtools.processes`,
  stopped by pid), every port a free loopback port.
- Certificates: one CA, and one certificate for both serving and client use, valid for
  127.0.0.1, localhost and the `keda-*.keda.svc` names, in one directory (`ca.crt`, `tls.crt`,
  `tls.key`) as KEDA mounts its Secret. The operator's own rotation is off
  (`--enable-cert-rotation=false`); the APIService's `caBundle` is set from that CA.
- The adapter reaches the operator's gRPC metrics service at 127.0.0.1 directly, and the API
  server reaches the adapter through an ExternalName Service `keda-metrics-apiserver` naming
  `localhost`, with the APIService's port set to the adapter's (aggregator routing is off, see
  docs/local-cluster.md).
- The admission webhooks are not run (optional in KEDA; nothing here needs them).

Ready when the operator's /readyz answers and the APIService is Available. `stop()` deletes
every ScaledObject first (KEDA holds them with a finalizer, and their namespaces with them),
then the APIService (one left unavailable breaks discovery for the whole cluster), then stops
the processes.
"""

from __future__ import annotations

import base64
import json
import os
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml
from cryptography.x509.oid import ExtendedKeyUsageOID

from devtools.keda.build import KedaBinaries
from devtools.localkube.api import ApiClient, Json
from devtools.localkube.cluster import LocalCluster
from devtools.localkube.errors import ApiError, ClusterError
from devtools.localkube.pki import CertificateAuthority
from devtools.processes import Process, free_port, stop_all, wait_until

__all__ = ["APISERVICE", "NAMESPACE", "SERVICE_ACCOUNT", "Keda", "keda_certificates"]

NAMESPACE = "keda"
SERVICE_ACCOUNT = "keda-operator"
APISERVICE = "v1beta1.external.metrics.k8s.io"
FIELD_MANAGER = "blueque-devtools-keda"
_APISERVICE_PATH = f"/apis/apiregistration.k8s.io/v1/apiservices/{APISERVICE}"
_SERVICES = ("keda-operator", "keda-metrics-apiserver", "keda-admission-webhooks")

#: The release's manifests that a host-process install applies, in its kustomization's order.
_MANIFESTS = (
    "general/namespace.yaml",
    "crd/bases/keda.sh_scaledobjects.yaml",
    "crd/bases/keda.sh_scaledjobs.yaml",
    "crd/bases/keda.sh_triggerauthentications.yaml",
    "crd/bases/keda.sh_clustertriggerauthentications.yaml",
    "crd/bases/eventing.keda.sh_cloudeventsources.yaml",
    "crd/bases/eventing.keda.sh_clustercloudeventsources.yaml",
    "rbac/role.yaml",
    "rbac/role_binding.yaml",
    "rbac/aggregate_cluster_roles.yaml",
    "service_account/service_account.yaml",
    "metrics-server/role.yaml",
    "metrics-server/role_binding.yaml",
    "metrics-server/api_service.yaml",
)
#: JSON-patch files the release's kustomization applies to two CRDs.
_CRD_PATCHES = {
    "scaledobjects.keda.sh": "crd/patches/scaledobject_patch.yaml",
    "scaledjobs.keda.sh": "crd/patches/scaledjob_patch.yaml",
}


def keda_certificates(directory: Path) -> CertificateAuthority:
    """One CA and one serving+client certificate, as KEDA's Secret would mount them."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = CertificateAuthority("keda-ca")
    hosts = ["127.0.0.1", "localhost"]
    for service in _SERVICES:
        hosts += [f"{service}.{NAMESPACE}.svc", f"{service}.{NAMESPACE}.svc.cluster.local"]
    ca.issue_files(
        directory,
        "tls",
        "keda",
        usages=[ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
        hosts=hosts,
    )
    (directory / "ca.crt").write_bytes(ca.pem)
    return ca


class Keda:
    """KEDA started on `cluster` from `binaries`, its files and logs in `work_dir`."""

    def __init__(self, cluster: LocalCluster, binaries: KedaBinaries, work_dir: Path) -> None:
        self.cluster = cluster
        self.binaries = binaries
        self.work_dir = work_dir
        self.operator: Process | None = None
        self.adapter: Process | None = None
        self.ports: dict[str, int] = {}
        self.admin: ApiClient = cluster.admin_client()

    def __enter__(self) -> Keda:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def processes(self) -> list[Process]:
        return [p for p in (self.operator, self.adapter) if p is not None]

    def start(self, *, timeout_s: float = 180.0) -> None:
        deadline = time.monotonic() + timeout_s
        certs = self.work_dir / "certs"
        ca = keda_certificates(certs)
        (self.work_dir / "ca-dir").mkdir(parents=True, exist_ok=True)
        self.ports = {
            name: free_port() for name in ("probe", "metrics", "grpc", "adapter", "adapter-metrics")
        }
        self._apply(ca)
        kubeconfig = self.cluster.token_kubeconfig(SERVICE_ACCOUNT, self._token())
        env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "POD_NAMESPACE": NAMESPACE,
            "WATCH_NAMESPACE": "",
            "KEDA_CLUSTER_OBJECT_NAMESPACE": NAMESPACE,
        }
        try:
            self.operator = Process.start(
                "keda-operator",
                self._operator_argv(certs),
                log_file=self.work_dir / "logs" / "keda-operator.log",
                env=env,
            )
            self.adapter = Process.start(
                "keda-adapter",
                self._adapter_argv(certs, kubeconfig),
                log_file=self.work_dir / "logs" / "keda-adapter.log",
                env=env,
            )
            self._wait(deadline, "the KEDA operator's /readyz", self._operator_ready)
            self._wait(deadline, f"APIService {APISERVICE} Available", self._apiservice_available)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """ScaledObjects, then the APIService, then the processes (by pid)."""
        try:
            if self.operator is not None and self.operator.alive():
                self._delete_scaled_objects()
        finally:
            try:
                self.admin.delete(_APISERVICE_PATH)
            except ApiError as exc:
                if exc.status != 404:
                    raise
            finally:
                stop_all(self.processes, grace_s=10.0)

    def cpu_seconds(self) -> dict[str, float]:
        """User + system CPU so far of each process (from /proc), by name."""
        return {p.name: p.cpu_seconds() for p in self.processes}

    # -- internals ------------------------------------------------------------------------

    def _apply(self, ca: CertificateAuthority) -> None:
        documents: list[Json] = []
        for rel in _MANIFESTS:
            for doc in yaml.safe_load_all((self.binaries.config / rel).read_text()):
                if doc:
                    documents.append(self._adapt(doc, ca))
        service: Json = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "keda-metrics-apiserver", "namespace": NAMESPACE},
            "spec": {"type": "ExternalName", "externalName": "localhost"},
        }
        documents.append(service)
        self._server_side_apply(documents)
        for doc in documents:
            if doc["kind"] == "CustomResourceDefinition":
                self.admin.wait_for(
                    f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{doc['metadata']['name']}",
                    _established,
                    timeout_s=60,
                    what=f"CRD {doc['metadata']['name']} established",
                )

    def _adapt(self, doc: Json, ca: CertificateAuthority) -> Json:
        kind, name = doc["kind"], doc["metadata"]["name"]
        if kind == "CustomResourceDefinition" and name in _CRD_PATCHES:
            patch = yaml.safe_load((self.binaries.config / _CRD_PATCHES[name]).read_text())
            doc = _json_patch(doc, patch)
        if kind == "APIService":
            doc["spec"]["service"]["port"] = self.ports["adapter"]
            doc["spec"]["caBundle"] = base64.b64encode(ca.pem).decode()
        return doc

    def _server_side_apply(self, documents: list[Json]) -> None:
        stream = "\n---\n".join(json.dumps(d) for d in documents)
        self.cluster.kubectl(
            "apply",
            "--server-side",
            "--force-conflicts",
            f"--field-manager={FIELD_MANAGER}",
            "-f",
            "-",
            stdin=stream,
        )

    def _token(self) -> str:
        answer = self.admin.create(
            f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/{SERVICE_ACCOUNT}/token",
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": 24 * 3600},
            },
        )
        token: str = answer["status"]["token"]
        return token

    def _operator_argv(self, certs: Path) -> list[str]:
        return [
            str(self.binaries.operator),
            "--leader-elect",  # as published: a Lease renewed every 2 s, as the operator's
            "--zap-log-level=info",
            "--zap-encoder=console",
            "--zap-time-encoding=rfc3339",
            "--enable-cert-rotation=false",
            f"--cert-dir={certs}",
            f"--ca-dir={self.work_dir / 'ca-dir'}",
            f"--metrics-bind-address=127.0.0.1:{self.ports['metrics']}",
            f"--health-probe-bind-address=127.0.0.1:{self.ports['probe']}",
            f"--metrics-service-bind-address=127.0.0.1:{self.ports['grpc']}",
        ]

    def _adapter_argv(self, certs: Path, kubeconfig: Path) -> list[str]:
        return [
            str(self.binaries.adapter),
            "--bind-address=127.0.0.1",
            f"--secure-port={self.ports['adapter']}",
            f"--tls-cert-file={certs / 'tls.crt'}",
            f"--tls-private-key-file={certs / 'tls.key'}",
            f"--client-ca-file={certs / 'ca.crt'}",
            f"--cert-dir={certs}",
            f"--lister-kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            f"--port={self.ports['adapter-metrics']}",
            f"--metrics-service-address=127.0.0.1:{self.ports['grpc']}",
            "--zap-log-level=error",
        ]

    def _wait(self, deadline: float, what: str, ready: Any) -> None:
        def alive_and_ready() -> bool:
            for process in self.processes:
                if not process.alive():
                    raise ClusterError(
                        f"{process.name} exited while starting; last log lines:\n{process.tail()}"
                    )
            return bool(ready())

        wait_until(
            alive_and_ready, max(0.0, deadline - time.monotonic()), interval_s=0.2, what=what
        )

    def _operator_ready(self) -> bool:
        url = f"http://127.0.0.1:{self.ports['probe']}/readyz"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def _apiservice_available(self) -> bool:
        try:
            obj = self.admin.get(_APISERVICE_PATH)
        except (ApiError, OSError):
            return False
        return any(
            c["type"] == "Available" and c["status"] == "True"
            for c in (obj.get("status") or {}).get("conditions") or []
        )

    def _delete_scaled_objects(self) -> None:
        path = "/apis/keda.sh/v1alpha1/scaledobjects"
        try:
            items = self.admin.get(path)["items"]
        except ApiError as exc:
            if exc.status == 404:
                return
            raise
        for item in items:
            meta = item["metadata"]
            namespace, name = meta["namespace"], meta["name"]
            try:
                self.admin.delete(
                    f"/apis/keda.sh/v1alpha1/namespaces/{namespace}/scaledobjects/{name}"
                )
            except ApiError as exc:
                if exc.status != 404:
                    raise
        wait_until(
            lambda: not self.admin.get(path)["items"],
            60,
            interval_s=0.2,
            what="every ScaledObject gone (KEDA removes its finalizer)",
        )


def _established(crd: Json) -> bool:
    return any(
        c["type"] == "Established" and c["status"] == "True"
        for c in (crd.get("status") or {}).get("conditions") or []
    )


def _json_patch(doc: Json, operations: list[Json]) -> Json:
    """The `add` and `remove` operations of a JSON patch (RFC 6902; all the release's CRD
    patches use), applied to a copy."""
    result: Json = json.loads(json.dumps(doc))
    for op in operations:
        *parents, last = [
            p.replace("~1", "/").replace("~0", "~") for p in op["path"][1:].split("/")
        ]
        target: Any = result
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        if op["op"] == "add" and isinstance(target, list):
            target.insert(len(target) if last == "-" else int(last), op["value"])
        elif op["op"] == "add":
            target[last] = op["value"]
        elif op["op"] == "remove":
            del target[int(last) if isinstance(target, list) else last]
        else:
            raise ClusterError(f"unsupported JSON patch operation in KEDA's CRD patch: {op}")
    return result
