"""The BlueQueue spec as typed, frozen values, parsed from the object the API server returns.

The numeric sections (`scaling`, `tasks`) are declared once, as dataclass fields whose metadata
names the CRD field, its kind, its lowest value and a one-line description: the parser here and
the CRD schema (`crd.py`) are both built from it, so their defaults and limits cannot drift.
The `tasks` defaults are the library's per-queue config defaults (a unit test holds them equal),
and every field is always written, so a field removed from the spec resets to its default.

The API server has applied the schema's defaults and checks before the operator sees an
object; parsing again is for what a schema cannot say (the queue name defaulting to
`metadata.name`, a password inside the Redis URL, reserved environment variables) and for
objects stored under an older schema. Unknown fields are ignored: the API server prunes them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from blueque import environment as env
from blueque.config import validate_settings
from blueque.errors import ConfigError, InvalidNameError
from blueque.keys import DEFAULT_NAMESPACE, validate_queue_name
from blueque_operator.errors import SpecError

Json = Mapping[str, Any]

DEFAULT_COMMAND = ("blueque", "worker")
DEFAULT_GRACE_PERIOD_S = 3600
"""Long by default: tasks never time out, and a busy worker told to stop finishes its task."""

REDIS_URL_SCHEMES = (
    "redis",
    "rediss",
    "unix",
    "redis+cluster",
    "rediss+cluster",
    "redis+sentinel",
    "rediss+sentinel",
)
"""The URL forms `blueque.connection.connect` accepts."""

KEY_PREFIX_PATTERN = r"^[A-Za-z0-9._:-]+$"
"""With at most 200 characters. The library's namespace prefixes every key; braces in it would
move the Redis Cluster hash tag."""

RESERVED_ENV = (
    env.REDIS_URL,
    env.REDIS_PASSWORD,
    env.NAMESPACE,
    env.QUEUE,
    env.WORKER_ID,
    env.OWNER,
    env.POD_NAME,
    env.POD_UID,
    env.POD_NAME_FALLBACK,
    env.POD_UID_FALLBACK,
)
"""Set by the operator in the worker container, or read by the worker in place of what the
operator sets (BLUEQUE_POD_UID before POD_UID). A user-set worker id in particular would be
shared by every replica."""

WORKER_CONTAINER = "worker"
"""In a full pod template, the container the operator configures: the one of this name, else
the first."""


def _setting(crd_name: str, default: Any, minimum: float | None, doc: str) -> Any:
    """A numeric or boolean spec field, described once for the parser and the CRD schema."""
    return field(default=default, metadata={"crd": crd_name, "minimum": minimum, "doc": doc})


@dataclass(frozen=True)
class ScalingSpec:
    min_replicas: int = _setting("minReplicas", 0, 0, "Fewest worker pods; 0 scales to zero.")
    max_replicas: int = _setting("maxReplicas", 10, 0, "Most worker pods.")
    tasks_per_worker: int = _setting(
        "tasksPerWorker", 1, 1, "Outstanding tasks per replica that the scaler aims for."
    )
    scale_down_delay_s: float = _setting(
        "scaleDownDelaySeconds",
        30.0,
        0,
        "How long demand must stay below the replicas before idle workers are removed.",
    )
    poll_interval_s: float = _setting(
        "pollIntervalSeconds", 1.0, 0.1, "How often the queue is read and the scale decided."
    )
    paused: bool = _setting("paused", False, None, "Leave the replicas and drains as they are.")


@dataclass(frozen=True)
class TasksSpec:
    """The queue's per-queue config; the names on the right are the library's."""

    max_attempts: int = _setting(
        "maxAttempts", 3, 1, "Times a task may lose its worker before it fails 'worker lost'."
    )
    keep_finished: int = _setting(
        "keepFinished",
        10000,
        1,
        "Finished tasks kept per index (complete, failed, cancelled); at least 1.",
    )
    finished_ttl_s: int = _setting(
        "finishedTtlSeconds", 604800, 1, "Finished tasks older than this are deleted."
    )
    retry_max: int = _setting("retryMax", 0, 0, "Automatic retries of a task that raised.")
    retry_delay_s: float = _setting(
        "retryDelaySeconds", 10.0, 0, "Delay before the first automatic retry."
    )
    retry_backoff: float = _setting(
        "retryBackoff", 2.0, 1, "Factor by which each further retry's delay grows."
    )

    def as_config(self) -> dict[str, int | float]:
        """Every field, by the library's names (`Queue.set_config`)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class SecretKeyRef:
    name: str
    key: str


