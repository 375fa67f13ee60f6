"""Per-queue settings, stored in the queue's config hash (in its slot).

The defaults live in one place, the Lua prelude (`lua/_lib.lua`), because the scripts apply
them; Python reads the effective values through the `get_config` script. Here we only
validate what is written, so the worker, the CLI and the operator never disagree.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from blueque.errors import ConfigError

# field -> (type, lowest allowed value)
_FIELDS: dict[str, tuple[type, float]] = {
    "max_attempts": (int, 1),
    "keep_finished": (int, 1),  # 0 would delete a task as it finishes, before anyone reads it
    "finished_ttl_s": (int, 1),
    "retry_max": (int, 0),
    "retry_delay_s": (float, 0),
    "retry_backoff": (float, 1),
}


@dataclass(frozen=True)
class QueueConfig:
    max_attempts: int
    """Times a begun task may lose its worker (dead, or presumed dead); the last loss fails it
    `WorkerLost`. Failures of the task itself count against `retry_max`, not here."""
    keep_finished: int
    """Finished tasks kept per index (complete, failed, cancelled), at least 1; older ones are
    deleted."""
    finished_ttl_s: int
    """Finished tasks older than this are deleted."""
    retry_max: int
    """Automatic retries of a task that raised (0: none)."""
    retry_delay_s: float
    """Delay before the first automatic retry."""
    retry_backoff: float
    """Factor by which each further retry's delay grows."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_config(raw: dict[str, str]) -> QueueConfig:
    values: dict[str, Any] = {}
    for name, (kind, _) in _FIELDS.items():
        values[name] = kind(float(raw[name])) if kind is int else kind(raw[name])
    return QueueConfig(**values)


def validate_settings(settings: dict[str, Any]) -> dict[str, str]:
    """Checks settings to write; returns them as the strings stored in the config hash."""
    out: dict[str, str] = {}
    for name, value in settings.items():
        if name not in _FIELDS:
            raise ConfigError(f"unknown queue setting {name!r}; known: {', '.join(_FIELDS)}")
        kind, lowest = _FIELDS[name]
        try:
            number = kind(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be a number, got {value!r}") from None
        if kind is int and isinstance(value, float) and not value.is_integer():
            raise ConfigError(f"{name} must be a whole number, got {value!r}")
        if number < lowest:
            raise ConfigError(f"{name} must be >= {lowest:g}, got {value!r}")
        out[name] = str(number)
    return out
