"""The task function of the benchmarks' worker pods: `blueque worker --task
bench.kube.tasks:run`, run by the pod runner with the repository root as working directory."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from blueque import Task

HOLD_LIMIT_S = 300.0


def run(task: Task) -> Any:
    """{"echo": x} returns x at once; {"hold": path} waits until that file exists (at most
    `HOLD_LIMIT_S`): a task as long as the benchmark wants."""
    params = task.parameters
    if "hold" in params:
        release = Path(params["hold"])
        deadline = time.monotonic() + HOLD_LIMIT_S
        while not release.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        return "released"
    return params["echo"]
