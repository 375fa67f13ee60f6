"""Local redis-server processes: one standalone server, or a 3-master Redis Cluster.

Each server runs on a free loopback port with its own temporary directory and no persistence
(unless the caller asks for it), as a `devtools.processes.Process`: `stop()` ends it by pid and
waits for it, and `with RedisServer() as server:` does so even after a failure. Used by the test
fixtures, the demo and the benchmarks.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from devtools.errors import ProcessError
from devtools.processes import Process, free_port, wait_until

__all__ = ["RedisCluster", "RedisServer", "require"]


def require(binary: str) -> str:
    """The path of `binary`, or ProcessError saying how to install it."""
    path = shutil.which(binary)
    if path is None:
        raise ProcessError(
            f"{binary} is not installed: run ./dev setup (it installs redis-server and redis-tools)"
        )
    return path


@dataclass
class RedisServer:
    """One redis-server process; `with RedisServer() as server:` stops it even on failure."""

    port: int = field(default_factory=free_port)
    cluster: bool = False
    directory: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="blueque-redis-")))
    process: Process | None = None
    extra_args: list[str] = field(default_factory=list)
    """More redis-server options (a password, TLS, a unix socket, sentinel mode...)."""
    config_text: str | None = None
    """A config file's text (sentinel mode needs one: it rewrites it)."""
    ping_kwargs: dict[str, Any] = field(default_factory=dict)
    """How the readiness check connects, when the defaults cannot (TLS, a password)."""
    cluster_port: int | None = None
    """The cluster bus port, chosen at the first start and kept, so that a restarted node is
    found where the others last saw it."""

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        args = [require("redis-server")]
        if self.config_text is not None:
            (self.directory / "server.conf").write_text(self.config_text)
            args.append(str(self.directory / "server.conf"))
        args += ["--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory)]
        args += ["--logfile", str(self.directory / "redis.log")]
        if "--sentinel" not in self.extra_args:
            args += ["--save", "", "--appendonly", "no"]
        if self.cluster:
            # An explicit bus port: the default (port + 10000) may be taken or above 65535.
            args += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
            if self.cluster_port is None:
                self.cluster_port = free_port()
            args += ["--cluster-port", str(self.cluster_port)]
        self.process = Process.start(
            f"redis-server:{self.port}",
            [*args, *self.extra_args],
            log_file=self.directory / "stdout.log",
            cwd=self.directory,
        )
        self._wait_ready(self.process)
        return self

    def _wait_ready(self, process: Process, timeout_s: float = 10.0) -> None:
        client = redis.Redis(
            **{"port": self.port, "socket_connect_timeout": 0.2, **self.ping_kwargs}
        )

        def answers() -> bool:
            if not process.alive():
                log = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
                raise ProcessError(
                    f"redis-server on port {self.port} exited:\n{process.tail()}\n{log}"
                )
            with contextlib.suppress(redis.exceptions.ConnectionError):
                return bool(client.ping())
            return False

        try:
            wait_until(answers, timeout_s, what=f"redis-server on port {self.port} to answer")
        finally:
            client.close()

    def kill(self) -> None:
        """Stops the server abruptly (an outage), keeping its port and directory: `start()`
        brings it back with the data it last saved."""
        if self.process is not None:
            self.process.kill()
        self.process = None

    @contextlib.contextmanager
    def connection(self) -> Iterator[redis.Redis]:
        """A plain client of this server (for set-up and checks, never on a hot path)."""
        client = redis.Redis(port=self.port, **self.ping_kwargs)
        try:
            yield client
        finally:
            client.close()

    def flush(self) -> None:
        """Empties every database."""
        with self.connection() as client:
            client.flushall()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
        self.process = None
        shutil.rmtree(self.directory, ignore_errors=True)


@dataclass
class RedisCluster:
    """Three masters, no replicas, all slots assigned."""

    nodes: list[RedisServer] = field(default_factory=list)
    """The masters; given (not started) to choose their options and directories, else three
    are made by `start`."""

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}"

    def start(self) -> RedisCluster:
        try:
            if not self.nodes:
                self.nodes = [RedisServer(cluster=True) for _ in range(3)]
            for node in self.nodes:
                node.start()
            addresses = [f"127.0.0.1:{n.port}" for n in self.nodes]
            subprocess.run(
                [
                    require("redis-cli"),
                    "--cluster",
                    "create",
                    *addresses,
                    "--cluster-replicas",
                    "0",
                    "--cluster-yes",
                ],
                check=True,
                capture_output=True,
                timeout=60,
            )
            self.wait_ok()
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ok(self, timeout_s: float = 30.0) -> None:
        """Until every node says `cluster_state:ok` (a restarted master refuses commands for
        a while first)."""

        def all_ok() -> bool:
            for node in self.nodes:
                with node.connection() as client:
                    try:
                        if client.cluster("info").get("cluster_state") != "ok":
                            return False
                    except redis.exceptions.ConnectionError:
                        return False
            return True

        wait_until(all_ok, timeout_s, interval_s=0.1, what="redis cluster_state:ok on every node")

    def flush(self) -> None:
        for node in self.nodes:
            node.flush()

    def __enter__(self) -> RedisCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        self.nodes.clear()
