"""Unit fixtures: a Blueque client on fakeredis (its Lua runtime runs the real scripts)."""

from __future__ import annotations

from collections.abc import Iterator

import fakeredis
import pytest

from blueque import Client


@pytest.fixture
def fake_client() -> Iterator[Client]:
    server = fakeredis.FakeServer()
    client = Client(redis=fakeredis.FakeRedis(server=server, decode_responses=True))
    try:
        yield client
    finally:
        client.close()
