"""The Helm chart (charts/blueque): lint-clean in both modes, rendered with exactly the RBAC
each mode needs and a pod that meets the restricted Pod Security Standard, bad values refused
by its schema; installed on the local control plane in a namespace that enforces restricted,
its pods admitted; its ServiceAccount's own token is granted exactly the listed rules, and the
real operator, run on the host with that token alone (KWOK pods run no container), works."""

from __future__ import annotations

import base64
import json
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from blueque import Client
from devtools.dashboards import dashboard
from devtools.localkube import ApiClient, LocalCluster, find_binaries
from devtools.localkube.api import Json
from devtools.localkube.errors import ApiError, MissingBinariesError
from devtools.operator_runs import operators
from devtools.processes import wait_until

pytestmark = pytest.mark.kube

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "blueque"
CLUSTER_VALUES = CHART / "ci" / "cluster-values.yaml"
NAMESPACES_VALUES = CHART / "ci" / "namespaces-values.yaml"
DASHBOARD_VALUES = CHART / "ci" / "dashboard-values.yaml"
IMAGE = "registry.invalid/blueque-operator"  # KWOK never pulls it
RESTRICTED = "restricted"

Rules = dict[tuple[str, str], set[str]]
"""(API group, resource) -> verbs."""

# The operator's permissions, per scope: what templates/_rbac.tpl must grant, and no more.
NAMESPACED: Rules = {
    ("blueque.io", "bluequeues"): {"list", "watch"},
    ("blueque.io", "bluequeues/status"): {"patch"},
    ("apps", "deployments"): {"get", "list", "watch", "create", "patch", "delete"},
    ("apps", "deployments/scale"): {"patch"},
    ("apps", "replicasets"): {"list", "watch"},
    ("", "pods"): {"get", "list", "watch", "patch"},
    ("", "secrets"): {"get"},
    ("", "events"): {"create"},
}
CLUSTER_ONLY: Rules = {("", "nodes"): {"get"}}
LEADER_ELECTION: Rules = {("coordination.k8s.io", "leases"): {"get", "create", "update"}}
# The optional dashboard's: read BlueQueues and their Events for the scaling view.
DASHBOARD: Rules = {("blueque.io", "bluequeues"): {"list"}, ("", "events"): {"list"}}


def merged(*parts: Rules) -> Rules:
    out: Rules = {}
    for part in parts:
        for key, verbs in part.items():
            out[key] = out.get(key, set()) | verbs
    return out


# -- rendering, without a cluster ----------------------------------------------------------


@pytest.fixture(scope="module")
def helm_bin() -> Path:
    try:
        return find_binaries().helm
    except MissingBinariesError as exc:
        pytest.fail(str(exc), pytrace=False)


def helm(helm_bin: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(helm_bin), *args], capture_output=True, text=True, timeout=60, check=False
    )


def render(helm_bin: Path, *args: str, namespace: str = "ops") -> list[Json]:
    done = helm(helm_bin, "template", "blueque", str(CHART), "--namespace", namespace, *args)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def of_kind(docs: list[Json], kind: str) -> list[Json]:
    return [d for d in docs if d["kind"] == kind]


def rules_of(role: Json) -> Rules:
    out: Rules = {}
    for rule in role["rules"]:
        assert "resourceNames" not in rule and "nonResourceURLs" not in rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                out[(group, resource)] = out.get((group, resource), set()) | set(rule["verbs"])
    return out


@pytest.mark.parametrize("values", [None, CLUSTER_VALUES, NAMESPACES_VALUES, DASHBOARD_VALUES])
def test_helm_lint_is_clean(helm_bin: Path, values: Path | None) -> None:
    args = ["lint", "--strict", str(CHART)] + (["--values", str(values)] if values else [])
    done = helm(helm_bin, *args)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[WARNING]" not in done.stdout and "[ERROR]" not in done.stdout, done.stdout


