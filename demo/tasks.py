"""The demo's task function: pretends to work for a while, reporting progress."""

from __future__ import annotations

import time
from typing import Any

from blueque import Task


class DemoError(Exception):
    """Raised on purpose, to show a failed task with its traceback."""


def work(task: Task) -> dict[str, Any]:
    params = task.parameters
    seconds = float(params.get("seconds", 1.0))
    started = time.monotonic()
    steps = max(1, int(seconds / 0.25))
    for step in range(steps):
        time.sleep(seconds / steps)
        task.set_progress({"percent": round(100 * (step + 1) / steps)})
    if params.get("fail"):
        raise DemoError(f"task {params.get('n')} failed on purpose")
    return {"n": params.get("n"), "slept_s": round(time.monotonic() - started, 2)}
