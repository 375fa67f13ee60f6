"""Fixtures of the integration tests: worker and `blueque` subprocesses that never outlive their
test (`workers` runs tests/support/worker_main.py, `bq` the real console script)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from blueque import Client, Queue
from tests.support.cli_processes import BluequeRunner
from tests.support.workers import WorkerSpawner


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[WorkerSpawner]:
    spawner = WorkerSpawner(tmp_path)
    try:
        yield spawner
    finally:
        spawner.kill_all()


@pytest.fixture
def bq(redis_url: str, tmp_path: Path) -> Iterator[BluequeRunner]:
    runner = BluequeRunner(redis_url, tmp_path)
    try:
        yield runner
    finally:
        runner.kill_all()


@pytest.fixture
def queue(redis_url: str, request: pytest.FixtureRequest) -> Iterator[Queue]:
    """The test module's queue (its `Q`) through a client of the flushed standalone server."""
    client = Client(redis_url)
    try:
        yield client.get_queue(request.module.Q)
    finally:
        client.close()
