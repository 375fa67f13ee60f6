"""The three setups and every knob each one turns, as objects for the API server and as a table.

What is equal everywhere (`Common`): the worker (a real `blueque worker` with its default
settings, the benchmark's sleep task), its grace period, minimum 0 and maximum replicas. What
differs is only the scaler. KEDA's trigger reads the pending list's length, the one thing a
list-based scaler can see: it cannot count running tasks, nor pick which pod goes.
"""

from __future__ import annotations

from dataclasses import dataclass

from blueque.keys import queue_keys
from devtools.localkube.api import Json

__all__ = ["SETUPS", "Common", "Setup", "knob_rows"]

TASK = "bench.scaling.tasks:run"
WORKER_LABELS = {"app.kubernetes.io/name": "blueque-worker"}


@dataclass(frozen=True)
class Common:
    redis_url: str
    max_replicas: int = 10
    grace_s: int = 30

    @property
    def redis_address(self) -> str:
        return self.redis_url.removeprefix("redis://").split("/", 1)[0]


@dataclass(frozen=True)
class Setup:
    name: str
    title: str
    #: Extra controller-manager flags: the HPA's sync period is the whole cluster's.
    controller_manager_flags: tuple[str, ...]
    #: "keda" or "blueque"
    scaler: str
    tuned: bool = False

    def queue(self) -> str:
        return f"bench-{self.name}"

    def namespace(self) -> str:
        return f"scaling-{self.name}"

    def deployment_name(self) -> str:
        return "workers" if self.scaler == "keda" else f"{self.queue()}-workers"

    def objects(self, common: Common) -> list[tuple[str, Json]]:
        """(collection path, body) of every object the setup creates in its namespace."""
        ns = self.namespace()
        if self.scaler == "blueque":
            return [
                (f"/apis/blueque.io/v1alpha1/namespaces/{ns}/bluequeues", _bluequeue(self, common))
            ]
        return [
            (f"/apis/apps/v1/namespaces/{ns}/deployments", _deployment(self, common)),
            (f"/apis/keda.sh/v1alpha1/namespaces/{ns}/scaledobjects", _scaled_object(self, common)),
        ]


SETUPS = (
    Setup("keda-default", "KEDA, defaults", (), "keda"),
    Setup(
        "keda-tuned",
        "KEDA, tuned",
        ("--horizontal-pod-autoscaler-sync-period=1s",),
        "keda",
        tuned=True,
    ),
    Setup("blueque", "Blueque operator, defaults", (), "blueque"),
)

#: KEDA's tuned scale-down window and cooldown: the Blueque operator's default
#: scaleDownDelaySeconds, so that both wait as long before removing a pod.
TUNED_WINDOW_S = 30


def _worker_container(common: Common, queue: str) -> Json:
    return {
        "name": "worker",
        "image": "registry.invalid/blueque-bench:1",
        "args": ["--task", TASK],
        "env": [
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "BLUEQUE_REDIS_URL", "value": common.redis_url},
            {"name": "BLUEQUE_QUEUE", "value": queue},
            {"name": "BLUEQUE_WORKER_ID", "value": "$(POD_NAME)"},
        ],
    }


def _deployment(setup: Setup, common: Common) -> Json:
    labels = {**WORKER_LABELS, "app": setup.deployment_name()}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": setup.deployment_name(), "labels": labels},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": setup.deployment_name()}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [_worker_container(common, setup.queue())],
                    "terminationGracePeriodSeconds": common.grace_s,
                },
            },
        },
    }


