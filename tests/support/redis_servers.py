"""Real redis-server processes for the tests: standalone and a 3-master cluster.

Each server runs on a free loopback port with its own temporary directory and no
persistence; `stop()` ends it by pid (never by name) and waits for it, even after a failure.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def require(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        raise RuntimeError(
            f"{binary} is not installed: run ./dev test (it installs redis-server and redis-tools)"
        )
    return path


@dataclass
class RedisServer:
    """One redis-server process; `with RedisServer() as server:` stops it even on failure."""

    port: int = field(default_factory=free_port)
    cluster: bool = False
    directory: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="blueque-redis-")))
    process: subprocess.Popen[bytes] | None = None
    extra_args: list[str] = field(default_factory=list)
    """More redis-server options (a password, TLS, a unix socket, sentinel mode...)."""
    config_text: str | None = None
    """A config file's text (sentinel mode needs one: it rewrites it)."""
    ping_kwargs: dict[str, Any] = field(default_factory=dict)
    """How the readiness check connects, when the defaults cannot (TLS, a password)."""

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
            args += ["--cluster-port", str(free_port())]
        self.process = subprocess.Popen([*args, *self.extra_args], stdin=subprocess.DEVNULL)
        self._wait_ready()
        return self

    def _wait_ready(self, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        client = redis.Redis(
            **{"port": self.port, "socket_connect_timeout": 0.2, **self.ping_kwargs}
        )
        try:
            while time.monotonic() < deadline:
                if self.process is not None and self.process.poll() is not None:
                    log = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"redis-server on port {self.port} exited:\n{log}")
                with contextlib.suppress(redis.exceptions.ConnectionError):
                    if client.ping():
                        return
                time.sleep(0.02)
        finally:
            client.close()
        raise RuntimeError(f"redis-server on port {self.port} not ready after {timeout_s} s")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Stops the server abruptly (an outage), keeping its port for a restart."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(10)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None
        shutil.rmtree(self.directory, ignore_errors=True)


@dataclass
class RedisCluster:
    """Three masters, no replicas, all slots assigned."""

    nodes: list[RedisServer] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}"

    def start(self) -> RedisCluster:
        try:
            for _ in range(3):
                self.nodes.append(RedisServer(cluster=True).start())
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
            self._wait_ok()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ok(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            states = []
            for node in self.nodes:
                c = redis.Redis(port=node.port)
                try:
                    states.append(c.cluster("info").get("cluster_state"))
                finally:
                    c.close()
            if all(s == "ok" for s in states):
                return
            time.sleep(0.1)
        raise RuntimeError("redis cluster did not reach cluster_state:ok")

    def flush(self) -> None:
        for node in self.nodes:
            c = redis.Redis(port=node.port)
            try:
                c.flushall()
            finally:
                c.close()

    def __enter__(self) -> RedisCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        self.nodes.clear()


def pids_alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            os.kill(pid, 0)
            alive.append(pid)
        except ProcessLookupError:
            pass
    return alive
