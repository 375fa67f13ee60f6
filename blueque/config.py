"""Per-queue settings, stored in the queue's config hash (in its slot).

`SCHEMA` is the one description of them: name, type, lowest allowed value, default, meaning.
The Lua prelude (`lua/_lib.lua`) applies the defaults, since the scripts read the hash; the
table in PROTOCOL.md documents them for other languages; `blueque config --help` is generated
from `SCHEMA`, and a unit test checks that `_lib.lua` and PROTOCOL.md agree with it. Python
reads the effective values through the `get_config` script, and validates what is written,
so the worker, the CLI and the operator never disagree.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from blueque.errors import ConfigError


@dataclass(frozen=True)
class Setting:
    """One per-queue setting."""

    name: str
    type: type[int] | type[float]
    minimum: int | float
    default: int | float
    description: str

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
    ),
    Setting(
        "keep_finished",
        int,
        1,
        10000,
        "Finished tasks kept per index (complete, failed, cancelled); older ones are deleted."
        " At least 1, so that a task that just finished can be read.",
    ),
    Setting("finished_ttl_s", int, 1, 604800, "Finished tasks older than this are deleted."),
    Setting("retry_max", int, 0, 0, "Automatic retries of a task that raised (0: off)."),
    Setting("retry_delay_s", float, 0, 10, "Delay before the first automatic retry."),
    Setting("retry_backoff", float, 1, 2, "Factor by which each further retry's delay grows."),
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
    values: dict[str, Any] = {}
    for s in SCHEMA:
        values[s.name] = int(float(raw[s.name])) if s.type is int else float(raw[s.name])
    return QueueConfig(**values)


def validate_settings(settings: dict[str, Any]) -> dict[str, str]:
    """Checks settings to write; returns them as the strings stored in the config hash."""
    out: dict[str, str] = {}
    for name, value in settings.items():
        setting = _BY_NAME.get(name)
        if setting is None:
            raise ConfigError(f"unknown queue setting {name!r}; known: {', '.join(_BY_NAME)}")
        try:
            number = setting.type(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be a number, got {value!r}") from None
        if setting.type is int and isinstance(value, float) and not value.is_integer():
            raise ConfigError(f"{name} must be a whole number, got {value!r}")
        if number < setting.minimum:
            raise ConfigError(f"{name} must be >= {setting.minimum:g}, got {value!r}")
        out[name] = str(number)
    return out
