"""Drives the benchmark: one cluster, one Redis, one pod runner; the setups one after another.

Each setup gets a namespace and a queue of its own, and its own processes: KEDA (started before
the first KEDA setup, stopped before the Blueque one so that it costs the machine nothing then)
and `blueque scheduler`, or the Blueque operator. Every identity is separate, so the audit log
tells the writes apart: KEDA's service account, the HPA's, the operator's (with the chart's
RBAC), the pod runner's (the kubelet stand-in), and the admin (this benchmark's own setup).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.scaling.recorder import Recorder
from bench.scaling.results import TaskRecord, TrialResult, trial_result
from bench.scaling.setups import SETUPS, Common, Setup
from bench.scaling.workloads import Workload, workload
from blueque import Client
from devtools.keda import Keda, build_keda
from devtools.localkube.api import ApiClient, Json
from devtools.localkube.build import build
from devtools.localkube.cluster import LocalCluster
from devtools.localkube.errors import ApiError
from devtools.operator_runs import CRDS, Operators
from devtools.podrunner import PodRunner, RunnerOptions
from devtools.processes import Process, stop_all, wait_until
from devtools.redis_servers import RedisServer

__all__ = ["Options", "SetupRun", "run"]

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "blueque"
OPERATOR_NAMESPACE = "blueque-system"
RUNNER_NAMESPACE = "bench-system"
#: Between trials, once at zero: the last worker processes are gone, the scalers settle.
_PAUSE_S = 5.0


@dataclass(frozen=True)
class Options:
    work_dir: Path
    setups: tuple[str, ...]
    workloads: tuple[str, ...]
    max_replicas: int = 10
    grace_s: int = 30
    scale_in_bound_s: float = 480.0
    ready_bound_s: float = 120.0


@dataclass
class SetupRun:
    """Everything one setup produced: its trials, samples, writes per user, CPU per process."""

    setup: Setup
    trials: list[TrialResult] = field(default_factory=list)
    recorder: Recorder | None = None
    writes: dict[str, int] = field(default_factory=dict)
    reads: dict[str, int] = field(default_factory=dict)
    writes_by_resource: dict[str, dict[str, int]] = field(default_factory=dict)
    cpu_s: dict[str, float] = field(default_factory=dict)
    started: float = 0.0
    ended: float = 0.0
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> Json:
        rec = self.recorder
        return {
            "setup": self.setup.name,
            "trials": [asdict(t) for t in self.trials],
            "writes": self.writes,
            "reads": self.reads,
            "writes_by_resource": self.writes_by_resource,
            "cpu_s": self.cpu_s,
            "started": self.started,
            "ended": self.ended,
            "notes": self.notes,
            "samples": [asdict(s) for s in rec.samples] if rec else [],
            "changes": [asdict(c) for c in rec.changes] if rec else [],
            "removals": [asdict(r) for r in rec.removals] if rec else [],
            "recorder_errors": rec.errors if rec else [],
        }


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def budget_s(options: Options) -> float:
    """A rough upper bound of the run's length, printed before it starts."""
    total = 0.0
    for name in options.setups:
        for w in options.workloads:
            load = workload(w, options.max_replicas)
            per_trial = load.last_arrival_s + 60 + (330 if name == "keda-default" else 60)
            total += load.trials * per_trial
        total += 30
    return total + 60 + 120  # cluster, KEDA start


def run(options: Options) -> list[SetupRun]:
    setups = [s for s in SETUPS if s.name in options.setups]
    say(
        f"time budget: about {budget_s(options) / 60:.0f} min (bounded waits: scale-in "
        f"{options.scale_in_bound_s:.0f} s per trial)"
    )
    build()
    keda_binaries = build_keda() if any(s.scaler == "keda" for s in setups) else None
    runs: list[SetupRun] = []
    options.work_dir.mkdir(parents=True, exist_ok=True)
    with RedisServer() as redis, Client(redis.url) as client:
        cluster = LocalCluster(options.work_dir / "cluster", audit_log=True)
        cluster.start()
        keda: Keda | None = None
        try:
            admin = cluster.admin_client()
            common = Common(redis.url, options.max_replicas, options.grace_s)
            runner_api = _service_account_client(cluster, admin, RUNNER_NAMESPACE, "pod-runner")
            runner_options = RunnerOptions(
                log_dir=options.work_dir / "pods",
                namespaces=tuple(s.namespace() for s in setups),
                cwd=ROOT,
                close_grace_s=float(options.grace_s),
            )
            with PodRunner(runner_api, runner_options) as runner:
                for setup in setups:
                    if setup.scaler == "keda" and keda is None:
                        assert keda_binaries is not None
                        keda = Keda(cluster, keda_binaries, options.work_dir / "keda")
                        say("starting KEDA")
                        keda.start()
                    if setup.scaler != "keda" and keda is not None:
                        keda.stop()
                        keda = None
                    say(
                        f"setup {setup.name}: controller-manager flags "
                        f"{list(setup.controller_manager_flags) or 'default'}"
                    )
                    cluster.restart_controller_manager(setup.controller_manager_flags)
                    runs.append(
                        _run_setup(options, cluster, admin, client, common, setup, keda, runner)
                    )
        finally:
            if keda is not None:
                keda.stop()
            cluster.stop(remove_state=False)
    return runs


