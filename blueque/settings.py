"""Worker settings: one typed object, defaults and descriptions here, validated on load.

Each field can come from the environment as `BLUEQUE_<FIELD>` (e.g.
`BLUEQUE_HEARTBEAT_TTL_S=60`); `blueque.environment` does that reading, and builds the
`blueque worker` options, their help and the documentation from these fields. So a field's
description is written once, in its `setting(...)` below.
"""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from blueque.errors import ConfigError
from blueque.keys import sanitize_worker_id, validate_worker_id


def setting(default: Any, description: str, *, shown_default: str | None = None) -> Any:
    """A settings field with its one-line description (and, for a default that is computed,
    how to describe it)."""
    return field(
        default=default, metadata={"description": description, "shown_default": shown_default}
    )


# field -> (lowest, highest), in seconds. Below, a worker floods Redis (a 1 ms heartbeat is
# a thousand round trips a second) or a claim timeout reads as "block forever"; above, a
# value is a mistake (the claim timeout is further bounded by the Redis socket timeout:
# `connection.check_claim_timeout`).
_RANGES_S = {
    "claim_timeout_s": (0.01, 60.0),
    "heartbeat_interval_s": (0.05, 3600.0),
    "heartbeat_ttl_s": (0.1, 86400.0),
    "cancel_grace_s": (0.0, 86400.0),
    "reconnect_max_delay_s": (0.01, 3600.0),
    "promote_interval_s": (0.0, 86400.0),
}


@dataclass(frozen=True)
class WorkerSettings:
    worker_id: str | None = setting(
        None,
        "Registry id of the worker.",
        shown_default="the pod name, else hostname-pid",
    )
    pod_name: str | None = setting(
        None,
        "The Kubernetes pod this worker runs in, recorded for the operator.",
        shown_default="$POD_NAME",
    )
    pod_uid: str | None = setting(
        None,
        "UID of that pod, recorded for the operator (a pod re-created under the same name"
        " has another).",
        shown_default="$POD_UID",
    )
    owner: str | None = setting(
        None,
        "UID of the BlueQueue whose operator started this worker, recorded so that an"
        " operator acts only on its own workers.",
        shown_default="none",
    )
    claim_timeout_s: float = setting(
        1.0, "How long one blocking claim waits; bounds how fast an idle worker notices a stop."
    )
    heartbeat_interval_s: float = setting(
        2.0, "How often the worker refreshes its heartbeat (and learns of drains and cancels)."
    )
    heartbeat_ttl_s: float = setting(
        30.0, "A worker whose heartbeat is older than this is presumed dead by reap."
    )
    cancel_grace_s: float = setting(
        10.0, "After a running task is cancelled: time between SIGTERM and SIGKILL to its child."
    )
    reconnect_max_delay_s: float = setting(
        10.0, "Cap of the exponential backoff while Redis is unreachable (at most half the TTL)."
    )
    promote_interval_s: float = setting(
        1.0,
        "How often an idle worker promotes due scheduled tasks (0: leave it to the operator or"
        " blueque scheduler).",
    )
    max_tasks: int = setting(0, "Exit after this many tasks (0: never).")
    fork: bool = setting(
        True, "Run each task in a forked child (true) or in the worker process itself (false)."
    )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> WorkerSettings:
        """The settings from `BLUEQUE_*` variables (see `blueque.environment`), with
        `overrides` (None values ignored) winning over them."""
        # Imported here: the environment contract is built from this class.
        from blueque.environment import read_settings

        return read_settings(env, **overrides)

    def validated(self) -> WorkerSettings:
        for name, (lowest, highest) in _RANGES_S.items():
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or not lowest <= value <= highest
            ):
                raise ConfigError(
                    f"{name} must be {lowest:g} to {highest:g} seconds, got {value!r}"
                )
        if isinstance(self.max_tasks, bool) or not isinstance(self.max_tasks, int):
            raise ConfigError(f"max_tasks must be a whole number, got {self.max_tasks!r}")
        if self.heartbeat_ttl_s < 2 * self.heartbeat_interval_s:
            raise ConfigError("heartbeat_ttl_s must be at least twice heartbeat_interval_s")
        if self.heartbeat_ttl_s < 2 * self.claim_timeout_s:
            # An idle worker heartbeats between two blocking claims: a longer claim would let
            # its heartbeat expire, and reap would take a live worker for dead.
            raise ConfigError("heartbeat_ttl_s must be at least twice claim_timeout_s")
        if self.max_tasks < 0:
            raise ConfigError(f"max_tasks must be >= 0, got {self.max_tasks}")
        if self.worker_id is not None:
            validate_worker_id(self.worker_id)
        return self

    def resolved_worker_id(self) -> str:
        if self.worker_id:
            return self.worker_id
        if self.pod_name:
            return sanitize_worker_id(self.pod_name)
        return sanitize_worker_id(f"{socket.gethostname()}-{os.getpid()}")

    def with_(self, **changes: Any) -> WorkerSettings:
        return replace(self, **changes).validated()
