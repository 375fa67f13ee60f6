"""The aggregation layer is on: an APIService answers through the API server.

A small HTTPS server on loopback stands in for an extension API server (the role KEDA's metrics
adapter plays). It trusts the front proxy's CA that the API server publishes in
`kube-system/extension-apiserver-authentication`, as a real extension server does, and answers
with the identity it was handed; the API server reaches it through an ExternalName Service, the
only kind of Service whose address leads somewhere on a machine without a pod network.
"""

from __future__ import annotations

import base64
import json
import secrets
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID

from devtools.localkube import ApiClient, ApiError
from devtools.localkube.api import Json
from devtools.localkube.pki import FRONT_PROXY_CLIENT, CertificateAuthority

pytestmark = pytest.mark.kube

VERSION = "v1"
RESOURCE = "probes"


class _ProbeServer(ThreadingHTTPServer):
    """Serves discovery for one group version and a `probes` list naming who asked."""

    def __init__(self, group: str, context: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), _ProbeHandler)
        self.group = group
        self.socket = context.wrap_socket(self.socket, server_side=True)
        self.seen: list[Json] = []

    @property
    def port(self) -> int:
        port: int = self.server_address[1]
        return port


class _ProbeHandler(BaseHTTPRequestHandler):
    server: _ProbeServer

    def do_GET(self) -> None:
        base = f"/apis/{self.server.group}/{VERSION}"
        path = self.path.split("?", 1)[0]
        if path == base:
            self._answer(
                {
                    "kind": "APIResourceList",
                    "apiVersion": "v1",
                    "groupVersion": f"{self.server.group}/{VERSION}",
                    "resources": [
                        {"name": RESOURCE, "namespaced": False, "kind": "Probe", "verbs": ["list"]}
                    ],
                }
            )
        elif path == f"{base}/{RESOURCE}":
            peer: Any = self.connection.getpeercert()
            subject = dict(pair[0] for pair in peer["subject"])
            seen = {
                "peer": subject.get("commonName"),
                "user": self.headers.get("X-Remote-User"),
                "groups": self.headers.get_all("X-Remote-Group") or [],
            }
            self.server.seen.append(seen)
            version = f"{self.server.group}/{VERSION}"
            self._answer({"kind": "ProbeList", "apiVersion": version, **seen})
        else:
            self.send_error(404)

    def _answer(self, body: Json) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def probe_server(
    kube_admin: ApiClient, kube_namespace: str, tmp_path: Path
) -> Iterator[tuple[_ProbeServer, CertificateAuthority]]:
    config = kube_admin.get(
        "/api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication"
    )["data"]
    assert json.loads(config["requestheader-allowed-names"]) == [FRONT_PROXY_CLIENT]
    ca = CertificateAuthority("probe-ca")
    served = ca.issue_files(
        tmp_path,
        "probe",
        "probe",
        usages=[ExtendedKeyUsageOID.SERVER_AUTH],
        hosts=[f"probe.{kube_namespace}.svc", "127.0.0.1", "localhost"],
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(served.cert_file, served.key_file)
    # Only the API server's front proxy may speak for a user here.
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata=config["requestheader-client-ca-file"])
    server = _ProbeServer(f"probe-{secrets.token_hex(3)}.localkube.test", context)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server, ca
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_an_apiservice_behind_an_external_name_answers_through_the_api_server(
    kube_admin: ApiClient,
    kube_namespace: str,
    probe_server: tuple[_ProbeServer, CertificateAuthority],
) -> None:
    server, ca = probe_server
    kube_admin.create(
        f"/api/v1/namespaces/{kube_namespace}/services",
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "probe"},
            "spec": {"type": "ExternalName", "externalName": "localhost"},
        },
    )
    name = f"{VERSION}.{server.group}"
    path = f"/apis/apiregistration.k8s.io/v1/apiservices/{name}"
    kube_admin.create(
        "/apis/apiregistration.k8s.io/v1/apiservices",
        {
            "apiVersion": "apiregistration.k8s.io/v1",
            "kind": "APIService",
            "metadata": {"name": name},
            "spec": {
                "group": server.group,
                "version": VERSION,
                "service": {"name": "probe", "namespace": kube_namespace, "port": server.port},
                "caBundle": base64.b64encode(ca.pem).decode(),
                "groupPriorityMinimum": 1000,
                "versionPriority": 15,
            },
        },
    )
    try:
        kube_admin.wait_for(
            path,
            lambda obj: any(
                c["type"] == "Available" and c["status"] == "True"
                for c in (obj.get("status") or {}).get("conditions") or []
            ),
            timeout_s=30,
            what=f"APIService {name} Available",
        )
        answer = kube_admin.get(f"/apis/{server.group}/{VERSION}/{RESOURCE}")
        # The answer came from our server, which saw the front proxy's certificate and the
        # admin's identity in the request headers.
        assert answer["kind"] == "ProbeList"
        assert answer["peer"] == FRONT_PROXY_CLIENT
        assert answer["user"] == "localkube-admin"
        assert "system:masters" in answer["groups"]
        assert server.seen[-1] == {k: answer[k] for k in ("peer", "user", "groups")}
    finally:
        # A cluster-wide APIService left unavailable would break discovery for every later test.
        try:
            kube_admin.delete(path)
        except ApiError as exc:
            if exc.status != 404:
                raise