def _service_account_client(
    cluster: LocalCluster, admin: ApiClient, namespace: str, name: str
) -> ApiClient:
    """A client as a new service account bound to cluster-admin: for the pod runner, whose
    writes (finalizers, restart counts, Events) a kubelet would make under its own name."""
    _ensure_namespace(admin, namespace)
    admin.create(
        f"/api/v1/namespaces/{namespace}/serviceaccounts",
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}},
    )
    admin.create(
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": f"{namespace}-{name}"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "cluster-admin",
            },
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        },
    )
    return admin.with_token(_token(admin, namespace, name))


def _token(admin: ApiClient, namespace: str, name: str) -> str:
    answer = admin.create(
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 24 * 3600},
        },
    )
    token: str = answer["status"]["token"]
    return token


def _ensure_namespace(admin: ApiClient, name: str) -> None:
    try:
        admin.create(
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
        )
    except ApiError as exc:
        if exc.status != 409:
            raise


def _operator_kubeconfig(cluster: LocalCluster, admin: ApiClient) -> Path:
    """The operator's own identity with the chart's RBAC (cluster mode), as `helm install`
    would grant it."""
    cluster.kubectl("apply", "--server-side", "-f", str(CRDS))
    _ensure_namespace(admin, OPERATOR_NAMESPACE)
    rendered = cluster.helm(
        "template",
        "blueque",
        str(CHART),
        "--namespace",
        OPERATOR_NAMESPACE,
        "--set",
        "image.repository=registry.invalid/blueque-operator",
        "--show-only",
        "templates/serviceaccount.yaml",
        "--show-only",
        "templates/rbac.yaml",
    )
    cluster.kubectl("apply", "--server-side", "-f", "-", stdin=rendered)
    admin.wait_for("/apis/blueque.io/v1alpha1/bluequeues", lambda _: True, what="the BlueQueue API")
    return cluster.token_kubeconfig(
        "blueque-operator", _token(admin, OPERATOR_NAMESPACE, "blueque")
    )


def _run_setup(
    options: Options,
    cluster: LocalCluster,
    admin: ApiClient,
    client: Client,
    common: Common,
    setup: Setup,
    keda: Keda | None,
    runner: PodRunner,
) -> SetupRun:
    result = SetupRun(setup)
    ns = setup.namespace()
    _ensure_namespace(admin, ns)
    watched: list[Process] = []
    operators: Operators | None = None
    helper: Process | None = None
    if setup.scaler == "blueque":
        kubeconfig = _operator_kubeconfig(cluster, admin)
        operators = Operators(kubeconfig, options.work_dir / "operator")
        run = operators.start([ns], lease_namespace=OPERATOR_NAMESPACE, lease_name="blueque")
        watched.append(run.process)
    else:
        assert keda is not None
        helper = Process.start(
            "blueque-scheduler",
            [str(Path(sys.executable).parent / "blueque"), "scheduler", setup.queue()],
            log_file=options.work_dir / "logs" / f"scheduler-{setup.name}.log",
            env={**os.environ, "BLUEQUE_REDIS_URL": common.redis_url},
        )
        watched += [*keda.processes, helper]
    kcm = next(c for c in cluster.state.components if c.name == "kube-controller-manager")
    apiserver = next(c for c in cluster.state.components if c.name == "kube-apiserver")
    watched += [kcm, apiserver]
    recorder = Recorder(admin, client, ns, setup.deployment_name(), setup.queue()).start()
    result.recorder = recorder
    audit = cluster.audit_log()
    offset = audit.offset()
    cpu_before = {p.name: p.cpu_seconds() for p in watched}
    result.started = time.time()
    try:
        for path, body in setup.objects(common):
            admin.create(path, body)
        _wait_scaler_ready(admin, setup, options.ready_bound_s)
        say(f"setup {setup.name}: ready")
        for name in options.workloads:
            load = workload(name, options.max_replicas)
            for trial in range(load.trials):
                outcome = _run_trial(options, client, setup, load, trial, recorder)
                result.trials.append(outcome)
                say(f"  {setup.name} {load.name} #{trial + 1}: {_summary(outcome)}")
        result.cpu_s = {p.name: p.cpu_seconds() - cpu_before[p.name] for p in watched}
        result.ended = time.time()
        for user, counts in audit.counts(offset).items():
            result.writes[user] = counts.writes
            result.reads[user] = counts.reads
            result.writes_by_resource[user] = dict(counts.writes_by_resource)
    finally:
        _teardown(admin, setup)
        recorder.close()
        if operators is not None:
            operators.close()
        if helper is not None:
            stop_all([helper])
    return result


