"""What the runner writes back about a pod, as a kubelet would: Events and the container's
restart count. Bodies only; the runner sends them."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from devtools.localkube.api import Json

__all__ = ["event", "restart_status"]


def event(pod: Json, container: str, kind: str, reason: str, message: str) -> Json:
    """A core/v1 Event about `container` of `pod` (kind: Normal or Warning)."""
    meta = pod["metadata"]
    now = _now()
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": f"{meta['name']}.{secrets.token_hex(8)}",
            "namespace": meta["namespace"],
        },
        "involvedObject": {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
            "fieldPath": f"spec.containers{{{container}}}",
        },
        "type": kind,
        "reason": reason,
        "message": message,
        "source": {"component": "pod-runner", "host": pod["spec"].get("nodeName", "")},
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }


def restart_status(pod: Json, container: str, restarts: int, exit_code: int) -> Json | None:
    """A merge patch of the pod's status: `container` restarted `restarts` times, last ended
    with `exit_code` (Popen's: -N for signal N, reported as 128+N as a kubelet does). None when
    the status lists no such container. A merge patch replaces the list, so it carries the other
    containers' statuses unchanged. KWOK only writes the status of Pending pods: no fight."""
    statuses: list[Json] = (pod.get("status") or {}).get("containerStatuses") or []
    if not any(s.get("name") == container for s in statuses):
        return None
    now = _now()
    terminated = {
        "exitCode": 128 - exit_code if exit_code < 0 else exit_code,
        "reason": "Error" if exit_code else "Completed",
        "finishedAt": now,
    }
    updated = [
        s
        if s.get("name") != container
        else {
            **s,
            "restartCount": restarts,
            "lastState": {"terminated": terminated},
            "state": {"running": {"startedAt": now}},
        }
        for s in statuses
    ]
    return {"status": {"containerStatuses": updated}}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
