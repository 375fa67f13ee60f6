"""Fixtures shared by every test: real Redis servers, started once per session.

`client` is parametrized over a standalone server and a 3-master Redis Cluster, so every
protocol test runs on both. Each test starts from empty servers.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from blueque import Client
from tests.support.redis_servers import RedisCluster, RedisServer


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    with RedisCluster() as cluster:
        yield cluster


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """A flushed standalone server's URL."""
    flusher = redis.Redis(port=redis_server.port)
    try:
        flusher.flushall()
    finally:
        flusher.close()
    return redis_server.url


@pytest.fixture(params=["standalone", "cluster"])
def backend_url(request: pytest.FixtureRequest) -> str:
    """A flushed server's URL: standalone, then a 3-master cluster."""
    if request.param == "standalone":
        url: str = request.getfixturevalue("redis_url")
        return url
    cluster: RedisCluster = request.getfixturevalue("redis_cluster")
    cluster.flush()
    return cluster.url


@pytest.fixture
def client(backend_url: str) -> Iterator[Client]:
    c = Client(backend_url)
    try:
        yield c
    finally:
        c.close()
