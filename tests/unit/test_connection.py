"""Connection settings from keywords and URLs (no server needed: redis-py connects lazily)."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from blueque import Client, ConfigError, ConnectionFailedError
from blueque.aio.io import ASYNC
from blueque.connection import (
    REDIS_DOWN,
    SOCKET_TIMEOUT_S,
    RedisClient,
    block_limit_s,
    check_claim_timeout,
    connect,
    redact,
    redis_errors,
    unavailable,
)


def standalone(client: RedisClient) -> redis.Redis:
    assert isinstance(client, redis.Redis), client
    return client


def pool_kwargs(client: RedisClient) -> dict[str, Any]:
    kwargs: dict[str, Any] = standalone(client).connection_pool.connection_kwargs
    return kwargs


def test_keywords_of_the_original_client() -> None:
    with Client(hostname="cache.internal", port=6380, db=2, password="pw") as client:
        kwargs = pool_kwargs(client.redis)
        assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("cache.internal", 6380, 2)
        assert kwargs["password"] == "pw" and kwargs["decode_responses"] is True


def test_url_forms() -> None:
    r = standalone(connect("redis://:secret@10.0.0.5:6390/3"))
    try:
        kwargs = pool_kwargs(r)
        assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("10.0.0.5", 6390, 3)
        assert kwargs["password"] == "secret"
        # No silent command retries: a retried script could apply a transition twice.
        retry = r.get_retry()
        assert retry is not None and retry._retries == 0
    finally:
        r.close()
    tls = standalone(connect("rediss://h:6379/0"))
    try:
        assert tls.connection_pool.connection_class.__name__ == "SSLConnection"
    finally:
        tls.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://localhost:6379", "unsupported Redis URL scheme 'http'"),
        ("redis+sentinel://h1:26379,h2:26379", "needs the master name"),
        # A traceback before; /abc silently meant database 0.
        ("redis://:pw-1@h:notaport/0", "invalid Redis URL redis://:\\*\\*\\*@h:notaport/0: Port"),
        ("redis://h:99999/0", "Port out of range"),
        ("redis://:pw-1@h:6379/abc", "the database must be a number, got 'abc'"),
        ("rediss://h/1/2", "the database must be a number, got '1/2'"),
        ("redis://h/0?db=x", "the database must be a number, got 'x'"),
        ("unix:///tmp/r.sock?db=-1", "the database must be a number, got '-1'"),
        ("redis://h/0?socket_timeout=soon", "Invalid value for 'socket_timeout'"),
        ("redis+sentinel://u:pw-1@h:x/master", "invalid Redis URL"),
        ("redis+sentinel://h:1/master/abc", "invalid Redis URL"),
        ("redis+cluster://h:port", "invalid Redis URL"),
    ],
)
def test_bad_urls(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        connect(url)
    assert "pw-1" not in str(err.value)


@pytest.mark.parametrize(
    ("url", "username"),
    [
        ("redis://app:old@10.0.0.5:6390/3", "app"),
        ("redis://10.0.0.5:6390/3", None),
        ("rediss://:old@10.0.0.5:6390/3", None),
        ("unix://:old@/run/redis.sock?db=3", None),
        ("redis+sentinel://app:old@10.0.0.5:26379/mymaster/3", "app"),
    ],
)
def test_a_password_keyword_supplies_or_replaces_the_urls(url: str, username: str | None) -> None:
    # How BLUEQUE_REDIS_PASSWORD (a Kubernetes Secret) reaches a URL from a ConfigMap.
    r = connect(url, password="from-secret")
    try:
        kwargs = pool_kwargs(r)
        assert kwargs["password"] == "from-secret"
        assert kwargs.get("username") == username
        assert kwargs["db"] == 3
    finally:
        r.close()


def test_a_password_in_a_bad_url_is_not_repeated() -> None:
    with pytest.raises(ConfigError) as caught:
        connect("http://app:topsecret@host:6379")
    assert "topsecret" not in str(caught.value) and "app:***@host" in str(caught.value)


@pytest.mark.parametrize(
    ("keywords", "message"),
    [
        ({"port": 99999}, "port must be a whole number 1-65535"),
        ({"port": "6379"}, "port must be a whole number"),
        ({"db": -1}, "db must be a whole number 0-"),
        ({"db": "abc"}, "db must be a whole number"),
    ],
)
def test_bad_keywords(keywords: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Client(**keywords)  # type: ignore[arg-type]


def test_redact_hides_every_password_in_a_text() -> None:
    text = "in 'redis://:s3cret@h:1/0' or rediss+sentinel://bob:p%40ss@h1:1,h2:2/m and redis://h/0"
    assert redact(text) == (
        "in 'redis://:***@h:1/0' or rediss+sentinel://bob:***@h1:1,h2:2/m and redis://h/0"
    )
    assert redact("redis://user@h/0") == "redis://user@h/0"  # no password to hide
    assert redact("'unix:///r.sock?db=1&password=pw'") == "'unix:///r.sock?db=1&password=***'"


def test_the_socket_timeout_bounds_the_claim_timeout() -> None:
    # A blocking claim longer than the socket timeout read as a lost connection.
    client = connect("redis://h/0")
    try:
        assert pool_kwargs(client)["socket_timeout"] == SOCKET_TIMEOUT_S
        check_claim_timeout(client, SOCKET_TIMEOUT_S - 1)
        with pytest.raises(ConfigError, match=r"claim_timeout_s .* must be at most 4 s"):
            check_claim_timeout(client, SOCKET_TIMEOUT_S)
    finally:
        client.close()
    short = connect("redis://h/0?socket_timeout=2")
    try:
        with pytest.raises(ConfigError, match="at most 1 s"):
            check_claim_timeout(short, 1.5)
    finally:
        short.close()


@pytest.mark.parametrize(
    ("url", "limit_s"),
    [
        ("redis://h/0", SOCKET_TIMEOUT_S - 1),
        ("redis://h/0?socket_timeout=2", 1.0),
    ],
)
def test_a_waits_blocking_read_ends_within_the_socket_timeout(url: str, limit_s: float) -> None:
    client = connect(url)
    try:
        assert block_limit_s(client) == limit_s
    finally:
        client.close()
    assert block_limit_s(redis.Redis(socket_timeout=None)) is None  # no timeout: no limit
    # An asyncio cluster client (which connects only when first used): its nodes' timeout.
    cluster = connect("redis+cluster://h:7000?socket_timeout=3", flavor=ASYNC)
    assert block_limit_s(cluster) == 2.0


def _cluster_unreachable() -> redis.exceptions.RedisClusterException:
    """What redis-py raises when no node of a cluster answers: an untyped exception whose
    cause is the last node's connection error."""
    try:
        raise redis.exceptions.RedisClusterException(
            "Redis Cluster cannot be connected. Please provide at least one reachable node"
        ) from redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:7000.")
    except redis.exceptions.RedisClusterException as exc:
        return exc