def test_cluster_mode_binds_a_cluster_role_and_leases_in_the_release_namespace(
    helm_bin: Path,
) -> None:
    docs = render(helm_bin, "--values", str(CLUSTER_VALUES))
    (cluster_role,) = of_kind(docs, "ClusterRole")
    assert cluster_role["metadata"]["name"] == "blueque-ops"  # unique per release namespace
    assert rules_of(cluster_role) == merged(NAMESPACED, CLUSTER_ONLY)
    (binding,) = of_kind(docs, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == "blueque-ops"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "blueque", "namespace": "ops"}
    ]
    (lease_role,) = of_kind(docs, "Role")
    assert lease_role["metadata"]["namespace"] == "ops"
    assert rules_of(lease_role) == LEADER_ELECTION
    (deployment,) = of_kind(docs, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["--all-namespaces", "--metrics-port", "8000"]
    assert container["image"] == f"registry.example.com/blueque-operator:{chart_version()}"
    (monitor,) = of_kind(docs, "ServiceMonitor")  # enabled in the cluster values
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    (service,) = of_kind(docs, "Service")
    assert monitor["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"


def chart_version() -> str:
    version: str = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    return version


def test_namespaces_mode_grants_roles_in_the_watched_namespaces_only(helm_bin: Path) -> None:
    docs = render(helm_bin, "--values", str(NAMESPACES_VALUES))
    assert not of_kind(docs, "ClusterRole") and not of_kind(docs, "ClusterRoleBinding")
    assert not of_kind(docs, "ServiceMonitor")  # off by default
    roles = {(r["metadata"]["namespace"], r["metadata"]["name"]): r for r in of_kind(docs, "Role")}
    assert rules_of(roles[("ops", "blueque")]) == NAMESPACED  # no nodes, no CRDs
    assert rules_of(roles[("ops", "blueque-leader-election")]) == LEADER_ELECTION
    assert len(roles) == 2
    (deployment,) = of_kind(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["--namespace", "ops", "--metrics-port", "8000"]

    # Other namespaces: a Role and a RoleBinding in each; the Lease stays in the release's.
    docs = render(
        helm_bin, "--values", str(NAMESPACES_VALUES), "--set", "watch.namespaces={team-a,team-b}"
    )
    placed = {(r["metadata"]["namespace"], r["metadata"]["name"]) for r in of_kind(docs, "Role")}
    assert placed == {
        ("team-a", "blueque"),
        ("team-b", "blueque"),
        ("ops", "blueque-leader-election"),
    }
    bindings = of_kind(docs, "RoleBinding")
    assert {b["metadata"]["namespace"] for b in bindings} == {"team-a", "team-b", "ops"}
    for binding in bindings:
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "blueque", "namespace": "ops"}
        ]
    (deployment,) = of_kind(docs, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["args"][:4] == ["--namespace", "team-a", "--namespace", "team-b"]


def test_the_pod_meets_the_restricted_standard_field_by_field(helm_bin: Path) -> None:
    for values in (CLUSTER_VALUES, NAMESPACES_VALUES):
        (deployment,) = of_kind(render(helm_bin, "--values", str(values)), "Deployment")
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] > 0
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        (container,) = pod["containers"]
        assert container["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        }
        assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
        assert pod["volumes"][0]["emptyDir"] == {"sizeLimit": "64Mi"}
        env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in container["env"]}
        assert env == {"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace"}
        labels = deployment["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "blueque"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "replicas=-1"], "at '/replicas': minimum: got -1, want 0"),
        (["--set", "image=blueque-operator"], "at '/image': got string, want object"),
        (["--set-json", "image.repository=42"], "at '/image/repository': got number, want string"),
        (["--set", "watch.mode=everywhere"], "at '/watch/mode'"),
        (["--set", "metrics.port=0"], "at '/metrics/port': minimum: got 0, want 1"),
        (["--set", "replica=2"], "additional properties 'replica' not allowed"),
        (["--set", "image.repository="], "image.repository is required"),
        (["--set", "watch.mode=cluster,watch.namespaces={a}"], "watch.namespaces is only read"),
        (["--set", "watch.namespaces={Team_A}"], "at '/watch/namespaces/0'"),
        (["--set", "dashboard.enabled=true"], "dashboard.redis.url is required"),
        (["--set", "dashboard.urlPrefix=ops"], "at '/dashboard/urlPrefix'"),
        (["--set", "dashboard.redis.url=http://x"], "at '/dashboard/redis/url'"),
    ],
    ids=lambda v: v if isinstance(v, str) else " ".join(v),
)
def test_bad_values_are_refused_with_their_path(
    helm_bin: Path, args: list[str], message: str
) -> None:
    # Valid values from a file, which the --set and --set-json flags override.
    base = ["template", "blueque", str(CHART), "--values", str(NAMESPACES_VALUES)]
    done = helm(helm_bin, *base, *args)
    assert done.returncode != 0, done.stdout
    assert message in done.stderr, done.stderr


