"""The benchmarks' world: a control plane, a redis-server, operators and pod runners.

`KubeBench` starts a `LocalCluster` of its own (KWOK nodes, in a work directory) and a
redis-server, applies the BlueQueue CRD, and hands each measurement a fresh namespace, an
operator process watching it and, where real workers are wanted, a pod runner. Everything is
stopped by pid in reverse order of start, even when a measurement fails; the cluster's logs stay
in the work directory.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from devtools.localkube import ApiClient, LocalCluster, find_binaries
from devtools.localkube.api import Json
from devtools.operator_runs import CRDS, OperatorRun, operators
from devtools.podrunner import PodRunner, RunnerOptions
from devtools.processes import wait_until
from devtools.redis_servers import RedisServer

ROOT = Path(__file__).resolve().parents[2]
GROUP_VERSION = "blueque.io/v1alpha1"
WORKER_SELECTOR = "app.kubernetes.io/name=blueque-worker"
TASK = "bench.kube.tasks:run"
FAST_WORKER_ENV: list[Json] = [
    # An idle worker sees its drain (and a SIGTERM) within one claim: 0.2 s, not 5 s.
    {"name": "BLUEQUE_CLAIM_TIMEOUT_S", "value": "0.2"},
    {"name": "BLUEQUE_HEARTBEAT_INTERVAL_S", "value": "0.5"},
]


def bq_path(namespace: str, name: str = "") -> str:
    base = f"/apis/{GROUP_VERSION}/namespaces/{namespace}/bluequeues"
    return f"{base}/{name}" if name else base


def deployment_path(namespace: str, name: str = "") -> str:
    base = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    return f"{base}/{name}" if name else base


def bluequeue(
    name: str,
    redis_url: str,
    *,
    scaling: Json | None = None,
    tasks: Json | None = None,
    grace_s: int = 30,
) -> Json:
    """A BlueQueue whose workers run `TASK` (queue = its name)."""
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "BlueQueue",
        "metadata": {"name": name},
        "spec": {
            "redis": {"url": redis_url},
            "worker": {
                "image": "registry.invalid/blueque-bench:1",
                "args": ["--task", TASK],
                "env": FAST_WORKER_ENV,
                "terminationGracePeriodSeconds": grace_s,
            },
            "scaling": {"minReplicas": 0, "maxReplicas": 4, **(scaling or {})},
            **({"tasks": tasks} if tasks is not None else {}),
        },
    }


def condition(obj: Json, kind: str) -> str | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return str(c.get("status"))
    return None


class KubeBench:
    """Use as a context manager; `workdir` keeps the logs (cluster, operators, pods)."""

    def __init__(
        self,
        workdir: Path,
        *,
        max_pods: int = 110,
        audit_log: bool = False,
        operator_src: Path | None = None,
    ) -> None:
        """`operator_src`: run the operator (and the library it imports) from that checkout
        instead of this one, to compare two versions on one machine."""
        self.workdir = workdir
        self.max_pods = max_pods
        self.audit_log = audit_log
        self.operator_src = operator_src
        self._stack = contextlib.ExitStack()
        self._cluster: LocalCluster | None = None
        self._redis: RedisServer | None = None

    @property
    def cluster(self) -> LocalCluster:
        assert self._cluster is not None, "not started"
        return self._cluster

    @property
    def redis(self) -> RedisServer:
        assert self._redis is not None, "not started"
        return self._redis

    @property
    def admin(self) -> ApiClient:
        return self.cluster.admin_client()

    def __enter__(self) -> KubeBench:
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stack.close()

    def _start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        cluster = LocalCluster(
            self.workdir / "cluster",
            binaries=find_binaries(),
            max_pods=self.max_pods,
            audit_log=self.audit_log,
        )
        cluster.start()  # stops what it started if it fails
        self._cluster = cluster
        self._stack.callback(cluster.stop, remove_state=False)
        self._redis = RedisServer().start()
        self._stack.callback(self._redis.stop)
        cluster.kubectl("apply", "-f", str(CRDS))
        admin = self.admin
        admin.wait_for(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/bluequeues.blueque.io",
            lambda crd: condition(crd, "Established") == "True",
            what="the BlueQueue CRD to be established",
        )
        admin.wait_for("/apis/blueque.io/v1alpha1/bluequeues", lambda _: True, what="its API")

    # -- per measurement ----------------------------------------------------------------------

    @contextlib.contextmanager
    def namespace(self, stem: str) -> Iterator[str]:
        """A fresh namespace, deleted afterwards (not awaited)."""
        name = f"{stem}-{secrets.token_hex(3)}"
        admin = self.admin
        admin.create(
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
        )
        try:
            yield name
        finally:
            with contextlib.suppress(Exception):
                admin.delete(f"/api/v1/namespaces/{name}")

    @contextlib.contextmanager
    def operator(self, namespaces: list[str], stem: str) -> Iterator[OperatorRun]:
        """One operator process watching `namespaces` (its Lease in the first), stopped by pid."""
        env = {}
        if self.operator_src is not None:
            src = self.operator_src.resolve()
            env["PYTHONPATH"] = os.pathsep.join([str(src / "operator"), str(src)])
        with operators(self.cluster.kubeconfig, self.workdir / "operators" / stem) as runs:
            yield runs.start(namespaces, lease_namespace=namespaces[0], env=env)

    @contextlib.contextmanager
    def pod_runner(self, namespace: str) -> Iterator[PodRunner]:
        """Runs the namespace's worker pods as host processes (the repository root as their
        working directory, so `TASK` imports); every process stopped on exit."""
        options = RunnerOptions(
            log_dir=self.workdir / "pods" / namespace, namespaces=(namespace,), cwd=ROOT
        )
        with PodRunner(self.admin, options) as runner:
            yield runner

    def create_bluequeue(self, namespace: str, body: Json, timeout_s: float = 60) -> Json:
        """Creates it and returns it once the operator reports it Ready."""
        admin = self.admin
        admin.create(bq_path(namespace), body)
        name = body["metadata"]["name"]
        found: Json = admin.wait_for(
            bq_path(namespace, name),
            lambda obj: condition(obj, "Ready") == "True",
            timeout_s=timeout_s,
            what=f"BlueQueue {name} Ready",
            poll_s=0.2,
        )
        return found

    def worker_pods(self, namespace: str, selector: str = WORKER_SELECTOR) -> list[Json]:
        found: list[Json] = self.admin.get(
            f"/api/v1/namespaces/{namespace}/pods", {"labelSelector": selector}
        )["items"]
        return found

    def wait_no_pods(self, namespace: str, selector: str, timeout_s: float = 60) -> None:
        wait_until(
            lambda: not self.worker_pods(namespace, selector),
            timeout_s,
            interval_s=0.1,
            what=f"no pods matching {selector} in {namespace}",
        )

    def replicas(self, namespace: str, deployment: str) -> int | None:
        try:
            obj = self.admin.get(deployment_path(namespace, deployment))
        except Exception:
            return None
        return int(obj["spec"].get("replicas", 0))


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (its threads included), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return ticks / os.sysconf("SC_CLK_TCK")


def proc_memory_bytes(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in bytes."""
    found: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) * 1024
    return found


def pause(seconds: float) -> None:
    """A deliberate wait (a phase offset, a steady-state window): never a wait for an event."""
    time.sleep(seconds)