def _not_a_cluster() -> redis.exceptions.RedisClusterException:
    try:
        raise redis.exceptions.RedisClusterException(
            "Redis Cluster cannot be connected. Please provide at least one reachable node"
        ) from redis.exceptions.RedisClusterException("Cluster mode is not enabled on this node")
    except redis.exceptions.RedisClusterException as exc:
        return exc


PASSING: list[BaseException] = [
    redis.exceptions.ClusterDownError("CLUSTERDOWN The cluster is down"),
    redis.exceptions.MasterDownError("MASTERDOWN Link with MASTER is down"),
    redis.exceptions.TryAgainError("TRYAGAIN Multiple keys request during rehashing"),
    redis.exceptions.SlotNotCoveredError('Slot "42" is not covered by the cluster.'),
    redis.exceptions.ClusterError("TTL exhausted."),
]


@pytest.mark.parametrize("exc", PASSING, ids=lambda e: type(e).__name__)
def test_a_clusters_passing_states_are_redis_unavailable(exc: BaseException) -> None:
    assert isinstance(exc, REDIS_DOWN)
    assert unavailable(exc).startswith("Redis Cluster unavailable (")
    failed = pytest.raises(ConnectionFailedError, match="Redis Cluster unavailable while trying")
    with failed, redis_errors("read stats"):
        raise exc


def test_no_cluster_node_answering_is_redis_unreachable() -> None:
    failed = pytest.raises(ConnectionFailedError, match="no node of the Redis Cluster answers")
    with failed, redis_errors("read stats"):  # as the asyncio client meets it, on a command
        raise _cluster_unreachable()


MISTAKES: list[BaseException] = [
    _not_a_cluster(),
    redis.exceptions.ClusterCrossSlotError("CROSSSLOT Keys in request don't hash"),
    redis.exceptions.CrossSlotTransactionError("keys in a transaction on two slots"),
    redis.exceptions.ResponseError("ERR unknown command"),
]


@pytest.mark.parametrize("exc", MISTAKES, ids=lambda e: type(e).__name__ + ":" + str(e)[:20])
def test_cluster_mistakes_are_not_redis_unavailable(exc: BaseException) -> None:
    assert not isinstance(exc, REDIS_DOWN)
    with pytest.raises(type(exc)), redis_errors("read stats"):
        raise exc