def _wait_scaler_ready(admin: ApiClient, setup: Setup, bound_s: float) -> None:
    ns = setup.namespace()
    if setup.scaler == "keda":
        path = f"/apis/keda.sh/v1alpha1/namespaces/{ns}/scaledobjects/workers"
    else:
        path = f"/apis/blueque.io/v1alpha1/namespaces/{ns}/bluequeues/{setup.queue()}"
    admin.wait_for(
        path,
        lambda obj: any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in (obj.get("status") or {}).get("conditions") or []
        ),
        timeout_s=bound_s,
        poll_s=0.5,
        what=f"{setup.name}'s scaler Ready",
    )


def _teardown(admin: ApiClient, setup: Setup) -> None:
    """Delete the scaler's object (KEDA removes its finalizer and the HPA) and the workers."""
    ns = setup.namespace()
    paths = (
        [
            f"/apis/keda.sh/v1alpha1/namespaces/{ns}/scaledobjects/workers",
            f"/apis/apps/v1/namespaces/{ns}/deployments/workers",
        ]
        if setup.scaler == "keda"
        else [f"/apis/blueque.io/v1alpha1/namespaces/{ns}/bluequeues/{setup.queue()}"]
    )
    for path in paths:
        try:
            admin.delete(path)
        except ApiError as exc:
            if exc.status != 404:
                raise
    first = paths[0]
    wait_until(lambda: not _exists(admin, first), 60, interval_s=0.2, what=f"{first} gone")


def _exists(admin: ApiClient, path: str) -> bool:
    try:
        admin.get(path)
    except ApiError as exc:
        if exc.status == 404:
            return False
        raise
    return True


def _wait_zero(recorder: Recorder, bound_s: float) -> float | None:
    """When the Deployment asks for 0 replicas and no worker pod is left; None past the bound."""
    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline:
        if recorder.replicas == 0 and recorder.live_pods() == 0:
            return time.time()
        time.sleep(0.1)
    return None


def _run_trial(
    options: Options,
    client: Client,
    setup: Setup,
    load: Workload,
    trial: int,
    recorder: Recorder,
) -> TrialResult:
    if _wait_zero(recorder, options.scale_in_bound_s) is None:
        raise TimeoutError(f"{setup.name}: not back at zero replicas before {load.name}")
    time.sleep(_PAUSE_S)
    queue = client.get_queue(setup.queue())
    ids: list[str] = []
    start = time.time()
    for arrival in sorted(load.arrivals, key=lambda a: a.at_s):
        time.sleep(max(0.0, start + arrival.at_s - time.time()))
        ids += queue.enqueue_many([{"s": arrival.task_s}] * arrival.count)

    def finished() -> bool:
        return all(t.status in ("complete", "failed") for t in queue.get_tasks(ids))

    deadline = time.monotonic() + load.deadline_s
    while time.monotonic() < deadline and not finished():
        time.sleep(0.5)
    zero_at = _wait_zero(recorder, options.scale_in_bound_s)
    records = [
        TaskRecord(
            status=str(t.status),
            attempts=t.attempts,
            losses=t.losses,
            started_at=t.started_at.timestamp() if t.started_at else None,
            finished_at=t.finished_at.timestamp() if t.finished_at else None,
        )
        for t in queue.get_tasks(ids)
    ]
    return trial_result(
        setup=setup.name,
        workload=load.name,
        trial=trial,
        start=start,
        target=load.target,
        tasks=records,
        changes=recorder.changes,
        removals=recorder.removals,
        zero_at=zero_at,
    )


def _summary(t: TrialResult) -> str:
    def s(value: float) -> str:
        return "-" if math.isnan(value) else f"{value:.1f} s"

    return (
        f"first replica {s(t.first_replica_s)}, target {s(t.target_s)}, first task "
        f"{s(t.first_task_s)}, work done {s(t.makespan_s)}, scale-in {s(t.scale_in_s)}; "
        f"removed {t.removed} (busy {t.busy_removed}), re-runs {t.reruns}, failed {t.failed}, "
        f"unfinished {t.unfinished}"
    )


def write_json(runs: list[SetupRun], path: Path, header: Json) -> None:
    path.write_text(json.dumps({**header, "setups": [r.to_json() for r in runs]}, indent=1))
