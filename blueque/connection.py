"""Connecting to Redis: standalone, TLS, Sentinel or Cluster, from a URL or keywords.

Built-in command retries of redis-py are turned off: a retried script could apply a
transition twice, so callers that retry (the worker) do it themselves, knowing which calls
are safe to repeat. Connection-level failures surface as `ConnectionFailedError`.

What counts as "Redis is unavailable right now" is decided here once (`REDIS_DOWN`), for the
worker, the scheduler and the clients alike: a Redis Cluster's passing states (a restarted
master's `CLUSTERDOWN`, no node reachable) are outages like a standalone Redis restart.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeGuard
from urllib.parse import SplitResult, parse_qs, unquote, urlsplit

import redis
import redis.exceptions
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry
from redis.sentinel import Sentinel

from blueque.errors import ConfigError, ConnectionFailedError

# A Redis that does not answer within this long counts as unreachable. Set here, not left to
# redis-py's default (which changed between versions), since a worker's blocking claim must
# end well within it (see `check_claim_timeout`).
SOCKET_TIMEOUT_S = 5.0

_COMMON: dict[str, Any] = {
    "decode_responses": True,
    "socket_connect_timeout": 5.0,
    "socket_timeout": SOCKET_TIMEOUT_S,
    "socket_keepalive": True,
}


# A client of either topology. Blueque's own clients decode replies (`decode_responses`), so
# its reads are str; redis-py types them `bytes | str`, hence the casts where they are used.
RedisClient = redis.Redis | RedisCluster


@dataclass(frozen=True)
class Flavor:
    """The redis-py classes of one IO model: `redis` (sync) or `redis.asyncio`, which take
    the same arguments; so both clients read URLs and keywords here, the same way."""

    redis: Any
    cluster: Any
    sentinel: Any
    retry: Any

    def no_retry(self) -> Any:
        return self.retry(NoBackoff(), 0)


class _Cluster(RedisCluster):
    """`RedisCluster`, but when no node of the cluster answers (when it is built, or when a
    command finds every node it knows down) it raises `ConnectionFailedError`, as an
    unreachable standalone Redis does, not a `RedisClusterException` like a bad setting."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        try:
            super().__init__(*args, **kwargs)
        except redis.exceptions.RedisClusterException as exc:
            unreachable = _unreachable(exc)
            if unreachable is None:
                raise
            raise unreachable from exc

    def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().execute_command(*args, **kwargs)  # type: ignore[no-untyped-call]
        except redis.exceptions.RedisClusterException as exc:
            unreachable = _unreachable(exc)
            if unreachable is None:
                raise
            raise unreachable from exc


SYNC = Flavor(redis.Redis, _Cluster, Sentinel, Retry)


def connect(
    url: str | None = None,
    *,
    hostname: str = "localhost",
    port: int = 6379,
    db: int = 0,
    password: str | None = None,
    username: str | None = None,
    ssl: bool = False,
    cluster: bool = False,
    flavor: Flavor = SYNC,
) -> Any:
    """A redis-py client (`Redis` or `RedisCluster`; of `redis.asyncio` with its flavor)
    with Blueque's connection settings.

    URL forms: `redis://`, `rediss://` (TLS), `unix://`, `redis+cluster://host:port` (or
    `cluster=True`), `redis+sentinel://[user:pass@]host:port[,host:port...]/master[/db]`.
    With a URL, `password` supplies or replaces the URL's own (e.g. from a Kubernetes
    Secret, while the URL is in a ConfigMap).
    """
    if url is None:
        for name, value, lowest, highest in (("port", port, 1, 65535), ("db", db, 0, 2**31)):
            if (
                isinstance(value, bool)
                or not isinstance(value, int)
                or not lowest <= value <= highest
            ):
                raise ConfigError(
                    f"{name} must be a whole number {lowest}-{highest}, got {value!r}"
                )
        if cluster:
            return flavor.cluster(
                host=hostname,
                port=port,
                password=password,
                username=username,
                ssl=ssl,
                retry=flavor.no_retry(),
                **_COMMON,
            )
        return flavor.redis(
            host=hostname,
            port=port,
            db=db,
            password=password,
            username=username,
            ssl=ssl,
            retry=flavor.no_retry(),
            **_COMMON,
        )
    try:
        return _from_url(flavor, url, password, cluster)
    except ConfigError:
        raise
    except ValueError as exc:  # a port or db that is no number, a malformed URL
        raise ConfigError(f"invalid Redis URL {redact(url)}: {exc}") from None


