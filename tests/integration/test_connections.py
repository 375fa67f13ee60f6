"""Every way `Client` and `blueque.aio.AsyncClient` connect (the `connect` fixture gives
each in turn), each against a real redis-server started for the test: password, unix socket,
TLS (`rediss://`), Sentinel, Cluster, a namespace; bad URLs and an unreachable server."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner

from blueque import Client, ConfigError, ConnectionFailedError
from blueque.aio import AsyncClient
from blueque.cli import cli
from devtools.processes import free_port
from devtools.redis_servers import RedisServer
from tests.support.cli_processes import BluequeRunner

Connect = Callable[..., Client | AsyncClient]


@pytest.fixture(params=["sync", "async"])
def connect(request: pytest.FixtureRequest) -> Connect:
    """`Client` or `AsyncClient`: both take the same arguments."""
    return Client if request.param == "sync" else AsyncClient


def roundtrip(client: Client | AsyncClient, db: int | None = None) -> None:
    """Enqueue and read back: proves scripts load and keys route on this connection."""
    if isinstance(client, AsyncClient):
        asyncio.run(_async_roundtrip(client, db))
        return
    try:
        queue = client.get_queue("conn.q")
        before = queue.stats().totals["enqueued"]
        task_id = queue.enqueue({"via": "this connection"})
        assert client.get_task(task_id).parameters == {"via": "this connection"}
        assert queue.stats().totals["enqueued"] == before + 1
        if db is not None:
            assert isinstance(client.redis, redis.Redis)
            assert client.redis.connection_pool.connection_kwargs["db"] == db
            assert client.redis.exists(queue.keys.task(task_id)) == 1
    finally:
        client.close()


async def _async_roundtrip(client: AsyncClient, db: int | None) -> None:
    async with client:
        queue = client.get_queue("conn.q")
        before = (await queue.stats()).totals["enqueued"]
        task_id = await queue.enqueue({"via": "this connection"})
        assert (await client.get_task(task_id)).parameters == {"via": "this connection"}
        assert (await queue.stats()).totals["enqueued"] == before + 1
        if db is not None:
            redis_client: Any = client.redis
            assert redis_client.connection_pool.connection_kwargs["db"] == db
            assert await redis_client.exists(queue.keys.task(task_id)) == 1


@pytest.fixture
def server() -> Iterator[list[RedisServer]]:
    """Servers a test starts; all are stopped afterwards, even on failure."""
    started: list[RedisServer] = []
    try:
        yield started
    finally:
        for s in started:
            s.stop()


def test_password_in_url_and_keywords(server: list[RedisServer], connect: Connect) -> None:
    s = RedisServer(extra_args=["--requirepass", "s3cret"], ping_kwargs={"password": "s3cret"})
    server.append(s.start())
    roundtrip(connect(f"redis://:s3cret@127.0.0.1:{s.port}/2"), db=2)
    roundtrip(connect(hostname="127.0.0.1", port=s.port, password="s3cret"))
    roundtrip(connect(f"redis://:stale@127.0.0.1:{s.port}/0", password="s3cret"))
    # A wrong password was reported as "Redis unreachable".
    for url in (f"redis://:wrong-pw@127.0.0.1:{s.port}/0", f"redis://127.0.0.1:{s.port}/0"):
        with pytest.raises(ConnectionFailedError, match="Redis authentication failed") as err:
            roundtrip(connect(url))
        assert "wrong-pw" not in str(err.value)


def test_the_cli_hides_a_wrong_password(server: list[RedisServer]) -> None:
    s = RedisServer(extra_args=["--requirepass", "s3cret"], ping_kwargs={"password": "s3cret"})
    server.append(s.start())
    result = CliRunner().invoke(cli, ["--url", f"redis://:wrong-pw@127.0.0.1:{s.port}/0", "info"])
    assert result.exit_code == 1 and "wrong-pw" not in result.output
    assert result.stderr.startswith("error: Redis authentication failed"), result.stderr


def test_password_from_the_environment(server: list[RedisServer], tmp_path: Path) -> None:
    """BLUEQUE_REDIS_PASSWORD (a Kubernetes Secret) supplies the password of a URL that has
    none, or replaces a stale one, for the CLI and for a worker; it is never printed."""
    s = RedisServer(
        extra_args=["--requirepass", "pw-s3cret"], ping_kwargs={"password": "pw-s3cret"}
    )
    server.append(s.start())
    bq = BluequeRunner(f"redis://127.0.0.1:{s.port}/0", tmp_path)
    secret = {"BLUEQUE_REDIS_PASSWORD": "pw-s3cret"}
    # The URL from REDIS_URL (BLUEQUE_REDIS_URL empty counts as unset), with a stale password.
    stale = {**secret, "BLUEQUE_REDIS_URL": "", "REDIS_URL": f"redis://:stale@127.0.0.1:{s.port}/0"}
    try:
        denied = bq.run("info")
        assert denied.returncode == 1 and "auth" in denied.stderr.lower(), denied.stderr
        enqueued = bq.run("enqueue", "pw.q", "x", env=secret)
        assert enqueued.returncode == 0, enqueued.stderr
        task_id = enqueued.stdout.strip()
        worked = bq.run("worker", "pw.q", "--task", "tests.support.task_functions:echo",
                        "--max-tasks", "1", "--no-fork", env=stale)  # fmt: skip
        assert worked.returncode == 0, worked.stderr
        shown = bq.run("--json", "status", task_id, env=stale)
        assert json.loads(shown.stdout)["result"] == "x"
        wrong = bq.run("info", env={"BLUEQUE_REDIS_PASSWORD": "wrong-pw-s3cret"})
        assert wrong.returncode == 1
        for result in (denied, enqueued, worked, shown, wrong):
            assert "s3cret" not in result.stdout + result.stderr
    finally:
        bq.kill_all()


def test_unix_socket(server: list[RedisServer], tmp_path: Path, connect: Connect) -> None:
    sock = tmp_path / "redis.sock"
    server.append(RedisServer(extra_args=["--unixsocket", str(sock)]).start())
    roundtrip(connect(f"unix://{sock}?db=1"), db=1)


def test_namespace(redis_url: str, connect: Connect) -> None:
    roundtrip(connect(redis_url, namespace="app:jobs"))
    with Client(redis_url) as plain:
        assert plain.redis.exists("app:jobs:queues") == 1
        assert plain.redis.exists("blueque:queues") == 0


def test_tls(server: list[RedisServer], tmp_path: Path, connect: Connect) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    tls_port = free_port()
    s = RedisServer(
        extra_args=[
            "--tls-port", str(tls_port), "--tls-cert-file", str(cert),
            "--tls-key-file", str(key), "--tls-ca-cert-file", str(cert),
            "--tls-auth-clients", "no",
        ],
    )  # fmt: skip
    server.append(s.start())
    roundtrip(connect(f"rediss://127.0.0.1:{tls_port}/0?ssl_ca_certs={cert}"))
    # Without trusting the server's certificate, the handshake must fail, clearly.
    with pytest.raises(ConnectionFailedError, match=r"(?i)certificate"):
        roundtrip(connect(f"rediss://127.0.0.1:{tls_port}/0"))


def test_sentinel(server: list[RedisServer], connect: Connect) -> None:
    master = RedisServer().start()
    server.append(master)
    sentinel = RedisServer(
        config_text=f"sentinel monitor mymaster 127.0.0.1 {master.port} 1\n",
        extra_args=["--sentinel"],
    )
    server.append(sentinel.start())
    roundtrip(connect(f"redis+sentinel://127.0.0.1:{sentinel.port}/mymaster/3"))


def test_cluster_url_forms(redis_cluster: object, connect: Connect) -> None:
    from devtools.redis_servers import RedisCluster

    assert isinstance(redis_cluster, RedisCluster)
    redis_cluster.flush()
    port = redis_cluster.nodes[1].port
    roundtrip(connect(f"redis+cluster://127.0.0.1:{port}"))
    roundtrip(connect(f"redis://127.0.0.1:{port}", cluster=True))
    roundtrip(connect(hostname="127.0.0.1", port=port, cluster=True))


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://localhost:6379", "unsupported Redis URL scheme"),
        ("redis+sentinel://127.0.0.1:26379", "master name"),
    ],
)
def test_bad_urls_are_config_errors(url: str, message: str, connect: Connect) -> None:
    with pytest.raises(ConfigError, match=message):
        connect(url)


def test_unreachable_server_is_a_clear_error(connect: Connect) -> None:
    with pytest.raises(ConnectionFailedError, match="Redis unreachable while trying to read stats"):
        roundtrip(connect(f"redis://127.0.0.1:{free_port()}/0"))


def test_a_server_that_goes_away_is_a_clear_error_for_the_asyncio_client(
    server: list[RedisServer],
) -> None:
    s = RedisServer().start()
    server.append(s)

    async def scenario() -> None:
        async with AsyncClient(s.url) as client:
            queue = client.get_queue("down.q")
            task = await client.get_task(await queue.enqueue(1))
            s.stop()
            for call in (queue.stats, queue.observe, lambda: queue.claim_owner("o", 5)):
                with pytest.raises(ConnectionFailedError, match="Redis unreachable"):
                    await call()
            with pytest.raises(ConnectionFailedError, match="Redis unreachable"):
                await task.wait(1)
            with pytest.raises(ConnectionFailedError, match="Redis unreachable"):
                await queue.enqueue(2)

    asyncio.run(scenario())
