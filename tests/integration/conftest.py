"""Fixtures of the integration tests: worker subprocesses that never outlive their test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.workers import WorkerSpawner


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[WorkerSpawner]:
    spawner = WorkerSpawner(tmp_path)
    try:
        yield spawner
    finally:
        spawner.kill_all()
