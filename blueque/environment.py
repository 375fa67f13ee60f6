"""The environment contract of a worker: every variable `blueque worker` reads, as one typed
object, with the names as constants; and `WorkerSettings`, the worker's settings, whose every
field is a variable (`BLUEQUE_<FIELD>`, e.g. `BLUEQUE_HEARTBEAT_TTL_S=60`). The settings live
here because the contract is built from them and `WorkerSettings.from_env` is the contract's
reading: a field's description is written once, in its `setting(...)`, and is the worker
option's help and the documentation's.

This is the only module of Blueque that reads the environment. The CLI builds its global
options and the worker's options from `VARIABLES` (flag, variable, shown default,
description); `docs/cli.md` holds the table that `markdown_table()` renders (a unit test
keeps them equal); the operator's pod builder imports the names to write a worker pod's
`env`. Precedence everywhere: a command-line flag, then the variable, then the default. A
variable set to the empty string counts as unset.

`BLUEQUE_REDIS_PASSWORD` is meant for a Kubernetes Secret: it supplies, or replaces, the
password of whatever URL is used (the flag, `BLUEQUE_REDIS_URL` or `REDIS_URL`), so the URL
can sit in a ConfigMap. It has no command-line flag (a command line is visible to every user
of the machine) and is never printed: the objects here leave it out of their repr.
"""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, get_type_hints

from blueque.errors import ConfigError
from blueque.keys import DEFAULT_NAMESPACE, sanitize_worker_id, validate_worker_id

PREFIX = "BLUEQUE_"

# Where Redis is.
REDIS_URL = "BLUEQUE_REDIS_URL"
REDIS_URL_FALLBACK = "REDIS_URL"  # read when BLUEQUE_REDIS_URL is unset
REDIS_PASSWORD = "BLUEQUE_REDIS_PASSWORD"
REDIS_CLUSTER = "BLUEQUE_REDIS_CLUSTER"
NAMESPACE = "BLUEQUE_NAMESPACE"
# What a worker runs, and how it logs.
QUEUE = "BLUEQUE_QUEUE"
TASK = "BLUEQUE_TASK"
LOG_LEVEL = "BLUEQUE_LOG_LEVEL"
# One variable per `WorkerSettings` field: BLUEQUE_<FIELD>.
WORKER_ID = "BLUEQUE_WORKER_ID"
POD_NAME = "BLUEQUE_POD_NAME"
POD_NAME_FALLBACK = "POD_NAME"  # read when BLUEQUE_POD_NAME is unset (the downward API)
CLAIM_TIMEOUT_S = "BLUEQUE_CLAIM_TIMEOUT_S"
HEARTBEAT_INTERVAL_S = "BLUEQUE_HEARTBEAT_INTERVAL_S"
HEARTBEAT_TTL_S = "BLUEQUE_HEARTBEAT_TTL_S"
CANCEL_GRACE_S = "BLUEQUE_CANCEL_GRACE_S"
RECONNECT_MAX_DELAY_S = "BLUEQUE_RECONNECT_MAX_DELAY_S"
PROMOTE_INTERVAL_S = "BLUEQUE_PROMOTE_INTERVAL_S"
MAX_TASKS = "BLUEQUE_MAX_TASKS"
FORK = "BLUEQUE_FORK"
# Set by the operator in worker pods, for the worker's registry entry.
OWNER = "BLUEQUE_OWNER"
POD_UID = "BLUEQUE_POD_UID"
POD_UID_FALLBACK = "POD_UID"  # read when BLUEQUE_POD_UID is unset (the downward API)
# The dashboard's credentials (`blueque dashboard`): secrets, so no flags.
DASHBOARD_TOKEN = "BLUEQUE_DASHBOARD_TOKEN"
DASHBOARD_PASSWORD = "BLUEQUE_DASHBOARD_PASSWORD"

DEFAULT_REDIS_URL = "redis://localhost:6379/0"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
DEFAULT_LOG_LEVEL = "INFO"


