"""`inprocess_runner.run(client, queue, fn)`: a worker that runs tasks in its own process
(no fork per task: for short tasks; a crash of a task takes the worker with it)."""

from __future__ import annotations

from typing import Any

from blueque.client import Client
from blueque.environment import WorkerSettings
from blueque.outcome import TaskFunction
from blueque.runners import InProcessRunner
from blueque.worker import Worker


def run(client: Client, queue: str, fn: TaskFunction, **settings: Any) -> int:
    """Works on `queue` until stopped; returns the exit code."""
    worker_settings = WorkerSettings.from_env(**settings).with_(fork=False)
    return Worker(client, queue, fn, InProcessRunner(), worker_settings).run()
