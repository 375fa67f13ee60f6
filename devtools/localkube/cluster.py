"""A real control plane on loopback: etcd, kube-apiserver, controller-manager, scheduler, KWOK.

`LocalCluster` owns one cluster's state directory (certificates, kubeconfigs, etcd data, logs and
a `state.json` naming every process). Everything is started the way envtest and kwokctl's binary
runtime do it, with RBAC on and each component under its own identity, so RBAC bootstrap is
exercised and an operator's permissions can be proven. KWOK plays every kubelet: nodes it manages
carry the annotation `kwok.x-k8s.io/node=fake`, and pods scheduled onto them become Running and
Ready at once; deleted pods disappear at once (no grace period is simulated).

Two switches serve benchmarks: `audit_log=True` starts the API server with an audit log
(`devtools.localkube.audit`: requests counted per user), and `restart_controller_manager(flags)`
restarts the controller-manager with extra flags (the HPA's sync period is one, for the whole
cluster).

Two owners are supported. A test session owns its cluster: the processes die with the Python
process even when it is killed. `python -m devtools.localkube up` leaves the cluster running in
the background, and `down`/`status` find it again through `state.json`.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any

from devtools.errors import ProcessError
from devtools.localkube.api import ApiClient, Json
from devtools.localkube.audit import POLICY, AuditLog
from devtools.localkube.build import Binaries, find_binaries
from devtools.localkube.errors import ApiError, ClusterError
from devtools.localkube.pki import FRONT_PROXY_CLIENT, ClientCert, Pki, create_pki
from devtools.processes import Process, free_port, wait_until

__all__ = ["KWOK_NODE_ANNOTATION", "ClusterState", "LocalCluster", "default_state_dir"]

KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
_SERVICE_CIDR = "10.96.0.0/16"
_SERVICE_IP = "10.96.0.1"
_STATE_FILE = "state.json"
_START_ATTEMPTS = 3


class _PortTakenError(ClusterError):
    """A component could not bind the port picked for it: another process took it first."""


def default_state_dir() -> Path:
    """Where `python -m devtools.localkube up` keeps its cluster, so `down` and `status` find it."""
    root = os.environ.get("BLUEQUE_CACHE_DIR") or str(Path.home() / ".cache" / "blueque")
    return Path(root) / "run" / "localkube"


@dataclass
class ClusterState:
    """What another process needs to find, use and stop a running cluster (state.json)."""

    server: str
    apiserver_port: int
    etcd_port: int
    kubeconfig: str
    ca_file: str
    admin_cert_file: str
    admin_key_file: str
    nodes: list[str]
    components: list[Process] = field(default_factory=list)
    started_at: float = 0.0
    ready_after_s: float = 0.0
    ports: dict[str, int] = field(default_factory=dict)
    audit_log: str = ""
    """The audit log's path; empty when the cluster runs without one."""
    controller_manager_flags: list[str] = field(default_factory=list)
    """The extra flags the controller-manager was last (re)started with."""

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        data = asdict(replace(self, components=[]))
        data["components"] = [c.to_json() for c in self.components]
        tmp.write_text(json.dumps(data, indent=2))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> ClusterState:
        data: dict[str, Any] = json.loads(path.read_text())
        data["components"] = [Process.from_json(c) for c in data.get("components", [])]
        return cls(**data)