def of_dashboard(docs: list[Json]) -> list[Json]:
    return [
        d
        for d in docs
        if (d["metadata"].get("labels") or {}).get("app.kubernetes.io/component") == "dashboard"
    ]


def test_the_dashboard_is_optional_read_only_and_authenticated_in_each_mode(
    helm_bin: Path,
) -> None:
    assert of_dashboard(render(helm_bin, "--values", str(CLUSTER_VALUES))) == []
    docs = render(helm_bin, "--values", str(DASHBOARD_VALUES))
    mine = of_dashboard(docs)
    (role,) = of_kind(mine, "ClusterRole")
    assert role["metadata"]["name"] == "blueque-ops-dashboard"
    assert rules_of(role) == DASHBOARD
    (binding,) = of_kind(mine, "ClusterRoleBinding")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "blueque-dashboard", "namespace": "ops"}
    ]
    (secret,) = of_kind(mine, "Secret")
    assert len(base64.b64decode(secret["data"]["token"])) == 40  # auth on by default
    (deployment,) = of_kind(mine, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "blueque-dashboard"
    (container,) = pod["containers"]
    assert container["image"] == f"registry.example.com/blueque-operator:{chart_version()}"
    assert container["command"] == ["blueque"]
    assert container["args"] == [
        "dashboard",
        "--host=0.0.0.0",
        "--port=8080",
        "--kube",
        "--token-file=/var/run/blueque-dashboard/token",
    ]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env == {
        "BLUEQUE_REDIS_URL": "redis://redis.default.svc:6379/0",
        "BLUEQUE_NAMESPACE": "blueque",
    }
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True
    (token_volume,) = [v for v in pod["volumes"] if v["name"] == "token"]
    assert token_volume["secret"]["secretName"] == secret["metadata"]["name"]
    (service,) = of_kind(mine, "Service")
    assert service["spec"]["selector"]["app.kubernetes.io/component"] == "dashboard"
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    # The operator's Service and Deployment select their own pods only.
    operator_service = next(d for d in of_kind(docs, "Service") if d not in mine)
    assert operator_service["spec"]["selector"]["app.kubernetes.io/component"] == "operator"

    docs = render(
        helm_bin,
        "--values",
        str(DASHBOARD_VALUES),
        "--set",
        "watch.mode=namespaces,watch.namespaces={team-a,team-b}",
    )
    mine = of_dashboard(docs)
    assert not of_kind(mine, "ClusterRole")
    roles = {r["metadata"]["namespace"]: r for r in of_kind(mine, "Role")}
    assert set(roles) == {"team-a", "team-b"}
    assert all(rules_of(r) == DASHBOARD for r in roles.values())
    (deployment,) = of_kind(mine, "Deployment")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--kube-namespace=team-a" in args and "--kube-namespace=team-b" in args

    docs = render(
        helm_bin,
        "--values",
        str(DASHBOARD_VALUES),
        "--set",
        "dashboard.allowActions=true,dashboard.auth.enabled=false,dashboard.urlPrefix=/ops/bq",
        "--set-json",
        'dashboard.allowedOrigins=["http://127.0.0.1:8001"]',
    )
    mine = of_dashboard(docs)
    assert not of_kind(mine, "Secret")
    (deployment,) = of_kind(mine, "Deployment")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[4:] == [
        "--insecure-no-auth",
        "--allow-actions",
        "--url-prefix=/ops/bq",
        "--allowed-origin=http://127.0.0.1:8001",
    ]


# -- installed on the control plane --------------------------------------------------------


def label_restricted(admin: ApiClient, namespace: str) -> None:
    labels = {f"pod-security.kubernetes.io/{mode}": RESTRICTED for mode in ("enforce", "warn")}
    admin.patch(f"/api/v1/namespaces/{namespace}", {"metadata": {"labels": labels}})


@pytest.fixture
def install(kube_cluster: LocalCluster, kube_namespace: str) -> Iterator[Any]:
    """Installs the chart (`--wait`) into the test's namespace with the given values; uninstalls
    it afterwards, so that no ClusterRole outlives the test."""
    installed: list[str] = []

    def run(*values: str) -> str:
        installed.append(kube_namespace)
        return kube_cluster.helm(
            "install", "blueque", str(CHART), "--namespace", kube_namespace,
            "--set", f"image.repository={IMAGE}", *values, "--wait", "--timeout", "60s",
        )  # fmt: skip

    yield run
    for namespace in installed:
        kube_cluster.helm("uninstall", "blueque", "--namespace", namespace, "--wait")


def token_client(admin: ApiClient, namespace: str, account: str) -> ApiClient:
    """A client authenticated as the ServiceAccount, by a token of the TokenRequest API."""
    request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}
    answer = admin.create(
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token", request
    )
    return admin.with_token(answer["status"]["token"])


