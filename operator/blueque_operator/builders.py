"""The worker Deployment of a BlueQueue, built as a plain manifest (a dict), and the patch that
takes a hand-edited Deployment back to it. No Kubernetes client, no Redis: the handlers send
what these functions return.

What the operator owns in the Deployment: its labels, the selector, the rollout strategy and
the whole pod template. It never owns `spec.replicas`: the scaler does. `build_deployment`
writes replicas only for a create (the scaler's number, else `minReplicas`), and
`reconcile_patch` never touches them.

Rollout: `RollingUpdate` with `maxSurge: 25%` and `maxUnavailable: 0`. A template change
starts new pods first; each old pod is deleted only once a new one is Ready, so the capacity
never drops. A deleted pod's worker gets SIGTERM: idle, it exits at once; busy, it finishes
its task (within `terminationGracePeriodSeconds`, an hour by default) and then exits, so no
task is cut short by a rollout. A new template that never gets Ready (a bad image) stalls the
rollout with the old workers still working. `Recreate` would be cheaper in pods but is not
safe for throughput: the Deployment controller waits for every old pod to be gone before it
starts a new one, so one long task would leave the queue without workers for up to the grace
period. The surge pods cost little: single-task workers, and the scaling policy holds
scale-down while a rollout runs (more than one ReplicaSet).

Pod security: the template meets the restricted Pod Security Standard by default. A pod spec
without a `securityContext` gets `runAsNonRoot` and the `RuntimeDefault` seccomp profile; a
container without one gets `allowPrivilegeEscalation: false` and `capabilities.drop: [ALL]`.
A `securityContext` the user wrote is kept exactly as written (their choice, theirs to keep
within the namespace's policy). `readOnlyRootFilesystem` is not set: restricted does not
require it, and tasks commonly write scratch files (/tmp, a transcoder's output) where an
image has no volume for them. `runAsNonRoot` means the image must run as a numeric non-root
user (or the template sets `runAsUser`); the kubelet refuses to start it otherwise.

Hand edits: `reconcile_patch` compares what the builder sets with the live object, where the
live value may carry more (the API server's defaults: `imagePullPolicy`, a fieldRef's
`apiVersion`...; resource quantities compare as numbers). A field the builder sets that
differs, or a list of another length (an env entry or a container added by hand), brings a
merge patch of the labels, strategy and template back; a map key only a hand edit added (a
`nodeSelector` entry, `kubectl rollout restart`'s annotation) is left alone, as `kubectl
apply` leaves fields it never set. `TEMPLATE_HASH` (on the Deployment and on its pods) is a
digest of what the builder sets: a differing hash is a spec change, known without walking the
object (the patch then replaces the whole template, so what the spec dropped goes), and a
pod's hash tells whether it runs the current template. Owner references are written at create
and not reconciled.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from blueque import environment as env
from blueque_operator.crd import GROUP, KIND, MAX_NAME_LENGTH, VERSION
from blueque_operator.errors import SpecError
from blueque_operator.spec import RESERVED_ENV, BlueQueueSpec, worker_container_index

Json = dict[str, Any]

WORKER_APP = "blueque-worker"
MANAGER = "blueque-operator"
NAME_LABEL = "app.kubernetes.io/name"
INSTANCE_LABEL = "app.kubernetes.io/instance"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
BLUEQUEUE_LABEL = "blueque.io/bluequeue"
TEMPLATE_HASH = "blueque.io/template-hash"
DEPLOYMENT_SUFFIX = "-workers"
CONTAINER_NAME = "worker"
"""The short form's one container (a template names its own)."""

STRATEGY: Json = {
    "type": "RollingUpdate",
    "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0},
}
POD_SECURITY_CONTEXT: Json = {
    "runAsNonRoot": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}
CONTAINER_SECURITY_CONTEXT: Json = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
}

_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def deployment_name(bluequeue: str) -> str:
    return bluequeue + DEPLOYMENT_SUFFIX


def selector_labels(bluequeue: str) -> dict[str, str]:
    """The worker pods' selector (a contract: other tools select workers with it)."""
    return {NAME_LABEL: WORKER_APP, BLUEQUEUE_LABEL: bluequeue}


def labels(bluequeue: str) -> dict[str, str]:
    """The Deployment's and its pods' labels."""
    _check_label_value(bluequeue)
    return {
        NAME_LABEL: WORKER_APP,
        INSTANCE_LABEL: bluequeue,
        MANAGED_BY_LABEL: MANAGER,
        BLUEQUEUE_LABEL: bluequeue,
    }


