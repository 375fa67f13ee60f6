"""Key names of the Redis protocol: the only place they are built.

Every key of a queue carries the queue name as a Redis Cluster hash tag (`{queue}`), so all
of a queue's state lives in one slot and each transition can be one atomic script. Task ids
embed their queue's name (`<queue>:<time-ordered hex>`) so a task's hash can be located, in
the right slot, from its id alone. See PROTOCOL.md for the layout these functions implement.
"""

from __future__ import annotations

import functools
import os
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass

from blueque.errors import InvalidArgumentError, InvalidNameError

PROTOCOL_VERSION = 2
DEFAULT_NAMESPACE = "blueque"
# The longest delay the protocol takes (a schedule, a retry delay, a retention): ten years.
# Due times must stay dates every client can represent, and a longer delay is a mistake.
MAX_DELAY_S = 10 * 365 * 24 * 3600

_NAME = re.compile(r"[A-Za-z0-9._-]{1,200}")
# A namespace may also hold colons (`app:blueque`), never braces: the scripts find a queue's
# prefix as the text up to the first `}:`, which must be the end of the queue's hash tag.
_NAMESPACE = re.compile(r"[A-Za-z0-9._:-]{1,100}")
_TASK_ID = re.compile(r"(?P<queue>[A-Za-z0-9._-]{1,200}):(?P<unique>[0-9a-f]{32})")


def _validate(kind: str, value: str, pattern: re.Pattern[str], rule: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise InvalidNameError(f"invalid {kind} {value!r}: use {rule}")
    return value


def validate_queue_name(name: str) -> str:
    return _validate("queue name", name, _NAME, "1-200 characters of A-Z a-z 0-9 . _ -")


def validate_worker_id(worker_id: str) -> str:
    return _validate("worker id", worker_id, _NAME, "1-200 characters of A-Z a-z 0-9 . _ -")


def validate_namespace(namespace: str) -> str:
    return _validate("namespace", namespace, _NAMESPACE, "1-100 characters of A-Z a-z 0-9 . _ : -")


def sanitize_worker_id(raw: str) -> str:
    """Turns a host name or pod name into a valid worker id."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "-", raw)[:200]
    return cleaned or "worker"


def new_task_id(queue: str) -> str:
    """A unique id that sorts by creation time (48-bit ms clock + 80 random bits)."""
    millis = time.time_ns() // 1_000_000
    return f"{queue}:{millis:012x}{_RANDOM.hex20()}"


class _RandomDigits:
    """Random hex digits from the OS, read for 128 ids at a time: a read per id (a system
    call) cost more than the rest of the id. Each group of digits is handed out once: by a
    list iterator, whose `next` is atomic, so threads need no lock (two that find it empty
    both read more, and each group of either read still goes to one caller). A forked child
    forgets what its parent read, so that the two never hand out the same digits."""

    IDS_PER_READ = 128

    def __init__(self) -> None:
        self._groups: Iterator[str] = iter(())
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._groups = iter(())

    def hex20(self) -> str:
        """20 hex digits (80 bits) never handed out before by this process."""
        group = next(self._groups, None)
        while group is None:
            digits = secrets.token_hex(10 * self.IDS_PER_READ)
            self._groups = iter([digits[i : i + 20] for i in range(0, len(digits), 20)])
            group = next(self._groups, None)
        return group


_RANDOM = _RandomDigits()


def queue_of_task(task_id: str) -> str:
    """The queue a task id belongs to."""
    match = _TASK_ID.fullmatch(task_id) if isinstance(task_id, str) else None
    if match is None:
        raise InvalidNameError(f"invalid task id {task_id!r}: expected '<queue>:<32 hex digits>'")
    return match["queue"]


@dataclass(frozen=True)
class QueueKeys:
    """Every key of one queue. (The fixed ones are cached: each operation names several.)"""

    namespace: str
    queue: str

    @functools.cached_property
    def prefix(self) -> str:
        return f"{self.namespace}:{{{self.queue}}}:"

    @functools.cached_property
    def pending(self) -> str:
        return self.prefix + "pending"

    @functools.cached_property
    def scheduled(self) -> str:
        return self.prefix + "scheduled"

    @functools.cached_property
    def complete(self) -> str:
        return self.prefix + "complete"

    @functools.cached_property
    def failed(self) -> str:
        return self.prefix + "failed"

    @functools.cached_property
    def cancelled(self) -> str:
        return self.prefix + "cancelled"

    @functools.cached_property
    def stats(self) -> str:
        return self.prefix + "stats"

    @functools.cached_property
    def config(self) -> str:
        return self.prefix + "config"

    @functools.cached_property
    def events(self) -> str:
        return self.prefix + "events"

    @functools.cached_property
    def workers(self) -> str:
        return self.prefix + "workers"

    @functools.cached_property
    def draining(self) -> str:
        return self.prefix + "draining"

    @functools.cached_property
    def owner(self) -> str:
        """The ownership claim: which operator (BlueQueue UID) acts for this queue."""
        return self.prefix + "owner"

    def finished(self, state: str) -> str:
        """The index of finished tasks in `state` (complete, failed or cancelled)."""
        if state not in ("complete", "failed", "cancelled"):
            raise InvalidArgumentError(f"no index of finished tasks in state {state!r}")
        return self.prefix + state

    def task(self, task_id: str) -> str:
        return self.prefix + "task:" + task_id

    def task_done(self, task_id: str) -> str:
        """The stream on which a client waits for the task to finish (script `await`)."""
        return self.prefix + "task:" + task_id + ":done"

    def worker(self, worker_id: str) -> str:
        return self.prefix + "worker:" + worker_id

    def worker_tasks(self, worker_id: str) -> str:
        return self.prefix + "worker:" + worker_id + ":tasks"

    def worker_alive(self, worker_id: str) -> str:
        return self.prefix + "worker:" + worker_id + ":alive"


def queue_keys(queue: str, namespace: str = DEFAULT_NAMESPACE) -> QueueKeys:
    return QueueKeys(validate_namespace(namespace), validate_queue_name(queue))


# The Redis type of each key of a queue, by the part of its name after the prefix.
_TYPES = {
    "pending": "list",
    "scheduled": "zset",
    "complete": "zset",
    "failed": "zset",
    "cancelled": "zset",
    "stats": "hash",
    "config": "hash",
    "workers": "set",
    "draining": "set",
    "owner": "string",
}
_QUEUE_KEY = re.compile(r"[A-Za-z0-9._:-]{1,100}:\{(?P<queue>[A-Za-z0-9._-]{1,200})\}:(?P<rest>.+)")


def key_type(key: str) -> str | None:
    """The Redis type a key of a queue holds (`hash`, `list`, `zset`, `set`, `string`), or
    None for the events channel and for names that are no queue key."""
    match = _QUEUE_KEY.fullmatch(key)
    if match is None:
        return None
    rest = match["rest"]
    if rest in _TYPES:
        return _TYPES[rest]
    if rest.startswith("task:"):
        return "stream" if rest.endswith(":done") else "hash"  # (an id ends in hex digits)
    parts = rest.split(":")  # a worker id holds no colon
    if parts[0] == "worker" and len(parts) == 2:
        return "hash"
    if parts[0] == "worker" and len(parts) == 3:
        return {"tasks": "list", "alive": "string"}.get(parts[2])
    return None


def registry_key(namespace: str = DEFAULT_NAMESPACE) -> str:
    """The one cross-slot key: the set of queue names, for `info`. Never needed atomically."""
    return f"{validate_namespace(namespace)}:queues"