@dataclass(frozen=True)
class RedisSpec:
    url: str
    password_secret_ref: SecretKeyRef | None = None
    key_prefix: str = DEFAULT_NAMESPACE


@dataclass(frozen=True)
class WorkerSpec:
    """Either the short form (`image` set) or a full pod template (`template` set)."""

    image: str | None = None
    command: tuple[str, ...] = DEFAULT_COMMAND
    args: tuple[str, ...] = ()
    env: tuple[Json, ...] = ()
    resources: Json = field(default_factory=dict)
    termination_grace_period_s: int = DEFAULT_GRACE_PERIOD_S
    """From the short form, else from the template's pod spec, else the default."""
    template: Json | None = None


@dataclass(frozen=True)
class BlueQueueSpec:
    name: str
    """The BlueQueue's metadata.name."""
    queue: str
    redis: RedisSpec
    worker: WorkerSpec
    scaling: ScalingSpec = field(default_factory=ScalingSpec)
    tasks: TasksSpec = field(default_factory=TasksSpec)


def parse_bluequeue(obj: Json) -> BlueQueueSpec:
    """The spec of a BlueQueue object (as a dict), or `SpecError` naming the bad field."""
    metadata = _mapping(obj.get("metadata"), "metadata")
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        raise SpecError("metadata.name: missing")
    spec = _mapping(obj.get("spec"), "spec")
    queue = spec.get("queue", name)
    try:
        validate_queue_name(queue)
    except InvalidNameError as exc:
        where = "spec.queue" if "queue" in spec else "spec.queue (default: metadata.name)"
        raise SpecError(f"{where}: {exc}") from None
    scaling = _section(ScalingSpec, spec.get("scaling"), "spec.scaling")
    if scaling.min_replicas > scaling.max_replicas:
        raise SpecError(
            f"spec.scaling: minReplicas ({scaling.min_replicas}) is above"
            f" maxReplicas ({scaling.max_replicas})"
        )
    tasks = _section(TasksSpec, spec.get("tasks"), "spec.tasks")
    try:
        validate_settings(tasks.as_config())
    except ConfigError as exc:  # the CRD's limits come from the same fields; kept as a guard
        raise SpecError(f"spec.tasks: {exc}") from None
    return BlueQueueSpec(
        name=name,
        queue=queue,
        redis=_redis(_mapping(spec.get("redis"), "spec.redis")),
        worker=_worker(_mapping(spec.get("worker"), "spec.worker")),
        scaling=scaling,
        tasks=tasks,
    )


_S = TypeVar("_S", ScalingSpec, TasksSpec)


def _section(cls: type[_S], raw: object, path: str) -> _S:
    section = _mapping({} if raw is None else raw, path)
    values: dict[str, Any] = {}
    for f in fields(cls):
        crd_name = f.metadata["crd"]
        value = section.get(crd_name)
        if value is None:
            continue  # unset: the default
        where = f"{path}.{crd_name}"
        if isinstance(f.default, bool):
            if not isinstance(value, bool):
                raise SpecError(f"{where}: must be true or false, got {value!r}")
        elif isinstance(f.default, int):
            if isinstance(value, bool) or not isinstance(value, int):
                raise SpecError(f"{where}: must be a whole number, got {value!r}")
        else:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise SpecError(f"{where}: must be a number, got {value!r}")
            value = float(value)
        minimum = f.metadata["minimum"]
        if minimum is not None and value < minimum:
            raise SpecError(f"{where}: must be >= {minimum:g}, got {value!r}")
        values[f.name] = value
    return cls(**values)