def _check_label_value(bluequeue: str) -> None:
    # A BlueQueue name may be a 253-character DNS subdomain; a label value stops at 63.
    if len(bluequeue) > MAX_NAME_LENGTH or not _LABEL_VALUE.match(bluequeue):
        raise SpecError(
            f"metadata.name: {bluequeue!r} must be at most {MAX_NAME_LENGTH} characters to"
            " label its worker pods"
        )


def owner_reference(bluequeue: str, uid: str) -> Json:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "name": bluequeue,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def operator_env(spec: BlueQueueSpec, uid: str) -> list[Json]:
    """The variables the operator sets in the worker container, in this order: `POD_NAME`
    comes before `BLUEQUE_WORKER_ID`, as `$(VAR)` sees only earlier entries."""
    entries: list[Json] = [
        _field_ref(env.POD_NAME_FALLBACK, "metadata.name"),
        _field_ref(env.POD_UID_FALLBACK, "metadata.uid"),
        {"name": env.REDIS_URL, "value": spec.redis.url},
    ]
    secret = spec.redis.password_secret_ref
    if secret is not None:
        entries.append(
            {
                "name": env.REDIS_PASSWORD,
                "valueFrom": {"secretKeyRef": {"name": secret.name, "key": secret.key}},
            }
        )
    # Always written, default included: the operator reads Redis under this prefix, so the
    # worker must not depend on its own image's default agreeing.
    entries.append({"name": env.NAMESPACE, "value": spec.redis.key_prefix})
    entries += [
        {"name": env.QUEUE, "value": spec.queue},
        {"name": env.WORKER_ID, "value": f"$({env.POD_NAME_FALLBACK})"},
        {"name": env.OWNER, "value": uid},
    ]
    return entries


def _field_ref(name: str, path: str) -> Json:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def _user_env(entries: Any, path: str) -> list[Json]:
    result = [dict(e) for e in entries or ()]
    for i, entry in enumerate(result):
        if entry.get("name") in RESERVED_ENV:
            raise SpecError(f"{path}[{i}]: {entry['name']} is set by the operator")
    return result


def pod_template(spec: BlueQueueSpec, uid: str) -> Json:
    """The worker pod template, with the operator's env, labels and security defaults, and
    the template hash annotation."""
    worker = spec.worker
    pod_labels = labels(spec.name)
    if worker.template is not None:
        template: Json = copy.deepcopy(dict(worker.template))
        metadata = template.setdefault("metadata", {})
        metadata["labels"] = {**(metadata.get("labels") or {}), **pod_labels}
        pod_spec = template.setdefault("spec", {})
        containers = pod_spec["containers"]
        index = worker_container_index(containers)
        container = containers[index]
        container["env"] = operator_env(spec, uid) + _user_env(
            container.get("env"), f"spec.worker.template.spec.containers[{index}].env"
        )
        pod_spec.setdefault("terminationGracePeriodSeconds", worker.termination_grace_period_s)
    else:
        container = {
            "name": CONTAINER_NAME,
            "image": worker.image,
            "command": list(worker.command),
            "args": list(worker.args),
            "env": operator_env(spec, uid) + _user_env(worker.env, "spec.worker.env"),
            "resources": copy.deepcopy(dict(worker.resources)),
        }
        template = {
            "metadata": {"labels": pod_labels},
            "spec": {
                "containers": [container],
                "terminationGracePeriodSeconds": worker.termination_grace_period_s,
            },
        }
    _restricted_defaults(template["spec"])
    annotations = template["metadata"].setdefault("annotations", {})
    annotations.pop(TEMPLATE_HASH, None)
    annotations[TEMPLATE_HASH] = _digest(template)
    return template


def _restricted_defaults(pod_spec: Json) -> None:
    if not pod_spec.get("securityContext"):
        pod_spec["securityContext"] = copy.deepcopy(POD_SECURITY_CONTEXT)
    for key in ("initContainers", "containers"):
        for container in pod_spec.get(key) or ():
            if not container.get("securityContext"):
                container["securityContext"] = copy.deepcopy(CONTAINER_SECURITY_CONTEXT)