def can(client: ApiClient, verb: str, group: str, resource: str, namespace: str = "") -> bool:
    name, _, subresource = resource.partition("/")
    attributes = {"verb": verb, "group": group, "resource": name, "subresource": subresource}
    if namespace:
        attributes["namespace"] = namespace
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": attributes},
    }
    answer = client.create("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", review)
    return bool(answer["status"]["allowed"])


def granted_in(client: ApiClient, namespace: str) -> Rules:
    """Every resource rule that applies to the caller in `namespace` (cluster-wide ones
    included), less what every authenticated user may do (review its own access)."""
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectRulesReview",
        "spec": {"namespace": namespace},
    }
    status = client.create("/apis/authorization.k8s.io/v1/selfsubjectrulesreviews", review)[
        "status"
    ]
    assert not status.get("incomplete"), status
    rules: Rules = {}
    for rule in status["resourceRules"]:
        for group in rule["apiGroups"]:
            if group in ("authorization.k8s.io", "authentication.k8s.io"):
                continue
            for resource in rule["resources"]:
                rules[(group, resource)] = rules.get((group, resource), set()) | set(rule["verbs"])
    return rules


def assert_admitted(admin: ApiClient, namespace: str, replicas: int) -> None:
    pods = admin.get(
        f"/api/v1/namespaces/{namespace}/pods",
        {"labelSelector": "app.kubernetes.io/instance=blueque"},
    )["items"]
    assert len(pods) == replicas
    assert all(p["status"]["phase"] == "Running" for p in pods)  # KWOK's: admitted, scheduled
    events = admin.get(f"/api/v1/namespaces/{namespace}/events")["items"]
    failed = [e["message"] for e in events if e["reason"] == "FailedCreate"]
    assert failed == []


def test_namespaces_mode_installs_under_restricted_with_least_privilege(
    kube_cluster: LocalCluster, kube_admin: ApiClient, kube_namespace: str, install: Any
) -> None:
    ns = kube_namespace
    label_restricted(kube_admin, ns)
    # The rendered Deployment draws no PodSecurity warning (kubectl makes a warning an error).
    rendered = kube_cluster.helm(
        "template", "blueque", str(CHART), "--namespace", ns, "--set", f"image.repository={IMAGE}"
    )
    (deployment,) = of_kind([d for d in yaml.safe_load_all(rendered) if d], "Deployment")
    out = kube_cluster.kubectl(
        "create", "--dry-run=server", "--warnings-as-errors", "-f", "-",
        stdin=json.dumps(deployment),
    )  # fmt: skip
    assert "created (server dry run)" in out

    install("--values", str(NAMESPACES_VALUES))
    assert_admitted(kube_admin, ns, replicas=2)

    # The example BlueQueue is valid against the CRD the chart installed.
    out = kube_cluster.kubectl(
        "apply", "--dry-run=server", "-n", ns, "-f", str(ROOT / "examples" / "bluequeue.yaml")
    )
    assert out.strip() == "bluequeue.blueque.io/videos created (server dry run)"
    # The README's CRD upgrade works over the CRD Helm created (or an earlier test applied).
    out = kube_cluster.kubectl(
        "apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds" / "bluequeue.yaml")
    )
    assert (
        out.strip() == "customresourcedefinition.apiextensions.k8s.io/bluequeues.blueque.io"
        " serverside-applied"
    )

    operator = token_client(kube_admin, ns, "blueque")
    assert granted_in(operator, ns) == merged(NAMESPACED, LEADER_ELECTION)
    assert granted_in(operator, "default") == {}
    # Spot checks through the access review the API server runs on each request.
    assert can(operator, "patch", "", "pods", ns)
    assert can(operator, "patch", "blueque.io", "bluequeues/status", ns)
    assert can(operator, "patch", "apps", "deployments/scale", ns)
    assert can(operator, "create", "coordination.k8s.io", "leases", ns)
    assert not can(operator, "delete", "", "pods", ns)
    assert not can(operator, "list", "", "secrets", ns)
    assert not can(operator, "get", "", "secrets", "default")
    assert not can(operator, "get", "", "secrets")  # cluster-wide
    assert not can(operator, "list", "", "nodes")
    assert not can(operator, "list", "apiextensions.k8s.io", "customresourcedefinitions")
    assert not can(operator, "get", "", "nodes")
    assert not can(operator, "watch", "blueque.io", "bluequeues")  # all namespaces
    # And a real request with the token is refused outside the namespace.
    with pytest.raises(ApiError) as refused:
        operator.get("/api/v1/namespaces/default/pods")
    assert refused.value.status == 403


