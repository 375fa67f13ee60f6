"""Turning a task function's return value or exception into what `finish` records."""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

from blueque.errors import PayloadError
from blueque.records import ErrorInfo
from blueque.serialization import encode
from blueque.task import Task

TaskFunction = Callable[[Task], Any]


def error_info(exc: BaseException) -> ErrorInfo:
    """Exception type (qualified), message and full traceback."""
    kind = type(exc)
    module = "" if kind.__module__ == "builtins" else kind.__module__ + "."
    return {
        "type": module + kind.__qualname__,
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(exc)),
    }


def call_task_function(fn: TaskFunction, task: Task) -> tuple[str, str]:
    """Runs the user's function; returns (outcome, payload) ready for `finish`."""
    try:
        result = fn(task)
    except BaseException as exc:  # a task that raises SystemExit has failed too
        return "failed", encode(error_info(exc))
    try:
        return "complete", encode(result, "result")
    except PayloadError as exc:
        return "failed", encode(error_info(exc))
