"""`forking_runner.run(client, queue, fn)`: a worker that forks a child per task."""

from __future__ import annotations

from typing import Any

from blueque.client import Client
from blueque.environment import WorkerSettings
from blueque.outcome import TaskFunction
from blueque.runners import ForkingRunner
from blueque.worker import Worker


def run(client: Client, queue: str, fn: TaskFunction, **settings: Any) -> int:
    """Works on `queue` until stopped; returns the exit code. `settings` are
    `WorkerSettings` fields; the environment (`BLUEQUE_*`) fills in the rest."""
    worker_settings = WorkerSettings.from_env(**settings).with_(fork=True)
    return Worker(client, queue, fn, ForkingRunner(), worker_settings).run()