def test_cluster_mode_installs_under_restricted_with_least_privilege(
    kube_admin: ApiClient, kube_namespace: str, install: Any
) -> None:
    ns = kube_namespace
    label_restricted(kube_admin, ns)
    install("--values", str(CLUSTER_VALUES), "--set", "metrics.serviceMonitor.enabled=false")
    assert_admitted(kube_admin, ns, replicas=1)

    operator = token_client(kube_admin, ns, "blueque")
    everywhere = merged(NAMESPACED, CLUSTER_ONLY)
    assert granted_in(operator, "default") == everywhere
    assert granted_in(operator, ns) == merged(everywhere, LEADER_ELECTION)
    assert can(operator, "watch", "blueque.io", "bluequeues")  # all namespaces
    assert can(operator, "get", "", "nodes")
    assert not can(operator, "list", "", "nodes")
    assert not can(operator, "list", "apiextensions.k8s.io", "customresourcedefinitions")
    assert can(operator, "get", "", "secrets", "default")
    assert not can(operator, "list", "", "secrets")
    assert not can(operator, "watch", "", "secrets", "default")
    assert not can(operator, "delete", "", "pods", "default")
    assert not can(operator, "create", "", "pods", "default")
    assert not can(operator, "list", "", "namespaces")
    assert not can(operator, "get", "coordination.k8s.io", "leases", "default")
    assert operator.get("/api/v1/namespaces/default/pods")["kind"] == "PodList"


