"""Unit fixtures: a Blueque client on fakeredis (its Lua runtime runs the real scripts)."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator

import fakeredis
import pytest

from blueque import Client


@pytest.fixture
def fake_client() -> Iterator[Client]:
    if importlib.util.find_spec("lupa") is None:  # fakeredis runs Lua scripts through it
        pytest.fail("fakeredis cannot run Lua scripts: install fakeredis[lua] (./dev test does)")
    server = fakeredis.FakeServer()
    client = Client(redis=fakeredis.FakeRedis(server=server, decode_responses=True))
    try:
        yield client
    finally:
        client.close()
