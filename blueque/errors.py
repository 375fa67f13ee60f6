"""Every error Blueque raises on purpose, in one hierarchy callers can branch on.

`BluequeError` is the root. Each error also subclasses the built-in exception a caller would
expect (a bad queue name is a `ValueError`, an unknown task a `LookupError`, a slow Redis a
`TimeoutError`...), so generic handlers keep working; nothing in the public API raises a bare
built-in on purpose (tests/unit/test_errors.py checks the source).
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


class ProtocolError(BluequeError):
    """Redis answered something the protocol does not define (a script of another version
    or a foreign key in the queue's slot)."""


class ConfigError(BluequeError, ValueError):
    """An invalid setting: an unknown field, a value out of range, a bad URL."""


class DetachedTaskError(BluequeError, RuntimeError):
    """An operation on a `Task` built by hand, without the queue it belongs to."""


class ConnectionFailedError(BluequeError, ConnectionError):
    """Redis could not be reached (or answered with a connection-level error)."""


class RedisTimeoutError(ConnectionFailedError, TimeoutError):
    """Redis did not answer in time (e.g. no confirmation of a subscription)."""


class WaitTimeoutError(BluequeError, TimeoutError):
    """`Task.wait` gave up before the task finished."""


class TaskFailedError(BluequeError):
    """Raised by `Task.wait(raise_on_failure=True)` for a task that failed or was cancelled."""


class WorkerIdInUseError(BluequeError):
    """Another live worker holds this worker's id: two workers must not share one."""


class StopNow(BluequeError):  # noqa: N818 (control flow, not a failure)
    """A worker got a second stop signal: it leaves at once; its task stays in its list."""
