"""Blueque on the local control plane as a user installs it: the chart (`helm install`), the
example BlueQueue (examples/bluequeue.yaml, `kubectl apply`), and two pod runners that play the
kubelet for the pods that follow: the chart's operator pod and the BlueQueue's worker pods.
Shared by the e2e test and `./dev demo`.

The operator pod runs the operator image's entrypoint (`blueque-operator`, operator/Dockerfile)
with the args and env of the pod the chart's Deployment made, and the token of the chart's
ServiceAccount (`RunnerOptions.service_account_tokens`): exactly the RBAC the chart grants, and
`helm uninstall` stops it by deleting its pod, as on a real node. The worker pods run
`blueque worker` with examples/ on PYTHONPATH, as examples/Dockerfile puts tasks.py in /app.

Only the chart's namespaces mode is used (a Role in one namespace): the cluster mode's
ClusterRole would outlive a test namespace and span the other tests'.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from devtools.localkube.api import ApiClient, Json
from devtools.localkube.cluster import LocalCluster
from devtools.localkube.errors import ApiError
from devtools.podrunner import PodRunner, RunnerOptions

__all__ = [
    "CHART",
    "EXAMPLES",
    "EXAMPLE_BLUEQUEUE",
    "FAST_WORKER_ENV",
    "OPERATOR_ENTRYPOINT",
    "OPERATOR_SELECTOR",
    "RELEASE",
    "apply_manifest",
    "example_bluequeue",
    "force_delete_pod",
    "install_chart",
    "operator_runner",
    "uninstall_chart",
    "wait_crd_established",
    "worker_runner",
]

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "blueque"
EXAMPLES = ROOT / "examples"
EXAMPLE_BLUEQUEUE = EXAMPLES / "bluequeue.yaml"
RELEASE = "blueque"
OPERATOR_IMAGE = "registry.invalid/blueque-operator"
"""Never pulled: KWOK runs no container, the runner runs the host's venv."""
OPERATOR_ENTRYPOINT: tuple[str, ...] = ("blueque-operator",)
"""operator/Dockerfile's ENTRYPOINT (the chart's container gives args only)."""
OPERATOR_SELECTOR = "app.kubernetes.io/part-of=blueque,app.kubernetes.io/component=operator"
"""The chart's operator pods (templates/_helpers.tpl), not the workers."""
CRD_NAME = "bluequeues.blueque.io"

FAST_WORKER_ENV: list[Json] = [
    # An idle worker notices a drain or SIGTERM within one claim: short, for tests and the demo.
    {"name": "BLUEQUE_CLAIM_TIMEOUT_S", "value": "0.2"},
    {"name": "BLUEQUE_HEARTBEAT_INTERVAL_S", "value": "0.2"},
]


def install_chart(
    cluster: LocalCluster, namespace: str, *, metrics_port: int, values: Sequence[str] = ()
) -> str:
    """`helm install` of charts/blueque in namespaces mode, watching `namespace` (its release
    namespace), the metrics on `metrics_port` (the operator binds it on this host: a free one);
    `values` are more `--set`s. Waits for the operator Deployment; returns Helm's output, NOTES
    included."""
    sets = [f"image.repository={OPERATOR_IMAGE}", "watch.mode=namespaces"]
    sets += [f"metrics.port={metrics_port}", *values]
    args = ["install", RELEASE, str(CHART), "--namespace", namespace]
    for value in sets:
        args += ["--set", value]
    return cluster.helm(*args, "--wait", "--timeout", "60s")


def uninstall_chart(cluster: LocalCluster, namespace: str) -> str:
    return cluster.helm("uninstall", RELEASE, "--namespace", namespace, "--wait")


def wait_crd_established(api: ApiClient, timeout_s: float = 30.0) -> Json:
    """The BlueQueue CRD once it serves (Helm creates it on a first install)."""
    api.wait_for(
        f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{CRD_NAME}",
        lambda crd: any(
            c["type"] == "Established" and c["status"] == "True"
            for c in (crd.get("status") or {}).get("conditions") or []
        ),
        timeout_s=timeout_s,
        what="the BlueQueue CRD established",
    )
    return api.wait_for("/apis/blueque.io/v1alpha1/bluequeues", lambda _: True, timeout_s=timeout_s)


def operator_runner(
    api: ApiClient, namespace: str, log_dir: Path, *, close_grace_s: float = 10.0
) -> PodRunner:
    """A runner (not started) for the chart's operator pods in `namespace`."""
    options = RunnerOptions(
        log_dir=log_dir,
        namespaces=(namespace,),
        label_selector=OPERATOR_SELECTOR,
        entrypoint=OPERATOR_ENTRYPOINT,
        service_account_tokens=True,
        close_grace_s=close_grace_s,
    )
    return PodRunner(api, options)


def worker_runner(
    api: ApiClient, namespace: str, log_dir: Path, *, close_grace_s: float = 10.0
) -> PodRunner:
    """A runner (not started) for the worker pods in `namespace`, examples/ importable."""
    options = RunnerOptions(
        log_dir=log_dir,
        namespaces=(namespace,),
        env={"PYTHONPATH": str(EXAMPLES)},
        close_grace_s=close_grace_s,
    )
    return PodRunner(api, options)


def example_bluequeue(
    redis_url: str,
    *,
    scaling: Mapping[str, Any] | None = None,
    tasks: Mapping[str, Any] | None = None,
    worker_env: Sequence[Json] = FAST_WORKER_ENV,
) -> Json:
    """examples/bluequeue.yaml, read from the file, pointed at `redis_url`, with `scaling` and
    `tasks` merged over its own and `worker_env` added: what a user edits before applying it."""
    manifest: Json = yaml.safe_load(EXAMPLE_BLUEQUEUE.read_text())
    spec = manifest["spec"]
    spec["redis"]["url"] = redis_url
    spec["scaling"] = {**spec.get("scaling", {}), **(scaling or {})}
    if tasks:
        spec["tasks"] = {**spec.get("tasks", {}), **tasks}
    if worker_env:
        spec["worker"]["env"] = [*spec["worker"].get("env", []), *worker_env]
    return manifest


def apply_manifest(cluster: LocalCluster, namespace: str, manifest: Json) -> str:
    """`kubectl apply -n namespace -f -`, as a user applies an edited file."""
    return cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(manifest))


def force_delete_pod(api: ApiClient, runner: PodRunner, namespace: str, pod: str) -> None:
    """What `kubectl delete pod --force --grace-period=0` does on a real node: the process dies
    at once (KWOK's pod object cannot say so: the runner is told) and the object goes."""
    runner.kill(pod, namespace)
    body = json.dumps({"gracePeriodSeconds": 0}).encode()
    path = f"/api/v1/namespaces/{namespace}/pods/{pod}"
    status, answer = api.raw("DELETE", path, body, content_type="application/json")
    if status not in (200, 202, 404):
        raise ApiError("DELETE", path, status, answer.decode(errors="replace"))