def build_deployment(
    spec: BlueQueueSpec, *, namespace: str, uid: str, replicas: int | None = None
) -> Json:
    """The worker Deployment of the BlueQueue `spec.name` (UID `uid`) in `namespace`.
    `replicas`: the current count to keep; None (a create) starts at `minReplicas`."""
    template = pod_template(spec, uid)
    managed: Json = {
        "labels": labels(spec.name),
        "selector": {"matchLabels": selector_labels(spec.name)},
        "strategy": copy.deepcopy(STRATEGY),
        "template": template,
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": deployment_name(spec.name),
            "namespace": namespace,
            "labels": managed["labels"],
            "annotations": {TEMPLATE_HASH: _digest(managed)},
            "ownerReferences": [owner_reference(spec.name, uid)],
        },
        "spec": {
            "replicas": spec.scaling.min_replicas if replicas is None else replicas,
            "selector": managed["selector"],
            "strategy": managed["strategy"],
            "template": template,
        },
    }


def _digest(value: Any) -> str:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def template_hash(deployment: Mapping[str, Any]) -> str | None:
    """The hash annotation of a (built or live) Deployment."""
    return ((deployment.get("metadata") or {}).get("annotations") or {}).get(TEMPLATE_HASH)


def selector_changed(built: Mapping[str, Any], live: Mapping[str, Any]) -> bool:
    """A Deployment's selector is immutable: one that differs needs a delete and a create."""
    return bool(built["spec"]["selector"] != (live.get("spec") or {}).get("selector"))


def reconcile_patch(built: Mapping[str, Any], live: Mapping[str, Any]) -> Json | None:
    """The JSON merge patch that takes `live` back to `built` (labels, hash, strategy, pod
    template; never replicas, never the immutable selector), or None when nothing the
    builder sets was changed.

    After a spec change (the hash differs) the patch replaces the whole template, so a field
    the spec no longer has (a `nodeSelector` taken out of the template) goes too; the API
    server fills its defaults in again, which changes nothing. After a hand edit of the
    current template it only writes the builder's fields back, so what others add on top,
    such as `kubectl rollout restart`'s annotation, is not undone (undoing it would start a
    second rollout)."""
    live_metadata = live.get("metadata") or {}
    live_spec = live.get("spec") or {}
    built_metadata, built_spec = built["metadata"], built["spec"]
    same_spec = template_hash(live) == template_hash(built)
    if (
        same_spec
        and _contains(live_metadata.get("labels"), built_metadata["labels"])
        and _contains(live_spec.get("strategy"), built_spec["strategy"])
        and _contains(live_spec.get("template"), built_spec["template"])
    ):
        return None
    template = built_spec["template"]
    if not same_spec:
        template = _replacing(live_spec.get("template"), template)
    return {
        "metadata": {
            "labels": built_metadata["labels"],
            "annotations": {TEMPLATE_HASH: template_hash(built)},
        },
        "spec": {"strategy": built_spec["strategy"], "template": template},
    }


def _replacing(live: Any, built: Any) -> Any:
    """The merge patch that turns `live` into exactly `built` (a key only `live` has: null)."""
    if not isinstance(built, Mapping) or not isinstance(live, Mapping):
        return copy.deepcopy(built)
    patch: Json = {key: None for key in live if key not in built}
    patch.update({key: _replacing(live.get(key), value) for key, value in built.items()})
    return patch


def _contains(live: Any, built: Any, quantities: bool = False) -> bool:
    """Whether `live` holds everything `built` sets: live maps may have more keys, lists
    match element by element, and an empty value matches an absent one (the API server
    omits empty fields)."""
    if live is None and built in ("", [], {}):
        return True
    if isinstance(built, Mapping):
        if not isinstance(live, Mapping):
            return False
        return all(
            _contains(live.get(k), v, quantities or k in ("limits", "requests"))
            for k, v in built.items()
        )
    if isinstance(built, list):
        if not isinstance(live, list) or len(live) != len(built):
            return False
        return all(_contains(lv, bv) for lv, bv in zip(live, built, strict=True))
    if quantities and _quantity(built) is not None:
        return _quantity(built) == _quantity(live)  # 0.5 CPU comes back as "500m"
    return bool(live == built)


_SUFFIXES: dict[str, Decimal] = {
    "": Decimal(1),
    "m": Decimal("0.001"),
    **{suffix: Decimal(1000) ** (i + 1) for i, suffix in enumerate("kMGTPE")},
    **{suffix + "i": Decimal(1024) ** (i + 1) for i, suffix in enumerate("KMGTPE")},
}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(|m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)$")


def _quantity(value: Any) -> Decimal | None:
    """A Kubernetes resource quantity as a number (None: not one)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    match = _QUANTITY.match(str(value))
    if match is None:
        return None
    try:
        return Decimal(match.group(1)) * _SUFFIXES[match.group(2)]
    except InvalidOperation:
        return None
