"""Every error Blueque raises on purpose, in one hierarchy callers can branch on.

`BluequeError` is the root. User mistakes (a bad queue name, an unknown task, a payload that
is not JSON) are `ValueError`/`LookupError` subclasses too, so generic handlers keep working.
"""

from __future__ import annotations


class BluequeError(Exception):
    """Base class of every error Blueque raises on purpose."""


class InvalidNameError(BluequeError, ValueError):
    """A queue name, worker id or task id that the protocol cannot carry."""


class PayloadError(BluequeError, TypeError):
    """Parameters, a result or progress that cannot be encoded as JSON."""


class TaskNotFoundError(BluequeError, LookupError):
    """No task with this id exists (never did, was deleted, or retention removed it)."""


class InvalidArgumentError(BluequeError, ValueError, TypeError):
    """An argument of the wrong kind or out of its documented range (a delay of `nan` or of
    a thousand years, a string where a list of parameters is meant). A `ValueError` and a
    `TypeError` both, so handlers of either built-in keep working."""


class CorruptKeyError(BluequeError):
    """A key of the protocol holds what the protocol cannot read: the wrong Redis type (a
    task hash replaced by a string), or a counter or setting that is not a number. `key`
    names it (None when it could not be found)."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class CorruptTaskError(CorruptKeyError):
    """A task hash exists but misses fields or holds undecodable JSON."""


class InvalidStateError(BluequeError):
    """The task is not in a state that allows the operation (e.g. retry a running task)."""


class ConfigError(BluequeError, ValueError):
    """An invalid setting: an unknown field, a value out of range, a bad URL."""


class ConnectionFailedError(BluequeError, ConnectionError):
    """Redis could not be reached (or answered with a connection-level error)."""


class WaitTimeoutError(BluequeError, TimeoutError):
    """`Task.wait` gave up before the task finished."""


class TaskFailedError(BluequeError):
    """Raised by `Task.wait(raise_on_failure=True)` for a task that failed or was cancelled."""


class WorkerIdInUseError(BluequeError):
    """Another live worker holds this worker's id: two workers must not share one."""


class StopNow(BluequeError):  # noqa: N818 (control flow, not a failure)
    """A worker got a second stop signal: it leaves at once; its task stays in its list."""
