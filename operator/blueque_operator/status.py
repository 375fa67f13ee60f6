"""The BlueQueue's status: built from a tick, compared, patched only when it changed.

Conditions follow the Kubernetes convention: `lastTransitionTime` moves only when a
condition's status flips, so an unchanged tick produces an equal status and no API write.
The scale-down in flight (`policy.ScaleDownState`) is stored here too, as times in RFC 3339,
which is how a restarted operator resumes or undoes it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from blueque_operator.policy import ScaleDownState

Json = dict[str, Any]
ConditionType = Literal["Ready", "RedisReachable", "Conflict", "ScaleDownBlocked", "WorkersFailing"]
CONDITION_TYPES: tuple[ConditionType, ...] = (
    "Ready",
    "RedisReachable",
    "Conflict",
    "ScaleDownBlocked",
    "WorkersFailing",
)


def rfc3339(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def epoch(value: object) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


@dataclass(frozen=True)
class Condition:
    type: ConditionType
    status: bool
    reason: str
    message: str = ""


def conditions(
    wanted: Sequence[Condition], previous: Sequence[Mapping[str, Any]], now: float, generation: int
) -> list[Json]:
    """The status's conditions list: `wanted`, keeping each one's transition time when its
    status did not change."""
    before = {str(c.get("type")): c for c in previous}
    result: list[Json] = []
    for condition in wanted:
        status = "True" if condition.status else "False"
        old = before.get(condition.type)
        since = (
            old.get("lastTransitionTime")
            if old is not None and old.get("status") == status and old.get("lastTransitionTime")
            else rfc3339(now)
        )
        result.append(
            {
                "type": condition.type,
                "status": status,
                "reason": condition.reason,
                "message": condition.message[:1024],
                "lastTransitionTime": since,
                "observedGeneration": generation,
            }
        )
    return result


def scale_down_status(state: ScaleDownState) -> Json:
    """Every key present (null when unset), so a merge patch clears what went."""
    return {
        "lowDemandSince": None
        if state.low_demand_since is None
        else rfc3339(state.low_demand_since),
        "drained": list(state.drained),
        "target": state.target,
        "deadline": None if state.deadline is None else rfc3339(state.deadline),
    }


def scale_down_state(status: Mapping[str, Any] | None) -> ScaleDownState:
    """The scale-down a previous operator recorded (or none)."""
    recorded = (status or {}).get("scaleDown") or {}
    target = recorded.get("target")
    return ScaleDownState(
        low_demand_since=epoch(recorded.get("lowDemandSince")),
        drained=tuple(str(n) for n in recorded.get("drained") or ()),
        target=int(target) if isinstance(target, int) else None,
        deadline=epoch(recorded.get("deadline")),
    )


def changed(previous: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    """Whether patching `new` would change the stored status (nulls count as absent)."""
    return bool(_pruned(dict(previous or {})) != _pruned(dict(new)))


def _pruned(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _pruned(v) for k, v in value.items() if v is not None and v != {}}
    if isinstance(value, list):
        return [_pruned(v) for v in value]
    return value
