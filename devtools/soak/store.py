"""The Redis a soak runs on: one redis-server, or a Redis Cluster of three masters; every
server keeps an AOF (`appendfsync always`) in the work directory. And its outage: SIGKILL of
the server that holds the queue's keys, then a start on the same port and directory.

In a cluster, the outage is that of the master that owns the queue's slot (every key of a
queue shares its hash tag): the other masters hold only the soak's own execution records.
The outage ends once every node says `cluster_state:ok` again: a restarted master answers
PING at once but refuses commands (CLUSTERDOWN) for about two seconds more.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from blueque.connection import connect
from devtools.redis_servers import RedisCluster, RedisServer

PERSISTENCE = ["--appendonly", "yes", "--appendfsync", "always"]
"""Every write is fsynced before Redis answers it: a SIGKILLed Redis loses nothing it
acknowledged, so a task the soak enqueued, or an execution a task recorded, is never lost by
Redis itself. (With `everysec`, Redis may answer writes it has not written yet while an
fsync is slow, and a SIGKILL would lose them.)"""


class Store:
    def __init__(self, directory: Path, *, cluster: bool) -> None:
        self.cluster: RedisCluster | None = None
        self.server: RedisServer | None = None
        if cluster:
            self.cluster = RedisCluster(
                [
                    RedisServer(
                        cluster=True, directory=directory / f"node{i}", extra_args=PERSISTENCE
                    )
                    for i in range(3)
                ]
            )
        else:
            self.server = RedisServer(directory=directory, extra_args=PERSISTENCE)
        self._down: RedisServer | None = None

    @property
    def url(self) -> str:
        if self.cluster is not None:
            return self.cluster.url  # the first node's address: a client finds the others
        assert self.server is not None
        return self.server.url

    @property
    def description(self) -> str:
        if self.cluster is not None:
            return "a cluster of 3 masters, each with"
        return "one server with"

    def start(self) -> None:
        if self.cluster is not None:
            self.cluster.start()
        else:
            assert self.server is not None
            self.server.start()

    def down(self, key: str) -> None:
        """SIGKILL of the server that holds `key` (a key of the queue)."""
        self._down = self._holder(key)
        self._down.kill()

    def back(self) -> None:
        assert self._down is not None
        self._down.start()
        self._down = None
        if self.cluster is not None:
            self.cluster.wait_ok()

    def connect(self) -> Any:
        """A redis-py client of this store (Blueque's connection settings)."""
        return connect(self.url)

    def stop(self) -> None:
        """Stops every server by pid, keeping their directories (AOF, logs)."""
        servers = self.cluster.nodes if self.cluster is not None else [self.server]
        for server in servers:
            if server is not None and server.process is not None:
                server.process.stop()
                server.process = None

    def _holder(self, key: str) -> RedisServer:
        if self.cluster is None:
            assert self.server is not None
            return self.server
        client = self.connect()
        try:
            port = int(client.get_node_from_key(key).port)
        finally:
            client.close()
        return next(n for n in self.cluster.nodes if n.port == port)
