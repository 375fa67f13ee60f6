"""The BlueQueue CRD on the real API server: it installs with both kinds of `kubectl apply`,
fills in its defaults, keeps every status field, and refuses bad specs with a clear message."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from blueque_operator import crd, parse_bluequeue
from blueque_operator.spec import ScalingSpec, TasksSpec
from devtools.localkube import ApiClient, ApiError, LocalCluster
from devtools.localkube.api import Json

pytestmark = pytest.mark.kube

CRDS = crd.DEFAULT_OUTPUT.parent
EXAMPLE = crd.DEFAULT_OUTPUT.parents[1] / "examples" / "bluequeue.yaml"
CRD_PATH = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd.PLURAL}.{crd.GROUP}"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def _established(obj: Json) -> bool:
    return any(
        c["type"] == "Established" and c["status"] == "True"
        for c in (obj.get("status") or {}).get("conditions") or []
    )


@pytest.fixture(scope="module")
def installed(kube_cluster: LocalCluster) -> Json:
    """The CRD, applied client-side (the default), once: re-creating a CRD within a session
    races with the API server's teardown of the old one. It stays for the session."""
    out = kube_cluster.kubectl("apply", "-f", str(CRDS))
    assert f"customresourcedefinition.apiextensions.k8s.io/{crd.PLURAL}.{crd.GROUP}" in out
    admin = kube_cluster.admin_client()
    found = admin.wait_for(CRD_PATH, _established, what="the BlueQueue CRD to be established")
    admin.wait_for(
        f"/apis/{crd.GROUP}/{crd.VERSION}/{crd.PLURAL}", lambda _: True, what="its endpoint"
    )
    return found


def collection(namespace: str) -> str:
    return f"/apis/{crd.GROUP}/{crd.VERSION}/namespaces/{namespace}/{crd.PLURAL}"


def bluequeue(name: str, **spec: Any) -> Json:
    body: Json = {
        "redis": {"url": "redis://redis.default.svc:6379/0"},
        "worker": {"image": "example/videos:1.0"},
    }
    body.update(spec)
    return {
        "apiVersion": f"{crd.GROUP}/{crd.VERSION}",
        "kind": crd.KIND,
        "metadata": {"name": name},
        "spec": body,
    }


def test_both_kinds_of_apply_install_the_crd(installed: Json, kube_cluster: LocalCluster) -> None:
    conditions = {c["type"]: c["status"] for c in installed["status"]["conditions"]}
    assert conditions.get("NonStructuralSchema") is None
    assert conditions["NamesAccepted"] == "True"
    # Client-side apply kept the whole object in an annotation: it must fit (256 KiB).
    annotation = installed["metadata"]["annotations"][LAST_APPLIED]
    assert len(annotation.encode()) < 262144
    out = kube_cluster.kubectl("apply", "--server-side", "-f", str(CRDS))
    assert "serverside-applied" in out
    managers = {
        m["manager"] for m in kube_cluster.admin_client().get(CRD_PATH)["metadata"]["managedFields"]
    }
    assert "kubectl" in managers  # the server-side apply's field manager


def test_the_committed_schema_source_is_what_the_server_serves(
    installed: Json, kube_admin: ApiClient
) -> None:
    served = crd.prune_openapi(kube_admin.get("/openapi/v3/api/v1"))
    assert crd.dump_source(served) == crd.DEFAULT_SOURCE.read_text(), (
        "the API server's PodTemplateSpec changed: run python -m blueque_operator.crd"
        " --openapi <(kubectl get --raw /openapi/v3/api/v1)"
    )


def test_the_example_is_accepted_and_defaulted(
    installed: Json, kube_cluster: LocalCluster, kube_admin: ApiClient, kube_namespace: str
) -> None:
    kube_cluster.kubectl("apply", "-n", kube_namespace, "-f", str(EXAMPLE))
    stored = kube_admin.get(f"{collection(kube_namespace)}/videos")
    spec = stored["spec"]
    assert spec["redis"]["keyPrefix"] == "blueque"
    assert spec["scaling"] == {
        "minReplicas": 0,
        "maxReplicas": 4,
        "tasksPerWorker": 1,
        "scaleDownDelaySeconds": 10,
        "pollIntervalSeconds": 1,
        "paused": False,
    }
    assert spec["tasks"] == {
        "maxAttempts": 3,
        "keepFinished": 10000,
        "finishedTtlSeconds": 604800,
        "retryMax": 0,
        "retryDelaySeconds": 10,
        "retryBackoff": 2,
    }
    assert spec["worker"]["resources"]["requests"] == {"cpu": "100m", "memory": "128Mi"}
    parsed = parse_bluequeue(stored)
    assert parsed.queue == "videos"
    assert parsed.scaling == ScalingSpec(max_replicas=4, scale_down_delay_s=10)
    assert parsed.tasks == TasksSpec()
    # `kubectl get bq` prints our columns.
    header = kube_cluster.kubectl("get", "bq", "-n", kube_namespace).splitlines()[0].split()
    assert header == ["NAME", "QUEUE", "PENDING", "RUNNING", "REPLICAS", "DESIRED", "AGE"]


