"""Task functions for the worker pods of the kube tests: the pod runner's processes run in this
directory, so `blueque worker --task worker_tasks:run` imports this module."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from blueque import Task


def run(task: Task) -> Any:
    """{"echo": x} returns x; {"hold": path} reports its pid as progress (the task process is
    a child of the worker's), then waits (up to 30 s) for that file to exist."""
    params = task.parameters
    if "hold" in params:
        task.set_progress({"pid": os.getpid()})
        release = Path(params["hold"])
        deadline = time.monotonic() + 30
        while not release.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        return "released"
    return params["echo"]
