"""Connection settings from keywords and URLs (no server needed: redis-py connects lazily)."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from blueque import Client, ConfigError
from blueque.connection import RedisClient, connect


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
    ],
)
def test_bad_urls(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        connect(url)


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
