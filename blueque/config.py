"""Per-queue settings, stored in the queue's config hash (in its slot).

`SCHEMA` is the one description of them: name, type, lowest allowed value, default, meaning.
The Lua prelude (`lua/_lib.lua`) applies the defaults, since the scripts read the hash; the
table in PROTOCOL.md documents them for other languages; `blueque config --help` is generated
from `SCHEMA`, and a unit test checks that `_lib.lua` and PROTOCOL.md agree with it. Python
reads the effective values through the `get_config` script, and validates what is written,
so the worker, the CLI and the operator never disagree.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from blueque.errors import ConfigError
from blueque.keys import MAX_DELAY_S


@dataclass(frozen=True)
class Setting:
    """One per-queue setting."""

    name: str
    type: type[int] | type[float]
    minimum: int | float
    default: int | float
    description: str
    maximum: int | float = math.inf
    """Past this a value is a mistake (or the scripts' arithmetic would leave the dates that
    clients can represent)."""

    @property
    def json_type(self) -> str:
        """'integer' or 'number', as JSON Schema (and a CRD's OpenAPI schema) name it."""
        return "integer" if self.type is int else "number"


SCHEMA: tuple[Setting, ...] = (
    Setting(
        "max_attempts",
        int,
        1,
        3,
        "Times a begun task may lose its worker (dead, or presumed dead); the last loss fails"
        " it WorkerLost. Failures of the task itself count against retry_max, not here.",
        maximum=1000,
    ),
    Setting(
        "keep_finished",
        int,
        1,
        10000,
        "Finished tasks kept per index (complete, failed, cancelled); older ones are deleted."
        " At least 1, so that a task that just finished can be read.",
        maximum=100_000_000,
    ),
    Setting(
        "finished_ttl_s",
        int,
        1,
        604800,
        "Finished tasks older than this are deleted.",
        maximum=MAX_DELAY_S,
    ),
    Setting(
        "retry_max", int, 0, 0, "Automatic retries of a task that raised (0: off).", maximum=1000
    ),
    Setting(
        "retry_delay_s",
        float,
        0,
        10,
        "Delay before the first automatic retry.",
        maximum=MAX_DELAY_S,
    ),
    Setting(
        "retry_backoff",
        float,
        1,
        2,
        "Factor by which each further retry's delay grows.",
        maximum=100,
    ),
)
_BY_NAME = {s.name: s for s in SCHEMA}


@dataclass(frozen=True)
class QueueConfig:
    """A queue's effective settings; the fields are those of `SCHEMA`, in its order."""

    max_attempts: int
    keep_finished: int
    finished_ttl_s: int
    retry_max: int
    retry_delay_s: float
    retry_backoff: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_config(raw: dict[str, str]) -> QueueConfig:
    """The effective settings, as `get_config` answers them; `ConfigError` names a stored
    value that is not a valid setting (written by hand or by another client)."""
    values: dict[str, Any] = {}
    for s in SCHEMA:
        values[s.name] = check_setting(s.name, raw[s.name])
    return QueueConfig(**values)


def check_setting(name: str, value: Any) -> int | float:
    """One setting as a number of its type, or `ConfigError` saying what is wrong."""
    setting = _BY_NAME.get(name)
    if setting is None:
        raise ConfigError(f"unknown queue setting {name!r}; known: {', '.join(_BY_NAME)}")
    kind, lowest = setting.type, setting.minimum
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
    if number > setting.maximum:
        raise ConfigError(f"{name} must be <= {setting.maximum:.0f}, got {shown}")
    return int(number) if kind is int else number


def validate_settings(settings: dict[str, Any]) -> dict[str, str]:
    """Checks settings to write; returns them as the strings stored in the config hash."""
    return {name: str(check_setting(name, value)) for name, value in settings.items()}


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"
