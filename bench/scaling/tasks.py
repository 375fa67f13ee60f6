"""The benchmark's task: `{"s": seconds}` sleeps that long (in the worker's forked child)."""

from __future__ import annotations

import time

from blueque import Task


def run(task: Task) -> None:
    time.sleep(float(task.parameters["s"]))
