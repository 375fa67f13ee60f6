"""The Blueque Kubernetes operator: one BlueQueue object, one queue, one worker Deployment.

Installed with `pip install 'blueque[operator]'`; run as `blueque-operator` (or
`python -m blueque_operator`). The decisions live in plain modules without Kubernetes or Redis
(`spec`, `policy`, `builders`); the Kopf handlers that call them come in a later slice.
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
