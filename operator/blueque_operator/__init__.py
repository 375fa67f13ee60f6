"""The Blueque Kubernetes operator: one BlueQueue object, one queue, one worker Deployment.

Installed with `pip install 'blueque[operator]'`; run as `blueque-operator` (or
`python -m blueque_operator`). Where each concern lives:

- decisions, with neither Kubernetes nor Redis in them: `spec` (the BlueQueue as typed values),
  `policy` (the scaling decision), `builders` (the worker Deployment), `world` (watched objects
  into the policy's values), `status` (conditions, change detection);
- one BlueQueue's loop: `controller` (ensure, claim, observe, decide, act, report) and
  `reaper` (requeueing the tasks of workers whose pods are gone);
- the edges: `kube` (API calls, gated on the Lease), `redis_link` (shared `blueque.aio`
  clients), `leader` (the Lease), `metrics` (Prometheus);
- assembly: `runtime` (Kopf's watches into the fleet of controllers), `app`, `options`,
  `cli`.
"""

from __future__ import annotations

from blueque_operator.builders import build_deployment, reconcile_patch
from blueque_operator.errors import OperatorError, SpecError
from blueque_operator.spec import (
    BlueQueueSpec,
    RedisSpec,
    ScalingSpec,
    SecretKeyRef,
    TasksSpec,
    WorkerSpec,
    parse_bluequeue,
)

__all__ = [
    "BlueQueueSpec",
    "OperatorError",
    "RedisSpec",
    "ScalingSpec",
    "SecretKeyRef",
    "SpecError",
    "TasksSpec",
    "WorkerSpec",
    "build_deployment",
    "parse_bluequeue",
    "reconcile_patch",
]
