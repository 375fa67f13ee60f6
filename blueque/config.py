"""Per-queue settings, stored in the queue's config hash (in its slot).

The defaults live in one place, the Lua prelude (`lua/_lib.lua`), because the scripts apply
them; Python reads the effective values through the `get_config` script. Here we only
validate what is written, so the worker, the CLI and the operator never disagree.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from blueque.errors import ConfigError
from blueque.keys import MAX_DELAY_S

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
    """The effective settings, as `get_config` answers them; `ConfigError` names a stored
    value that is not a valid setting (written by hand or by another client)."""
    values: dict[str, Any] = {}
    for name in _FIELDS:
        values[name] = check_setting(name, raw[name])
    return QueueConfig(**values)


# field -> highest allowed value: past these a value is a mistake (or the arithmetic of the
# scripts would leave the dates that clients can represent).
_HIGHEST: dict[str, float] = {
    "max_attempts": 1000,
    "keep_finished": 100_000_000,
    "finished_ttl_s": MAX_DELAY_S,
    "retry_max": 1000,
    "retry_delay_s": MAX_DELAY_S,
    "retry_backoff": 100,
}


def check_setting(name: str, value: Any) -> int | float:
    """One setting as a number of its type, or `ConfigError` saying what is wrong."""
    if name not in _FIELDS:
        raise ConfigError(f"unknown queue setting {name!r}; known: {', '.join(_FIELDS)}")
    kind, lowest = _FIELDS[name]
    shown = _shown(value)
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ConfigError(f"{name} must be a number, got {shown}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {shown}") from None
    if not math.isfinite(number):
        raise ConfigError(f"{name} must be a finite number, got {shown}")
    if kind is int and not number.is_integer():
        raise ConfigError(f"{name} must be a whole number, got {shown}")
    if number < lowest:
        raise ConfigError(f"{name} must be >= {lowest:g}, got {shown}")
    if number > _HIGHEST[name]:
        raise ConfigError(f"{name} must be <= {_HIGHEST[name]:.0f}, got {shown}")
    return int(number) if kind is int else number


def validate_settings(settings: dict[str, Any]) -> dict[str, str]:
    """Checks settings to write; returns them as the strings stored in the config hash."""
    return {name: str(check_setting(name, value)) for name, value in settings.items()}


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"