class LocalCluster:
    """One control plane in `state_dir`; use as a context manager or call start()/stop()."""

    def __init__(
        self,
        state_dir: Path,
        *,
        binaries: Binaries | None = None,
        node_count: int = 3,
        owned_by_caller: bool = True,
        audit_log: bool = False,
        max_pods: int = 110,
    ) -> None:
        """`max_pods`: each KWOK node's pod capacity (the kubelet's default, 110; raise it for
        a fleet of fake pods: the scheduler leaves pods Pending past it)."""
        self.state_dir = state_dir.resolve()
        self._binaries = binaries
        self.node_count = node_count
        self.max_pods = max_pods
        self.owned_by_caller = owned_by_caller
        self.audit = audit_log
        self._state: ClusterState | None = None

    # -- finding an existing cluster ------------------------------------------------------

    @classmethod
    def attach(cls, state_dir: Path) -> LocalCluster:
        """The cluster recorded in `state_dir` (possibly stopped); ClusterError if none."""
        path = state_dir / _STATE_FILE
        if not path.is_file():
            raise ClusterError(f"no cluster recorded in {state_dir}")
        cluster = cls(state_dir, owned_by_caller=False)
        cluster._state = ClusterState.load(path)
        return cluster

    @property
    def binaries(self) -> Binaries:
        if self._binaries is None:
            self._binaries = find_binaries()
        return self._binaries

    @property
    def state(self) -> ClusterState:
        if self._state is None:
            raise ClusterError("the cluster has not been started")
        return self._state

    @property
    def kubeconfig(self) -> Path:
        """Admin kubeconfig (group system:masters), as kubectl, Kopf and the clients read it."""
        return Path(self.state.kubeconfig)

    def admin_client(self) -> ApiClient:
        state = self.state
        return ApiClient(
            "127.0.0.1",
            state.apiserver_port,
            Path(state.ca_file),
            cert_file=Path(state.admin_cert_file),
            key_file=Path(state.admin_key_file),
        )

    def audit_log(self) -> AuditLog:
        """The audit log; ClusterError when the cluster was started without `audit_log=True`."""
        if not self.state.audit_log:
            raise ClusterError("this cluster was started without an audit log")
        return AuditLog(Path(self.state.audit_log))

    def token_kubeconfig(self, name: str, token: str) -> Path:
        """A kubeconfig that authenticates with `token` (a service account's, from the
        TokenRequest API): how an add-on runs under its own identity and RBAC."""
        state = self.state
        config = _kubeconfig(name, state.server, Path(state.ca_file).read_bytes(), {"token": token})
        path = self.state_dir / f"{name}.kubeconfig"
        path.write_text(json.dumps(config, indent=2))
        path.chmod(0o600)
        return path

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        """Run kubectl as the admin against this cluster; its stdout, ClusterError on failure."""
        return self._run_tool(self.binaries.kubectl, args, stdin)

    def helm(self, *args: str, stdin: str | None = None) -> str:
        """Run the built Helm as the admin against this cluster; its stdout."""
        return self._run_tool(self.binaries.helm, args, stdin)

    def _run_tool(self, tool: Path, args: tuple[str, ...], stdin: str | None) -> str:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        done = subprocess.run(
            [str(tool), *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=120,
        )
        if done.returncode != 0:
            raise ClusterError(f"{tool.name} {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    def alive(self) -> dict[str, bool]:
        return {c.name: c.alive() for c in self.state.components}

    def rss_bytes(self) -> int:
        """Resident memory of all component processes together."""
        return sum(c.rss_bytes() for c in self.state.components)

    # -- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self, *, timeout_s: float = 120.0) -> None:
        """Start every component and return once the API is healthy and the nodes are Ready.

        Ports are picked free but bound a moment later by the components; if another process
        takes one in between, the component exits with "address already in use" and the whole
        start is retried on new ports.
        """
        for attempt in range(1, _START_ATTEMPTS + 1):
            try:
                self._start_once(timeout_s)
                return
            except _PortTakenError:
                if attempt == _START_ATTEMPTS:
                    raise

    def _start_once(self, timeout_s: float) -> None:
        binaries = self.binaries
        self._refuse_if_running()
        shutil.rmtree(self.state_dir, ignore_errors=True)
        for sub in ("pki", "logs", "etcd", "certs"):
            (self.state_dir / sub).mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        deadline = started + timeout_s
        pki = create_pki(self.state_dir / "pki", _SERVICE_IP)
        ports = {name: free_port() for name in ("etcd", "peer", "api", "kcm", "sched", "kwok")}
        server = f"https://127.0.0.1:{ports['api']}"
        self._state = ClusterState(
            server=server,
            apiserver_port=ports["api"],
            etcd_port=ports["etcd"],
            kubeconfig=str(self._write_kubeconfig("admin", server, pki, pki.admin)),
            ca_file=str(pki.ca_file),
            admin_cert_file=str(pki.admin.cert_file),
            admin_key_file=str(pki.admin.key_file),
            nodes=[f"kwok-node-{i}" for i in range(self.node_count)],
            started_at=time.time(),
            ports=ports,
        )
        if self.audit:
            (self.state_dir / "audit-policy.yaml").write_text(POLICY)
            self.state.audit_log = str(self.state_dir / "logs" / "audit.log")
        try:
            self._launch("etcd", self._etcd_argv(binaries, ports))
            self._wait(deadline, "etcd /health", lambda: _etcd_healthy(ports["etcd"]))
            self._launch("kube-apiserver", self._apiserver_argv(binaries, ports, pki))
            admin = self.admin_client()
            self._wait(deadline, "kube-apiserver /readyz", admin.healthy)
            self._write_kubeconfig("controller-manager", server, pki, pki.controller_manager)
            sched_config = self._write_kubeconfig("scheduler", server, pki, pki.scheduler)
            kwok_config = self._write_kubeconfig("kwok", server, pki, pki.kwok)
            self._launch("kube-controller-manager", self._kcm_argv(binaries, ports["kcm"], []))
            self._launch("kube-scheduler", self._scheduler_argv(binaries, ports, sched_config))
            self._launch("kwok", self._kwok_argv(binaries, ports, kwok_config))
            self._create_nodes(admin)
            self._wait_ready(admin, ports, deadline)
            # A health check answered by some other process on a stolen port must not pass
            # for ours: every component must still be running now.
            self._check_alive()
        except BaseException:
            self._stop_components()
            raise
        self.state.ready_after_s = time.monotonic() - started
        self.state.save(self.state_dir / _STATE_FILE)

    def restart_controller_manager(
        self, extra_flags: Sequence[str] = (), *, timeout_s: float = 60.0
    ) -> None:
        """Stop the controller-manager (by pid) and start it again with `extra_flags` (e.g.
        `--horizontal-pod-autoscaler-sync-period=1s`) instead of those it had; returns once it
        answers /healthz. Its controllers start from fresh informers, as after a failover."""
        state = self.state
        old = next(c for c in state.components if c.name == "kube-controller-manager")
        old.stop()
        state.components.remove(old)
        state.ports["kcm"] = port = free_port()
        state.controller_manager_flags = list(extra_flags)
        self._launch("kube-controller-manager", self._kcm_argv(self.binaries, port, extra_flags))
        deadline = time.monotonic() + timeout_s
        self._wait(deadline, "kube-controller-manager /healthz", lambda: _https_ok(port))

    def stop(self, *, remove_state: bool = True) -> None:
        """Stop every recorded process (by pid) and remove the state directory."""
        if self._state is not None:
            self._stop_components()
        if remove_state:
            shutil.rmtree(self.state_dir, ignore_errors=True)
        self._state = None

    # -- internals ------------------------------------------------------------------------

    def _refuse_if_running(self) -> None:
        path = self.state_dir / _STATE_FILE
        if not path.is_file():
            return
        previous = ClusterState.load(path)
        running = [c.name for c in previous.components if c.alive()]
        if running:
            raise ClusterError(
                f"a cluster is already running from {self.state_dir} ({', '.join(running)}); "
                "stop it first (python -m devtools.localkube down)"
            )

    def _launch(self, name: str, argv: list[str]) -> None:
        log = self.state_dir / "logs" / f"{name}.log"
        component = Process.start(
            name, argv, log_file=log, cwd=self.state_dir, die_with_parent=self.owned_by_caller
        )
        self.state.components.append(component)
        # Recorded at once, so that `down` can stop a cluster whose start failed half-way.
        self.state.save(self.state_dir / _STATE_FILE)

    def _stop_components(self) -> None:
        errors = []
        for component in reversed(self.state.components):
            try:
                component.stop()
            except ProcessError as exc:
                errors.append(str(exc))
        if errors:
            raise ClusterError("; ".join(errors))

    def _check_alive(self) -> None:
        for component in self.state.components:
            if not component.alive():
                tail = component.tail()
                error = _PortTakenError if "address already in use" in tail else ClusterError
                raise error(f"{component.name} exited during start; last log lines:\n{tail}")

    def _wait(self, deadline: float, what: str, ready: Callable[[], bool]) -> None:
        def alive_and_ready() -> bool:
            self._check_alive()
            return ready()

        wait_until(alive_and_ready, deadline - time.monotonic(), interval_s=0.1, what=what)

    def _write_kubeconfig(self, user: str, server: str, pki: Pki, cert: ClientCert) -> Path:
        credentials = {
            "client-certificate-data": _b64(cert.cert_pem),
            "client-key-data": _b64(cert.key_pem),
        }
        config = _kubeconfig(user, server, pki.ca_pem, credentials)
        path = self.state_dir / f"{user}.kubeconfig"
        path.write_text(json.dumps(config, indent=2))
        path.chmod(0o600)
        return path

    def _etcd_argv(self, b: Binaries, ports: dict[str, int]) -> list[str]:
        client = f"http://127.0.0.1:{ports['etcd']}"
        peer = f"http://127.0.0.1:{ports['peer']}"
        return [
            str(b.etcd),
            "--name=localkube",
            f"--data-dir={self.state_dir / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=localkube={peer}",
            "--unsafe-no-fsync=true",
            "--log-level=warn",
        ]

    def _apiserver_argv(self, b: Binaries, ports: dict[str, int], pki: Pki) -> list[str]:
        return [
            str(b.kube_apiserver),
            f"--etcd-servers=http://127.0.0.1:{ports['etcd']}",
            f"--cert-dir={self.state_dir / 'certs'}",
            f"--tls-cert-file={pki.serving_cert_file}",
            f"--tls-private-key-file={pki.serving_key_file}",
            f"--secure-port={ports['api']}",
            "--bind-address=127.0.0.1",
            # Without it, a machine with no default route makes the API server exit.
            "--advertise-address=127.0.0.1",
            f"--service-cluster-ip-range={_SERVICE_CIDR}",
            "--authorization-mode=RBAC",
            f"--client-ca-file={pki.ca_file}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki.sa_public_key_file}",
            f"--service-account-signing-key-file={pki.sa_private_key_file}",
            "--allow-privileged=true",
            # The `kubernetes` Service cannot point at a loopback address; nothing in the
            # cluster needs it (KWOK pods do not run), so keep it endpoint-less and quiet.
            "--endpoint-reconciler-type=none",
            "--profiling=false",
            # The aggregation layer, always on: requests to an APIService are proxied with the
            # front proxy's client certificate and the caller's identity in these headers, and
            # go to the Service's address (ClusterIP or ExternalName), never to its endpoints
            # (a KWOK pod's IP leads nowhere).
            f"--requestheader-client-ca-file={pki.front_proxy_ca_file}",
            f"--requestheader-allowed-names={FRONT_PROXY_CLIENT}",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={pki.front_proxy_client.cert_file}",
            f"--proxy-client-key-file={pki.front_proxy_client.key_file}",
            "--enable-aggregator-routing=false",
            *self._audit_flags(),
        ]

    def _audit_flags(self) -> list[str]:
        if not self.state.audit_log:
            return []
        return [
            f"--audit-policy-file={self.state_dir / 'audit-policy.yaml'}",
            f"--audit-log-path={self.state.audit_log}",
            "--audit-log-format=json",
            # Written before the response goes out: a count read after a request returned
            # includes it.
            "--audit-log-mode=blocking",
            "--audit-log-maxsize=0",
        ]

    def _kcm_argv(self, b: Binaries, port: int, extra_flags: Sequence[str]) -> list[str]:
        # Paths, not the Pki object: a restart finds the same files in the state directory.
        pki = self.state_dir / "pki"
        return [
            str(b.kube_controller_manager),
            f"--kubeconfig={self.state_dir / 'controller-manager.kubeconfig'}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={self.state_dir / 'certs' / 'kcm'}",
            f"--root-ca-file={pki / 'ca.crt'}",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            # Each controller acts as its own service account, as in a kubeadm cluster.
            "--use-service-account-credentials=true",
            f"--service-cluster-ip-range={_SERVICE_CIDR}",
            "--profiling=false",
            *extra_flags,
        ]

    def _scheduler_argv(self, b: Binaries, ports: dict[str, int], kubeconfig: Path) -> list[str]:
        return [
            str(b.kube_scheduler),
            f"--kubeconfig={kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            f"--secure-port={ports['sched']}",
            f"--cert-dir={self.state_dir / 'certs' / 'scheduler'}",
            "--profiling=false",
        ]

    def _kwok_argv(self, b: Binaries, ports: dict[str, int], kubeconfig: Path) -> list[str]:
        return [
            str(b.kwok),
            f"--kubeconfig={kubeconfig}",
            f"--config={b.kwok_stages}",
            "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake",
            f"--server-address=127.0.0.1:{ports['kwok']}",
            # Leases keep the node lifecycle controller from marking the fake nodes NotReady.
            "--node-lease-duration-seconds=40",
        ]

    def _create_nodes(self, admin: ApiClient) -> None:
        for name in self.state.nodes:
            admin.create("/api/v1/nodes", _node(name, self.max_pods))

    def _wait_ready(self, admin: ApiClient, ports: dict[str, int], deadline: float) -> None:
        self._wait(deadline, "kube-controller-manager /healthz", lambda: _https_ok(ports["kcm"]))
        self._wait(deadline, "kube-scheduler /healthz", lambda: _https_ok(ports["sched"]))
        self._wait(deadline, "KWOK /healthz", lambda: _http_ok(ports["kwok"]))
        self._wait(deadline, "KWOK nodes Ready", lambda: _nodes_ready(admin, self.state.nodes))
        # The token controller's default ServiceAccount is what pods need before they can be
        # admitted: its presence shows the controller-manager is working, not just listening.
        self._wait(
            deadline,
            "the default ServiceAccount",
            lambda: _exists(admin, "/api/v1/namespaces/default/serviceaccounts/default"),
        )


def _kubeconfig(user: str, server: str, ca_pem: bytes, credentials: dict[str, str]) -> Json:
    # JSON is YAML: kubectl, client-go, Kopf and the Python clients all read it.
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "localkube",
                "cluster": {"server": server, "certificate-authority-data": _b64(ca_pem)},
            }
        ],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": "localkube", "context": {"cluster": "localkube", "user": user}}],
        "current-context": "localkube",
    }


def _node(name: str, max_pods: int) -> Json:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {KWOK_NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
            },
        },
        "status": {
            "allocatable": {"cpu": "32", "memory": "256Gi", "pods": str(max_pods)},
            "capacity": {"cpu": "32", "memory": "256Gi", "pods": str(max_pods)},
        },
    }


def _nodes_ready(admin: ApiClient, names: list[str]) -> bool:
    try:
        items = admin.get("/api/v1/nodes")["items"]
    except (ApiError, OSError):
        return False
    ready = {
        node["metadata"]["name"]
        for node in items
        for cond in (node.get("status") or {}).get("conditions") or []
        if cond["type"] == "Ready" and cond["status"] == "True"
    }
    return set(names) <= ready


def _exists(admin: ApiClient, path: str) -> bool:
    try:
        admin.get(path)
    except (ApiError, OSError):
        return False
    return True


def _etcd_healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
            body: Json = json.loads(response.read())
    except (OSError, ValueError):
        return False
    return body.get("health") == "true"


def _http_ok(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _https_ok(port: int) -> bool:
    # The controller-manager and scheduler serve a self-signed certificate on loopback.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(
            f"https://127.0.0.1:{port}/healthz", timeout=2, context=context
        ) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