def test_a_full_pod_template_keeps_its_fields(
    installed: Json, kube_admin: ApiClient, kube_namespace: str
) -> None:
    template: dict[str, Any] = {
        "metadata": {"labels": {"team": "media"}, "annotations": {"note": "kept"}},
        "spec": {
            "terminationGracePeriodSeconds": 7200,
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [
                {
                    "name": "worker",
                    "image": "example/videos:2",
                    "ports": [{"containerPort": 9000}],
                    "resources": {"limits": {"cpu": "500m", "memory": 268435456}},
                    "env": [
                        {"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}
                    ],
                }
            ],
            "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
        },
    }
    created = kube_admin.create(
        collection(kube_namespace), bluequeue("templated", worker={"template": template})
    )
    stored = created["spec"]["worker"]["template"]
    expected = copy.deepcopy(template)
    expected["spec"]["containers"][0]["ports"][0]["protocol"] = "TCP"  # a list-map key default
    assert stored == expected  # nothing pruned, nothing else defaulted
    assert parse_bluequeue(created).worker.termination_grace_period_s == 7200


def test_every_status_field_is_kept(
    installed: Json, kube_admin: ApiClient, kube_namespace: str
) -> None:
    path = f"{collection(kube_namespace)}/statused"
    kube_admin.create(collection(kube_namespace), bluequeue("statused"))
    status = {
        "queue": "statused",
        "pending": 5,
        "running": 2,
        "scheduled": 1,
        "workers": 3,
        "replicas": 3,
        "desiredReplicas": 7,
        "lastScaleTime": "2026-01-02T03:04:05Z",
        "lastScaleReason": "scale up to 7: demand 7",
        "scaleDown": {
            "lowDemandSince": "2026-01-02T03:04:00Z",
            "drained": ["statused-abc", "statused-def"],
            "target": 1,
            "deadline": "2026-01-02T03:06:05Z",
        },
        "observedGeneration": 1,
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Scaling",
                "message": "ok",
                "lastTransitionTime": "2026-01-02T03:04:05Z",
                "observedGeneration": 1,
            }
        ],
    }
    patched = kube_admin.patch(f"{path}/status", {"status": status})
    assert patched["status"] == status  # nothing pruned: the schema declares every field


BAD_SPECS: list[tuple[str, Json, str]] = [
    (
        "a-name-too-long-to-label-its-worker-pods-" + "x" * 30,
        {},
        "metadata.name must be at most 63 characters",
    ),
    (
        "max-below-min",
        {"scaling": {"minReplicas": 3, "maxReplicas": 2}},
        "minReplicas must not be above maxReplicas",
    ),
    (
        "zero-tasks-per-worker",
        {"scaling": {"tasksPerWorker": 0}},
        "spec.scaling.tasksPerWorker: Invalid value: 0: spec.scaling.tasksPerWorker in body"
        " should be greater than or equal to 1",
    ),
    (
        "image-and-template",
        {"worker": {"image": "i", "template": {"spec": {"containers": [{"name": "w"}]}}}},
        "give either image (the short form) or template (a full pod template)",
    ),
    ("no-image", {"worker": {}}, "give either image (the short form) or template"),
    (
        "template-and-command",
        {"worker": {"command": ["x"], "template": {"spec": {"containers": [{"name": "w"}]}}}},
        "with a template, set command, args, env, resources",
    ),
    ("bad-queue", {"queue": "a{b}"}, "spec.queue in body should match"),
    (
        "negative-grace",
        {"worker": {"image": "i", "terminationGracePeriodSeconds": -1}},
        "spec.worker.terminationGracePeriodSeconds in body should be greater than or equal to 0",
    ),
    (
        "password-in-url",
        {"redis": {"url": "redis://:s3cret@redis:6379/0"}},
        "spec.redis.url: Invalid value: must not hold a password",
    ),
    ("bad-scheme", {"redis": {"url": "http://redis"}}, "spec.redis.url in body should match"),
    (
        "reserved-env",
        {"worker": {"image": "i", "env": [{"name": "BLUEQUE_WORKER_ID", "value": "w"}]}},
        "spec.worker.env: Invalid value: the operator sets BLUEQUE_REDIS_URL",
    ),
    ("no-redis", {"redis": None}, "spec.redis: Required value"),
    ("negative-retry", {"tasks": {"retryBackoff": 0.5}}, "should be greater than or equal to 1"),
]


@pytest.mark.parametrize(("name", "spec", "message"), BAD_SPECS, ids=[b[0] for b in BAD_SPECS])
def test_bad_specs_are_refused(
    installed: Json, kube_admin: ApiClient, kube_namespace: str, name: str, spec: Json, message: str
) -> None:
    obj = bluequeue(name, **spec)
    obj["spec"] = {k: v for k, v in obj["spec"].items() if v is not None}
    with pytest.raises(ApiError) as refused:
        kube_admin.create(collection(kube_namespace), obj)
    assert refused.value.status == 422
    details = json.loads(refused.value.body)["message"]
    assert message in details, details
