"""Turning a task function's return value or exception into what `finish` records.

Whatever the task returns or raises, the outcome is a payload that can be recorded: a result
JSON or UTF-8 cannot carry fails the task with a `PayloadError`, and an error is described
even when its message cannot be printed or holds a lone surrogate. So one poisonous task
fails with a reason and never takes its worker with it.
"""

from __future__ import annotations

import traceback
from typing import Any, Protocol

from blueque.records import ErrorInfo
from blueque.serialization import encode, printable
from blueque.states import Outcome
from blueque.task import Task


class TaskFunction(Protocol):
    """What a worker runs: takes the begun `Task` (its `parameters`, `set_progress`) and
    returns a JSON value (the result) or raises (the task fails)."""

    def __call__(self, task: Task, /) -> Any: ...


def error_info(exc: BaseException) -> ErrorInfo:
    """Exception type (qualified), message and full traceback; always encodable."""
    kind = type(exc)
    module = "" if kind.__module__ == "builtins" else kind.__module__ + "."
    return {
        "type": printable(module + kind.__qualname__),
        "message": printable(_message(exc)),
        "traceback": printable(_traceback(exc)),
    }


def _message(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception as failure:  # __str__ is the task's code, and may fail
        try:
            reason = f"{type(failure).__name__}: {failure}"
        except Exception:
            reason = type(failure).__name__
        return f"<str() of this {type(exc).__name__} raised {reason}>"


def _traceback(exc: BaseException) -> str:
    try:
        return "".join(traceback.format_exception(exc))
    except Exception as failure:
        return f"<the traceback could not be formatted: {type(failure).__name__}>"


def call_task_function(fn: TaskFunction, task: Task) -> tuple[Outcome, str]:
    """Runs the user's function; returns (outcome, payload) ready for `finish`."""
    try:
        result = fn(task)
    except BaseException as exc:  # a task that raises SystemExit has failed too
        return "failed", encode(error_info(exc))
    try:
        return "complete", encode(result, "result")
    except Exception as exc:  # a PayloadError, or a result object that fails to serialize
        return "failed", encode(error_info(exc))