def _scaled_object(setup: Setup, common: Common) -> Json:
    spec: Json = {
        "scaleTargetRef": {"name": setup.deployment_name()},
        "minReplicaCount": 0,
        "maxReplicaCount": common.max_replicas,
        "triggers": [
            {
                "type": "redis",
                "metadata": {
                    "address": common.redis_address,
                    "listName": queue_keys(setup.queue()).pending,
                    "listLength": "1",
                },
            }
        ],
    }
    if setup.tuned:
        spec["pollingInterval"] = 1
        spec["cooldownPeriod"] = TUNED_WINDOW_S
        spec["advanced"] = {
            "horizontalPodAutoscalerConfig": {
                "behavior": {
                    "scaleUp": {
                        "stabilizationWindowSeconds": 0,
                        "selectPolicy": "Max",
                        "policies": [
                            {"type": "Pods", "value": common.max_replicas, "periodSeconds": 1},
                            {"type": "Percent", "value": 1000, "periodSeconds": 1},
                        ],
                    },
                    "scaleDown": {
                        "stabilizationWindowSeconds": TUNED_WINDOW_S,
                        "policies": [{"type": "Percent", "value": 100, "periodSeconds": 1}],
                    },
                }
            }
        }
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "workers"},
        "spec": spec,
    }


def _bluequeue(setup: Setup, common: Common) -> Json:
    container = _worker_container(common, setup.queue())
    return {
        "apiVersion": "blueque.io/v1alpha1",
        "kind": "BlueQueue",
        "metadata": {"name": setup.queue()},
        "spec": {
            "redis": {"url": common.redis_url},
            "worker": {
                "image": container["image"],
                "args": container["args"],
                "terminationGracePeriodSeconds": common.grace_s,
            },
            "scaling": {"minReplicas": 0, "maxReplicas": common.max_replicas},
        },
    }


def knob_rows(common: Common) -> list[tuple[str, str, str, str]]:
    """(knob, keda-default, keda-tuned, blueque): the docs table, from the same constants."""
    w = TUNED_WINDOW_S
    return [
        ("scaler", "KEDA 2.21.0 + HPA", "KEDA 2.21.0 + HPA", "Blueque operator"),
        (
            "demand it reads",
            "`LLEN` of the pending list",
            "`LLEN` of the pending list",
            "pending + reserved + running of its own workers",
        ),
        (
            "target per replica",
            "`listLength: 1`",
            "`listLength: 1`",
            "`tasksPerWorker: 1` (default)",
        ),
        (
            "min / max replicas",
            f"0 / {common.max_replicas}",
            f"0 / {common.max_replicas}",
            f"0 / {common.max_replicas}",
        ),
        (
            "polling",
            "`pollingInterval` 30 s (default)",
            "`pollingInterval` 1 s",
            "`pollIntervalSeconds` 1 s (default)",
        ),
        (
            "HPA sync period",
            "15 s (default)",
            "1 s (`--horizontal-pod-autoscaler-sync-period`)",
            "no HPA",
        ),
        (
            "scale-up",
            "HPA default (+100% or +4 pods per 15 s, no window)",
            f"no window; +{common.max_replicas} pods or +1000% per 1 s",
            "at once (default)",
        ),
        (
            "scale-down wait",
            "HPA window 300 s (default); 1 -> 0 after `cooldownPeriod` 300 s",
            f"HPA window {w} s, then -100% per 1 s; 1 -> 0 after `cooldownPeriod` {w} s",
            "`scaleDownDelaySeconds` 30 s (default)",
        ),
        (
            "which pods go",
            "ReplicaSet's choice (busy or not)",
            "ReplicaSet's choice (busy or not)",
            "idle workers only: drained in Redis, lowest deletion cost",
        ),
        (
            "dead workers' tasks",
            "`blueque scheduler` (heartbeat TTL 30 s)",
            "`blueque scheduler` (heartbeat TTL 30 s)",
            "operator reaper (pod DELETED)",
        ),
        (
            "`terminationGracePeriodSeconds`",
            f"{common.grace_s}",
            f"{common.grace_s}",
            f"{common.grace_s} (not its default 3600)",
        ),
        (
            "worker",
            "`blueque worker` defaults",
            "`blueque worker` defaults",
            "`blueque worker` defaults",
        ),
    ]