def _from_url(flavor: Flavor, url: str, password: str | None, cluster: bool) -> Any:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if password is not None:
        # redis-py lets a URL's password win over the keyword: take it out of the URL.
        url = _without_password(url)
        parts = urlsplit(url)
    auth: dict[str, Any] = {} if password is None else {"password": password}
    if not scheme.endswith("+sentinel"):  # its hosts and path are parsed by _sentinel
        _check_url(url, parts)
    if scheme in ("redis+cluster", "rediss+cluster") or (cluster and scheme in ("redis", "rediss")):
        plain = ("rediss" if scheme.startswith("rediss") else "redis") + url[len(scheme) :]
        return flavor.cluster.from_url(plain, retry=flavor.no_retry(), **auth, **_COMMON)
    if scheme in ("redis+sentinel", "rediss+sentinel"):
        tls = scheme.startswith("rediss")
        return _sentinel(flavor, parts.netloc, parts.path, parts.query, tls, password)
    if scheme not in ("redis", "rediss", "unix"):
        raise ConfigError(f"unsupported Redis URL scheme {scheme!r} in {redact(url)}")
    options = dict(_COMMON)
    if scheme == "unix":
        del options["socket_keepalive"]  # a TCP option
    return flavor.redis.from_url(url, retry=flavor.no_retry(), **auth, **options)


def _with_userinfo(url: str, make: Callable[[str, str], str]) -> str:
    """The URL with its `user:password@` part rewritten by `make(username, password)`
    (text by text: urlunsplit would drop the `//` of a unix:// URL without a host)."""
    start = url.find("://")
    if start < 0:
        return url
    start += 3
    end = min((i for i in (url.find(c, start) for c in "/?#") if i >= 0), default=len(url))
    userinfo, at, hosts = url[start:end].rpartition("@")
    if not at:
        return url
    username, _, password = userinfo.partition(":")
    return url[:start] + make(username, password) + hosts + url[end:]


def _without_password(url: str) -> str:
    return _with_userinfo(url, lambda user, _: f"{user}@" if user else "")


def _check_url(url: str, parts: SplitResult) -> None:
    """Refuses what redis-py would silently read as something else: a database path that is
    no number (`/abc` meant database 0). A port that is no number raises here too."""
    parts.port  # noqa: B018 (raises ValueError for a port that is no number or out of range)
    path = "" if parts.scheme.lower() == "unix" else parts.path  # a unix path is the socket's
    for db in [path.strip("/"), *parse_qs(parts.query).get("db", [])]:
        if db and not (db.isdigit() and db.isascii()):
            raise ConfigError(
                f"invalid Redis URL {redact(url)}: the database must be a number, got {db!r}"
            )


_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:@/\s]*):[^@/\s]*@")


_QUERY_PASSWORD = re.compile(r"(?P<name>[?&]password=)[^&#\s'\"]*")