# -- the worker's settings --------------------------------------------------------------------


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
    """A worker's settings: one typed object, each field's default and description in its
    `setting(...)`, validated on load (`validated`)."""

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
        """The settings from `BLUEQUE_*` variables (`read_settings`), with `overrides` (None
        values ignored) winning over them."""
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


# -- the variables ----------------------------------------------------------------------------

# The type of each `WorkerSettings` field (the class's annotations are strings).
SETTING_TYPES: dict[str, Any] = get_type_hints(WorkerSettings)


@dataclass(frozen=True)
class Variable:
    """One variable of the contract, as the CLI's help and the documentation show it."""

    name: str
    option: str | None
    """The `blueque` flag (or argument) that wins over the variable; None: no flag."""
    default: str
    """The default as shown ('' when there is none)."""
    description: str
    fallback: str | None = None
    """Another variable read when this one is unset."""
    setting: str | None = None
    """The `WorkerSettings` field it sets."""


def _shown(value: Any, name: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and name.endswith("_s"):
        return f"{value:g}s"
    return str(value)


def _setting_variable(name: str) -> Variable:
    f = next(f for f in fields(WorkerSettings) if f.name == name)
    shown = f.metadata["shown_default"] or _shown(f.default, f.name)
    kind = SETTING_TYPES[name]
    option = "--" + name.removesuffix("_s").replace("_", "-")
    if kind is bool:
        option = f"{option}/--no-{option[2:]}"
    return Variable(
        name=PREFIX + name.upper(),
        option=option,
        default=shown,
        description=f.metadata["description"],
        fallback={"pod_name": POD_NAME_FALLBACK, "pod_uid": POD_UID_FALLBACK}.get(name),
        setting=name,
    )


CONNECTION_VARIABLES = (
    Variable(
        REDIS_URL,
        "--url",
        DEFAULT_REDIS_URL,
        "Redis URL: redis://, rediss://, unix://, redis+cluster://, redis+sentinel://.",
        fallback=REDIS_URL_FALLBACK,
    ),
    Variable(
        REDIS_PASSWORD,
        None,
        "",
        "Redis password; supplies or replaces the URL's (for a Kubernetes Secret). Never printed.",
    ),
    Variable(REDIS_CLUSTER, "--cluster", "false", "The URL is a Redis Cluster node."),
    Variable(NAMESPACE, "--namespace", DEFAULT_NAMESPACE, "Key prefix."),
)
WORKER_VARIABLES = (
    Variable(QUEUE, "QUEUE", "", "The queue a worker works on."),
    Variable(TASK, "--task", "", "The task function, module:function."),
    Variable(LOG_LEVEL, "--log-level", DEFAULT_LOG_LEVEL, f"One of {', '.join(LOG_LEVELS)}."),
)
SETTING_VARIABLES = tuple(_setting_variable(f.name) for f in fields(WorkerSettings))
DASHBOARD_VARIABLES = (
    Variable(
        DASHBOARD_TOKEN,
        None,
        "",
        "`blueque dashboard`: the token a browser or a script must present (header or login"
        " cookie). Never printed.",
    ),
    Variable(
        DASHBOARD_PASSWORD,
        None,
        "",
        "`blueque dashboard --basic-user NAME`: that user's password (HTTP basic auth)."
        " Never printed.",
    ),
)
VARIABLES = CONNECTION_VARIABLES + WORKER_VARIABLES + SETTING_VARIABLES + DASHBOARD_VARIABLES


def variable(name: str) -> Variable:
    """The variable of that name; `ConfigError` for a name outside the contract."""
    found = _BY_NAME.get(name)
    if found is None:
        raise ConfigError(f"{name} is not a Blueque environment variable")
    return found


_BY_NAME = {v.name: v for v in VARIABLES}


# -- reading ----------------------------------------------------------------------------------


def _environ(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env


def _get(env: Mapping[str, str], name: str, fallback: str | None = None) -> str | None:
    value = env.get(name) or (env.get(fallback) if fallback else None)
    return value or None


_BOOLEANS = {"1": True, "true": True, "yes": True, "on": True}
_BOOLEANS |= {"0": False, "false": False, "no": False, "off": False}


def _parse(name: str, kind: Any, raw: str) -> Any:
    value: Any = raw
    try:
        if kind is bool:
            value = _BOOLEANS.get(raw.strip().lower())
        elif kind is float:
            value = float(raw)
        elif kind is int:
            value = int(raw)
    except ValueError:
        value = None
    if value is None:
        kind_name = getattr(kind, "__name__", "string")
        raise ConfigError(f"{name}={raw!r} is not a valid {kind_name}")
    return value


def read_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> WorkerSettings:
    """`WorkerSettings` from the variables, with `overrides` (None values ignored) winning;
    validated."""
    env = _environ(env)
    values: dict[str, Any] = {}
    for v in SETTING_VARIABLES:
        assert v.setting is not None
        raw = _get(env, v.name, v.fallback)
        if raw is not None:
            values[v.setting] = _parse(v.name, SETTING_TYPES[v.setting], raw)
    values.update({k: value for k, value in overrides.items() if value is not None})
    return WorkerSettings(**values).validated()


def read_log_level(env: Mapping[str, str] | None = None) -> str:
    raw = _get(_environ(env), LOG_LEVEL)
    if raw is None:
        return DEFAULT_LOG_LEVEL
    if raw.upper() not in LOG_LEVELS:
        raise ConfigError(f"{LOG_LEVEL}={raw!r} is not one of {', '.join(LOG_LEVELS)}")
    return raw.upper()


@dataclass(frozen=True)
class RedisEnvironment:
    """Where Redis is: what every command (and a worker) connects to."""

    url: str = DEFAULT_REDIS_URL
    password: str | None = field(default=None, repr=False)
    cluster: bool = False
    namespace: str = DEFAULT_NAMESPACE

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RedisEnvironment:
        env = _environ(env)
        cluster = _get(env, REDIS_CLUSTER)
        return cls(
            url=_get(env, REDIS_URL, REDIS_URL_FALLBACK) or DEFAULT_REDIS_URL,
            password=_get(env, REDIS_PASSWORD),
            cluster=bool(cluster is not None and _parse(REDIS_CLUSTER, bool, cluster)),
            namespace=_get(env, NAMESPACE) or DEFAULT_NAMESPACE,
        )

    def with_flags(
        self, *, url: str | None = None, cluster: bool | None = None, namespace: str | None = None
    ) -> RedisEnvironment:
        """With the command line's values, where it gave some (None: not given)."""
        changes: dict[str, Any] = {"url": url, "cluster": cluster, "namespace": namespace}
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


@dataclass(frozen=True)
class WorkerEnvironment:
    """Everything a worker reads from its environment."""

    redis: RedisEnvironment
    settings: WorkerSettings
    queue: str | None = None
    task: str | None = None
    log_level: str = DEFAULT_LOG_LEVEL

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, **setting_overrides: Any
    ) -> WorkerEnvironment:
        """Reads and validates every variable; `setting_overrides` are `WorkerSettings`
        fields given some other way (None values ignored), which win over the variables."""
        env = _environ(env)
        return cls(
            redis=RedisEnvironment.from_env(env),
            settings=read_settings(env, **setting_overrides),
            queue=_get(env, QUEUE),
            task=_get(env, TASK),
            log_level=read_log_level(env),
        )


@dataclass(frozen=True)
class DashboardSecrets:
    """The dashboard's credentials from the environment (each None when unset)."""

    token: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DashboardSecrets:
        env = _environ(env)
        return cls(token=_get(env, DASHBOARD_TOKEN), password=_get(env, DASHBOARD_PASSWORD))


# -- documentation ----------------------------------------------------------------------------


def markdown_table() -> str:
    """The variables as the Markdown table in docs/cli.md."""
    rows = ["| variable | flag | default | meaning |", "|---|---|---|---|"]
    for v in VARIABLES:
        name = f"`{v.name}`" + (f" (else `{v.fallback}`)" if v.fallback else "")
        option = f"`{v.option}`" if v.option else ""
        rows.append(f"| {name} | {option} | {v.default} | {v.description} |")
    return "\n".join(rows) + "\n"
