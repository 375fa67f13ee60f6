"""What the operator's kube tests share: BlueQueue bodies, paths, waits on the cluster."""

from __future__ import annotations

from typing import Any

from blueque import Client
from devtools.localkube import ApiClient, ApiError
from devtools.localkube.api import Json
from devtools.processes import wait_until

GROUP_VERSION = "blueque.io/v1alpha1"
WORKER_SELECTOR = "app.kubernetes.io/name=blueque-worker"
FAST_WORKER_ENV: list[Json] = [
    # An idle worker notices a drain or SIGTERM within a claim: keep it short in tests.
    {"name": "BLUEQUE_CLAIM_TIMEOUT_S", "value": "0.2"},
    {"name": "BLUEQUE_HEARTBEAT_INTERVAL_S", "value": "0.2"},
]


def bluequeue(
    name: str,
    redis_url: str,
    *,
    queue: str | None = None,
    scaling: Json | None = None,
    tasks: Json | None = None,
    grace_s: int = 30,
    env: list[Json] | None = None,
) -> Json:
    spec: Json = {
        "redis": {"url": redis_url},
        "worker": {
            "image": "registry.invalid/blueque-tests:1",
            "args": ["--task", "worker_tasks:run"],
            "env": FAST_WORKER_ENV + list(env or []),
            "terminationGracePeriodSeconds": grace_s,
        },
        "scaling": {
            "minReplicas": 0,
            "maxReplicas": 3,
            "scaleDownDelaySeconds": 1,
            "pollIntervalSeconds": 0.25,
            **(scaling or {}),
        },
    }
    if queue is not None:
        spec["queue"] = queue
    if tasks is not None:
        spec["tasks"] = tasks
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "BlueQueue",
        "metadata": {"name": name},
        "spec": spec,
    }


def bq_path(namespace: str, name: str = "") -> str:
    base = f"/apis/{GROUP_VERSION}/namespaces/{namespace}/bluequeues"
    return f"{base}/{name}" if name else base


def deployment_path(namespace: str, bluequeue_name: str) -> str:
    return f"/apis/apps/v1/namespaces/{namespace}/deployments/{bluequeue_name}-workers"


def pods(admin: ApiClient, namespace: str, bluequeue_name: str) -> list[Json]:
    found: list[Json] = admin.get(
        f"/api/v1/namespaces/{namespace}/pods",
        {"labelSelector": f"{WORKER_SELECTOR},blueque.io/bluequeue={bluequeue_name}"},
    )["items"]
    return found


def live_pod_names(admin: ApiClient, namespace: str, bluequeue_name: str) -> set[str]:
    return {
        p["metadata"]["name"]
        for p in pods(admin, namespace, bluequeue_name)
        if "deletionTimestamp" not in p["metadata"]
    }


def replicas(admin: ApiClient, namespace: str, bluequeue_name: str) -> int | None:
    """The worker Deployment's spec.replicas; None when there is no Deployment."""
    try:
        obj = admin.get(deployment_path(namespace, bluequeue_name))
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise
    return int(obj["spec"].get("replicas", 0))


def condition(obj: Json, kind: str) -> Json | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            found: Json = c
            return found
    return None


def wait_condition(
    admin: ApiClient, namespace: str, name: str, kind: str, status: str, timeout_s: float = 20
) -> Json:
    def check() -> Json | None:
        obj = admin.get(bq_path(namespace, name))
        c = condition(obj, kind)
        return obj if c is not None and c["status"] == status else None

    found: Json = wait_until(check, timeout_s, what=f"{kind}={status} on BlueQueue {name}")
    return found


def events(admin: ApiClient, namespace: str, name: str) -> list[Json]:
    items: list[Json] = admin.get(
        f"/api/v1/namespaces/{namespace}/events",
        {"fieldSelector": f"involvedObject.name={name},involvedObject.kind=BlueQueue"},
    )["items"]
    return items


def reasons(admin: ApiClient, namespace: str, name: str) -> list[str]:
    return [str(e["reason"]) for e in events(admin, namespace, name)]


def env_of(deployment: Json) -> dict[str, Any]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def apply_bluequeue(admin: ApiClient, namespace: str, body: Json) -> Json:
    """Creates the BlueQueue and waits until its operator reports it Ready."""
    admin.create(bq_path(namespace), body)
    return wait_condition(admin, namespace, body["metadata"]["name"], "Ready", "True")


def running_on(client: Client, task_id: str) -> str | None:
    """The worker running the task, or None while it is not running."""
    task = client.get_task(task_id)
    return task.worker if task.status == "running" else None


def wait_reason(
    admin: ApiClient, namespace: str, name: str, reason: str, timeout_s: float = 10
) -> None:
    """Waits for an Event of that reason about the BlueQueue (the operator posts Events in the
    background, after the status that goes with them)."""
    wait_until(
        lambda: reason in reasons(admin, namespace, name),
        timeout_s,
        what=lambda: f"a {reason} Event on {name}; seen: {reasons(admin, namespace, name)}",
    )
