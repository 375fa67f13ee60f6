"""Task functions for tests that run a real `blueque worker` (`--task
tests.support.task_functions:NAME`, from the repository root)."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from blueque import Task
from tests.support.task_pids import register_pid


def echo(task: Task) -> Any:
    """Returns its parameters."""
    return task.parameters


def fail(task: Task) -> None:
    """Always raises, naming the attempt."""
    raise ValueError(f"boom on attempt {task.attempts}")


def hang(task: Task) -> None:
    """Reports its pid as progress, then sleeps forever. With {"ignore_sigterm": true} it
    ignores SIGTERM, so only SIGKILL stops it; with {"raise_on_sigterm": true} SIGTERM makes
    it raise (as a task that cleans up on SIGTERM does), so it records its own failure."""
    register_pid()
    params = task.parameters if isinstance(task.parameters, dict) else {}
    if params.get("ignore_sigterm"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if params.get("raise_on_sigterm"):
        signal.signal(signal.SIGTERM, _raise_interrupted)
    task.set_progress({"pid": os.getpid()})
    while True:
        time.sleep(60)


def _raise_interrupted(signum: int, frame: object) -> None:
    raise RuntimeError("interrupted by SIGTERM")


def steps(task: Task) -> str:
    """Reports progress {"step": i, "of": n} for each step, then waits (up to 30 s) for the
    file named by "release" before returning "done"."""
    register_pid()
    params = task.parameters
    total = int(params["steps"])
    for i in range(1, total + 1):
        task.set_progress({"step": i, "of": total})
    release = Path(params["release"])
    deadline = time.monotonic() + 30
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return "done"


def dispatch(task: Task) -> Any:
    """Runs the function named by parameters["do"] with parameters["with"], so one worker
    can run tasks of every kind above."""
    params = task.parameters
    fn = {"echo": echo, "fail": fail, "hang": hang, "steps": steps}[params["do"]]
    return fn(replace(task, parameters=params.get("with")))