def token_kubeconfig(cluster: LocalCluster, token: str, namespace: str, path: Path) -> Path:
    """A kubeconfig that authenticates with `token`, as the operator's pod would."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "localkube",
                "cluster": {
                    "server": cluster.state.server,
                    "certificate-authority": cluster.state.ca_file,
                },
            }
        ],
        "users": [{"name": "operator", "user": {"token": token}}],
        "contexts": [
            {
                "name": "operator",
                "context": {"cluster": "localkube", "user": "operator", "namespace": namespace},
            }
        ],
        "current-context": "operator",
    }
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    return path


def test_the_operator_works_with_the_charts_service_account_alone(
    kube_cluster: LocalCluster,
    kube_admin: ApiClient,
    kube_namespace: str,
    install: Any,
    redis_url: str,
    tmp_path: Path,
) -> None:
    """The namespaces-mode rules suffice for the real operator: it takes the Lease, creates the
    example's worker Deployment, writes status and Events, scales through the scale
    subresource, and never meets a 403."""
    ns = kube_namespace
    install("--values", str(NAMESPACES_VALUES), "--set", "replicas=1")
    token = token_client(kube_admin, ns, "blueque").token
    assert token is not None
    kubeconfig = token_kubeconfig(kube_cluster, token, ns, tmp_path / "operator.kubeconfig")
    example = yaml.safe_load((ROOT / "examples" / "bluequeue.yaml").read_text())
    example["spec"]["redis"]["url"] = redis_url
    example["spec"]["scaling"]["pollIntervalSeconds"] = 0.25
    name, queue = example["metadata"]["name"], example["spec"]["queue"]
    base = f"/apis/blueque.io/v1alpha1/namespaces/{ns}/bluequeues"

    with operators(kubeconfig, tmp_path / "operators") as runs:
        run = runs.start([ns], lease_namespace=ns)
        try:
            owner = kube_admin.create(base, example)["metadata"]["uid"]
            deployment = kube_admin.wait_for(
                f"/apis/apps/v1/namespaces/{ns}/deployments/{name}-workers",
                lambda _: True,
                what="the worker Deployment",
            )
            assert deployment["metadata"]["ownerReferences"][0]["uid"] == owner
            kube_admin.wait_for(
                f"{base}/{name}",
                lambda bq: (bq.get("status") or {}).get("queue") == queue,
                what="the BlueQueue's status",
            )
            with Client(redis_url) as client:
                client.get_queue(queue).enqueue({"video": 1, "seconds": 0.2})
            kube_admin.wait_for(
                f"/apis/apps/v1/namespaces/{ns}/deployments/{name}-workers",
                lambda d: d["spec"].get("replicas") == 1,
                what="the Deployment scaled to one replica",
            )
            lease = kube_admin.get(
                f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/blueque-operator"
            )
            assert lease["spec"]["holderIdentity"]
            posted = kube_admin.get(
                f"/api/v1/namespaces/{ns}/events",
                {"fieldSelector": f"involvedObject.kind=BlueQueue,involvedObject.name={name}"},
            )["items"]
            assert posted, "no Event on the BlueQueue"
            log = run.process.output()
        except BaseException:
            print(run.log(80))  # shown with the failure
            raise
    assert "403" not in log and "forbidden" not in log.lower(), log


def test_the_dashboard_works_with_its_service_account_alone(
    kube_cluster: LocalCluster,
    kube_admin: ApiClient,
    kube_namespace: str,
    bluequeue_crd: Json,
    install: Any,
    redis_url: str,
    tmp_path: Path,
) -> None:
    """Installed with the dashboard (cluster mode, restricted namespace): its ServiceAccount
    is granted exactly the read-only rules, and the real dashboard, run on the host with that
    token alone (KWOK pods run no container), lists the BlueQueues and their Events."""
    ns = kube_namespace
    label_restricted(kube_admin, ns)
    install("--values", str(DASHBOARD_VALUES), "--set", f"dashboard.redis.url={redis_url}")
    assert_admitted(kube_admin, ns, replicas=2)  # the operator's pod and the dashboard's
    reader = token_client(kube_admin, ns, "blueque-dashboard")
    assert granted_in(reader, "default") == DASHBOARD
    assert can(reader, "list", "blueque.io", "bluequeues")  # every namespace
    assert not can(reader, "get", "", "secrets", ns)
    assert not can(reader, "list", "", "pods", ns)
    assert not can(reader, "patch", "blueque.io", "bluequeues", ns)

    body = yaml.safe_load((ROOT / "examples" / "bluequeue.yaml").read_text())
    body["spec"]["redis"]["url"] = redis_url
    kube_admin.create(f"/apis/blueque.io/v1alpha1/namespaces/{ns}/bluequeues", body)
    assert reader.token is not None
    kubeconfig = token_kubeconfig(kube_cluster, reader.token, ns, tmp_path / "dash.kubeconfig")
    args = ["--kube", "--scaling-interval", "0.5"]
    with dashboard(redis_url, tmp_path, args=args, env={"KUBECONFIG": str(kubeconfig)}) as dash:

        def listed() -> dict[str, Any] | None:
            request = urllib.request.Request(
                f"{dash.url}/api/scaling", headers={"Authorization": f"Bearer {dash.token}"}
            )
            with urllib.request.urlopen(request, timeout=5) as response:
                doc: dict[str, Any] = json.load(response)
            names = [(b["namespace"], b["name"]) for b in doc.get("bluequeues", [])]
            return doc if (ns, "videos") in names else None

        doc = wait_until(listed, 20, what="the dashboard listing the BlueQueue")
    assert doc["error"] is None and doc["source"] == "kubeconfig"
    (view,) = [b for b in doc["bluequeues"] if b["namespace"] == ns]
    assert not view["matched"]  # no operator claimed its queue in this test
    assert "403" not in dash.process.output()