def _redis(raw: Json) -> RedisSpec:
    url = raw.get("url")
    if not isinstance(url, str) or not url:
        raise SpecError("spec.redis.url: missing")
    parts = urlsplit(url)
    if parts.scheme.lower() not in REDIS_URL_SCHEMES:
        raise SpecError(
            f"spec.redis.url: unsupported scheme {parts.scheme!r};"
            f" use one of {', '.join(s + '://' for s in REDIS_URL_SCHEMES)}"
        )
    userinfo = parts.netloc.rpartition("@")[0]
    if ":" in userinfo or "password" in parse_qs(parts.query):
        raise SpecError(
            "spec.redis.url: holds a password; put it in a Secret and name it in"
            " spec.redis.passwordSecretRef"
        )
    ref = raw.get("passwordSecretRef")
    secret = None
    if ref is not None:
        ref = _mapping(ref, "spec.redis.passwordSecretRef")
        secret = SecretKeyRef(
            name=_string(ref.get("name"), "spec.redis.passwordSecretRef.name"),
            key=_string(ref.get("key"), "spec.redis.passwordSecretRef.key"),
        )
    prefix = raw.get("keyPrefix", DEFAULT_NAMESPACE)
    if not isinstance(prefix, str) or len(prefix) > 200 or not re.match(KEY_PREFIX_PATTERN, prefix):
        raise SpecError(
            f"spec.redis.keyPrefix: {prefix!r} is not 1-200 characters of A-Z a-z 0-9 . _ : -"
        )
    return RedisSpec(url=url, password_secret_ref=secret, key_prefix=prefix)


_SHORT_FORM = ("image", "command", "args", "env", "resources", "terminationGracePeriodSeconds")


def _worker(raw: Json) -> WorkerSpec:
    template = raw.get("template")
    if template is not None:
        given = [name for name in _SHORT_FORM if name in raw]
        if given:
            raise SpecError(
                f"spec.worker: {', '.join(given)} cannot be given with a template;"
                " put them in the template instead"
            )
        return _template_worker(_mapping(template, "spec.worker.template"))
    image = raw.get("image")
    if not isinstance(image, str) or not image:
        raise SpecError("spec.worker: give an image (or a full pod template)")
    env = tuple(_env_list(raw.get("env"), "spec.worker.env"))
    grace = raw.get("terminationGracePeriodSeconds", DEFAULT_GRACE_PERIOD_S)
    return WorkerSpec(
        image=image,
        command=_strings(raw.get("command", DEFAULT_COMMAND), "spec.worker.command"),
        args=_strings(raw.get("args", ()), "spec.worker.args"),
        env=env,
        resources=_mapping(raw.get("resources", {}), "spec.worker.resources"),
        termination_grace_period_s=_grace(grace, "spec.worker.terminationGracePeriodSeconds"),
    )


def _template_worker(template: Json) -> WorkerSpec:
    pod_spec = _mapping(template.get("spec", {}), "spec.worker.template.spec")
    containers = pod_spec.get("containers")
    if not isinstance(containers, list) or not containers:
        raise SpecError("spec.worker.template.spec.containers: at least one container is needed")
    index = worker_container_index(containers)
    container = _mapping(containers[index], f"spec.worker.template.spec.containers[{index}]")
    _env_list(container.get("env"), f"spec.worker.template.spec.containers[{index}].env")
    grace = pod_spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE_PERIOD_S)
    return WorkerSpec(
        template=template,
        termination_grace_period_s=_grace(
            grace, "spec.worker.template.spec.terminationGracePeriodSeconds"
        ),
    )


def worker_container_index(containers: Sequence[Any]) -> int:
    """Which container of a pod template runs the worker (`WORKER_CONTAINER`, else the first)."""
    for index, container in enumerate(containers):
        if isinstance(container, Mapping) and container.get("name") == WORKER_CONTAINER:
            return index
    return 0


def _env_list(raw: object, path: str) -> list[Json]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise SpecError(f"{path}: must be a list")
    entries = [_mapping(entry, f"{path}[{i}]") for i, entry in enumerate(raw)]
    for i, entry in enumerate(entries):
        name = _string(entry.get("name"), f"{path}[{i}].name")
        if name in RESERVED_ENV:
            raise SpecError(f"{path}[{i}]: {name} is set by the operator")
    return entries


def _grace(value: object, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SpecError(f"{path}: must be a whole number of seconds >= 0, got {value!r}")
    return value


def _mapping(value: object, path: str) -> Json:
    if not isinstance(value, Mapping):
        raise SpecError(f"{path}: must be an object, got {type(value).__name__}")
    return value


def _string(value: object, path: str) -> str:
    if not isinstance(value, str) or not value:
        raise SpecError(f"{path}: must be a non-empty string")
    return value


def _strings(value: object, path: str) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise SpecError(f"{path}: must be a list of strings")
    return tuple(value)