def redact(text: str) -> str:
    """`text` with the password of every URL in it (`user:password@`, `?password=`) replaced
    by `***`: for every message and log line that may show a URL."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
    return _QUERY_PASSWORD.sub(lambda m: f"{m['name']}***", text)


def _sentinel(
    flavor: Flavor, netloc: str, path: str, query: str, tls: bool, password_over: str | None
) -> Any:
    auth, _, hosts = netloc.rpartition("@")
    username, _, password = auth.partition(":") if auth else ("", "", "")
    if password_over is not None:
        password = password_over
    nodes: list[tuple[str, int]] = []
    for node in hosts.split(","):
        host, _, port = node.rpartition(":")
        nodes.append((host or node, int(port) if host else 26379))
    segments = [s for s in path.split("/") if s]
    if not segments:
        raise ConfigError("a redis+sentinel:// URL needs the master name as its path")
    master = unquote(segments[0])
    db = int(segments[1]) if len(segments) > 1 else int(parse_qs(query).get("db", ["0"])[0])
    auth_kwargs = {"username": unquote(username) or None, "password": unquote(password) or None}
    sentinel = flavor.sentinel(nodes, sentinel_kwargs=auth_kwargs, ssl=tls, **auth_kwargs)
    return sentinel.master_for(master, db=db, retry=flavor.no_retry(), **_COMMON)


# The passing states of a Redis Cluster: a master restarted, failing over or not yet agreed
# on by the others refuses commands (`CLUSTERDOWN`; `MASTERDOWN` on a replica), a slot in
# migration asks to try again (`TRYAGAIN`; `ClusterError` once redis-py's own tries at
# redirections and TRYAGAIN ran out), the client's slot map misses a slot. Each refuses a
# command before running it, so retrying a script refused so is safe. Not here: CROSSSLOT
# (a protocol bug), a pipeline's or a setting's mistake, a Redis not in cluster mode.
CLUSTER_PASSING = (
    redis.exceptions.ClusterError,  # CLUSTERDOWN, MASTERDOWN (ClusterDownError), TTL exhausted
    redis.exceptions.TryAgainError,
    redis.exceptions.SlotNotCoveredError,
)

# Redis cannot be reached or, a cluster, is in a passing state: what `redis_errors` turns
# into `ConnectionFailedError` for the clients.
CONNECTION_FAILURES = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    *CLUSTER_PASSING,
)

# What a caller that retries (the worker, the scheduler) treats as "Redis is unavailable
# right now": the above, or Redis is out of memory (`maxmemory` reached under `noeviction`)
# and refuses writes. A script refused for memory wrote nothing (Redis checks before a
# script's first write), so retrying it is as safe as retrying one that never arrived. A
# cluster none of whose nodes answers raises `ConnectionFailedError` (see `_Cluster`, and
# `redis_errors` for the asyncio client).
REDIS_DOWN = (*CONNECTION_FAILURES, redis.exceptions.OutOfMemoryError, ConnectionFailedError)


def _unreachable(exc: BaseException) -> ConnectionFailedError | None:
    """The `ConnectionFailedError` for a `RedisClusterException` raised because no node of
    the cluster answered (its cause is a connection error: redis-py gives the error no type
    of its own); None for any other (e.g. "Cluster mode is not enabled": a setting)."""
    cause = exc.__cause__
    if not isinstance(exc, redis.exceptions.RedisClusterException) or not isinstance(
        cause, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError
    ):
        return None
    return ConnectionFailedError(
        redact(f"{failure(cause)}: no node of the Redis Cluster answers ({cause})")
    )


def unavailable(exc: BaseException) -> str:
    """Why Redis is unavailable, for a log line (URL passwords redacted)."""
    if isinstance(exc, redis.exceptions.OutOfMemoryError):
        return f"Redis is out of memory and refuses writes ({exc})"
    if isinstance(exc, ConnectionFailedError):  # its message says why already
        return redact(str(exc))
    return redact(f"{failure(exc)} ({exc})")


def is_cluster(client: RedisClient) -> TypeGuard[RedisCluster]:
    return isinstance(client, RedisCluster)


def close(client: RedisClient) -> None:
    """Closes a client and its sockets. `RedisCluster.close()` leaves the node pools'
    sockets to the garbage collector, so they are disconnected here explicitly."""
    if isinstance(client, RedisCluster):
        for node in list(client.nodes_manager.nodes_cache.values()):
            if node.redis_connection is not None:
                node.redis_connection.connection_pool.disconnect()
    client.close()


def failure(exc: BaseException) -> str:
    """What went wrong with the connection, in a few words: a refused password is not an
    unreachable server."""
    if isinstance(exc, redis.exceptions.AuthenticationError | redis.exceptions.AuthorizationError):
        return "Redis authentication failed (check the user name and password)"
    if isinstance(exc, CLUSTER_PASSING):
        return "Redis Cluster unavailable"
    return "Redis unreachable"


def redis_errors(action: str) -> contextlib.AbstractContextManager[None]:
    """Turns redis-py's connection failures into one clear `ConnectionFailedError`."""
    return _RedisErrors(action)


class _RedisErrors(contextlib.AbstractContextManager[None]):
    # A class, not @contextlib.contextmanager: every operation enters one, and a generator
    # based one cost a producer about 3 us per call.
    __slots__ = ("action",)

    def __init__(self, action: str) -> None:
        self.action = action

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, traceback: object) -> None:
        if exc is None or isinstance(exc, ConnectionFailedError):
            return
        if isinstance(exc, CONNECTION_FAILURES):
            raise ConnectionFailedError(
                f"{failure(exc)} while trying to {self.action}: {redact(str(exc))}"
            ) from exc
        unreachable = _unreachable(exc)  # (the asyncio cluster client, on its first command)
        if unreachable is not None:
            raise ConnectionFailedError(f"{unreachable} while trying to {self.action}") from exc


def check_claim_timeout(client: Any, claim_timeout_s: float) -> None:
    """A blocking claim must return at least a second before the client's socket timeout,
    or its wait reads as a lost connection (and a spurious 'unreachable')."""
    timeout = _socket_timeout(client)
    if timeout is not None and claim_timeout_s > timeout - 1:
        raise ConfigError(
            f"claim_timeout_s ({claim_timeout_s:g} s) must be at most {timeout - 1:g} s: a"
            f" blocking claim must return within the Redis socket timeout ({timeout:g} s),"
            " or it reads as a lost connection"
        )


def block_limit_s(client: Any) -> float | None:
    """The longest a blocking read other than the claim (a `Task.wait`'s) may block on this
    client: a second less than its socket timeout, as for a claim (half of it, for one of 2
    s or less); None for a client without a socket timeout."""
    timeout = _socket_timeout(client)
    if timeout is None:
        return None
    return timeout - 1 if timeout > 2 else timeout / 2


def _socket_timeout(client: Any) -> float | None:
    """The socket timeout of a client of either topology, sync or asyncio."""
    manager = getattr(client, "nodes_manager", None)  # a cluster's
    if manager is not None:
        kwargs = manager.connection_kwargs
    else:
        kwargs = getattr(getattr(client, "connection_pool", None), "connection_kwargs", {})
    timeout = kwargs.get("socket_timeout")
    return None if timeout is None else float(timeout)
