"""SIGTERM stops the operator at once, with exit code 0: when all is well (the Lease goes to a
successor at once), when the API server refuses it everything (`helm uninstall` deletes the
chart's RBAC a second or two before the operator's pod gets SIGTERM) and when the API server
answers nothing at all. A pod that outlives its grace period (30 s, the chart's) is SIGKILLed.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from devtools.localkube import ApiClient, LocalCluster
from devtools.localkube.api import Json
from devtools.localkube.errors import ApiError
from devtools.operator_runs import OperatorRun, Operators, operators
from devtools.processes import free_port, wait_until
from devtools.stack import RELEASE, example_bluequeue, install_chart
from tests.kube.operator_support import apply_bluequeue, bq_path

pytestmark = pytest.mark.kube

EXIT_WITHIN_S = 5.0
"""From SIGTERM to the process's end: well below the grace period, whatever the API does."""


def _lease(namespace: str) -> str:
    return f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/blueque-operator"


def _leading(admin: ApiClient, namespace: str) -> str:
    """Waits for a holder of the operator's Lease; its identity."""
    lease = admin.wait_for(
        _lease(namespace), lambda obj: bool(obj["spec"].get("holderIdentity")), what="a leader"
    )
    return str(lease["spec"]["holderIdentity"])


def _terminate(run: OperatorRun) -> tuple[int, float]:
    """SIGTERM, as the kubelet sends it; the exit code and how long the process took."""
    sent = time.monotonic()
    run.process.signal(signal.SIGTERM)
    code = run.process.wait_exit(timeout_s=90)
    took_s = time.monotonic() - sent
    print(f"{run.name}: exit code {code} {took_s:.2f} s after SIGTERM")
    return code, took_s


def test_sigterm_releases_the_lease_and_exits_0_at_once(
    kube_admin: ApiClient, kube_namespace: str, operator_runs: Operators, redis_url: str
) -> None:
    ns = kube_namespace
    run = operator_runs.start([ns], lease_namespace=ns)
    apply_bluequeue(kube_admin, ns, example_bluequeue(redis_url))
    _leading(kube_admin, ns)

    code, took_s = _terminate(run)
    assert (code, took_s < EXIT_WITHIN_S) == (0, True), (took_s, run.log(40))
    # Released, not left to expire: a successor takes over at once.
    assert "holderIdentity" not in kube_admin.get(_lease(ns))["spec"]


def _refused(client: ApiClient, path: str) -> bool:
    try:
        client.get(path)
    except ApiError as exc:
        return exc.status in (401, 403)
    return False


def test_sigterm_after_helm_uninstall_exits_0_at_once(
    kube_cluster: LocalCluster,
    kube_admin: ApiClient,
    kube_namespace: str,
    bluequeue_crd: Json,
    redis_url: str,
    tmp_path: Path,
) -> None:
    """The operator runs with the chart's ServiceAccount alone and leads, a BlueQueue's loop
    running; `helm uninstall` takes its RBAC and its account away; the operator meets the
    refusal (its Lease renewal, every 2 s, logs it); then SIGTERM."""
    ns = kube_namespace
    install_chart(kube_cluster, ns, metrics_port=free_port())
    token = kube_admin.create(
        f"/api/v1/namespaces/{ns}/serviceaccounts/blueque/token",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}},
    )["status"]["token"]
    kubeconfig = kube_cluster.token_kubeconfig(f"operator-{ns}", token)

    with operators(kubeconfig, tmp_path / "operators") as runs:
        run = runs.start([ns], lease_namespace=ns)
        apply_bluequeue(kube_admin, ns, example_bluequeue(redis_url))
        _leading(kube_admin, ns)

        kube_cluster.helm("uninstall", RELEASE, "--namespace", ns, "--wait")
        operator = kube_admin.with_token(token)
        wait_until(lambda: _refused(operator, bq_path(ns)), 10, what="the operator's token refused")
        wait_until(
            lambda: "HTTP 401" in run.log(1000) or "HTTP 403" in run.log(1000),
            10,
            what=lambda: f"a refusal in the operator's log:\n{run.log()}",
        )

        code, took_s = _terminate(run)
        assert (code, took_s < EXIT_WITHIN_S) == (0, True), (took_s, run.log(40))


class SilentRelay:
    """A TCP relay to the API server that can fall silent: after `silence()` it forwards no
    byte either way and keeps every connection open, as an API server that stopped answering
    does (an overloaded etcd, a partition): every call hangs until its client gives up."""

    def __init__(self, port: int) -> None:
        self._target = ("127.0.0.1", port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._silent = threading.Event()
        self._sockets: list[socket.socket] = [self._listener]
        threading.Thread(target=self._accept, name="relay", daemon=True).start()

    def silence(self) -> None:
        self._silent.set()

    def close(self) -> None:
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
                upstream = socket.create_connection(self._target)
            except OSError:
                return
            self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if not self._silent.is_set():
                    sink.sendall(data)


@pytest.fixture
def relay(kube_cluster: LocalCluster) -> Iterator[SilentRelay]:
    relay = SilentRelay(kube_cluster.state.apiserver_port)
    try:
        yield relay
    finally:
        relay.close()


def test_sigterm_while_the_api_server_answers_nothing_exits_0_at_once(
    kubeconfig: Path,
    kube_admin: ApiClient,
    kube_namespace: str,
    bluequeue_crd: Json,
    relay: SilentRelay,
    redis_url: str,
    tmp_path: Path,
) -> None:
    """The operator reaches the API server through the relay and leads, a BlueQueue's loop
    running; the relay falls silent (watches, renewals and the Lease's release hang); the
    operator notices (a renewal times out); then SIGTERM."""
    ns = kube_namespace
    config = yaml.safe_load(kubeconfig.read_text())
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = f"https://127.0.0.1:{relay.port}"
    relayed = tmp_path / "relayed.kubeconfig"
    relayed.write_text(json.dumps(config))

    with operators(relayed, tmp_path / "operators") as runs:
        run = runs.start([ns], lease_namespace=ns)
        apply_bluequeue(kube_admin, ns, example_bluequeue(redis_url))
        holder = _leading(kube_admin, ns)

        relay.silence()
        wait_until(
            lambda: "retrying in" in run.log(1000),
            15,
            what=lambda: f"a renewal failed in the operator's log:\n{run.log()}",
        )
        code, took_s = _terminate(run)
        assert (code, took_s < EXIT_WITHIN_S) == (0, True), (took_s, run.log(40))
    # Nothing could be released: the Lease is left to expire.
    assert kube_admin.get(_lease(ns))["spec"]["holderIdentity"] == holder
