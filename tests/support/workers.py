"""Worker processes for the tests, started as subprocesses and always killed afterwards.

`WorkerSpawner.start()` runs `tests/support/worker_main.py` as a `devtools.processes.Process`,
its output in a log file; `kill_all()` (the fixture's teardown) SIGKILLs every worker it
started and every task process they forked (see `task_pids.py`).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from redis.cluster import RedisCluster

from blueque import Client
from blueque.connection import REDIS_DOWN, is_cluster
from devtools.processes import Process, wait_until
from tests.support.task_pids import PIDS_ENV, TaskPids

REPO = Path(__file__).resolve().parents[2]
WORKER_MAIN = REPO / "tests" / "support" / "worker_main.py"


@dataclass
class WorkerSpawner:
    directory: Path
    started: list[Process] = field(default_factory=list)
    urls: set[str] = field(default_factory=set)

    @property
    def task_pids(self) -> TaskPids:
        return TaskPids(self.directory / "task-pids", marker=b"worker_main")

    def start(
        self,
        url: str,
        queue: str,
        *,
        runner: str = "fork",
        env: dict[str, str] | None = None,
        script: Path | None = None,
    ) -> Process:
        """Starts a worker (or, with `script`, any Python file) as a subprocess."""
        self.urls.add(url)
        full_env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            PIDS_ENV: str(self.task_pids.directory),
            "BLUEQUE_HEARTBEAT_INTERVAL_S": "0.2",
            "BLUEQUE_CLAIM_TIMEOUT_S": "0.2",
            **(env or {}),
        }
        for name in [n for n, v in full_env.items() if v == "<unset>"]:
            del full_env[name]
        args = (
            [sys.executable, str(script)]
            if script
            else [sys.executable, str(WORKER_MAIN), url, queue, runner]
        )
        worker = Process.start(
            f"worker-{len(self.started)}",
            args,
            log_file=self.directory / f"worker-{len(self.started)}.log",
            cwd=REPO,
            env=full_env,
        )
        self.started.append(worker)
        return worker

    def kill_all(self) -> None:
        for worker in self.started:
            worker.kill()
        self.task_pids.kill_all()
        # A killed worker's BLMOVE stays blocked in Redis until the server notices the
        # closed socket; a task pushed meanwhile (by the next test) would be moved into the
        # dead worker's list. So wait until the servers have let go of them.
        wait_until(lambda: all(_blocked_clients(url) == 0 for url in self.urls), 10, what="claims")


def _blocked_clients(url: str) -> int:
    try:
        with Client(url) as client:
            if is_cluster(client.redis):
                infos = client.redis.info("clients", target_nodes=RedisCluster.ALL_NODES)
                return sum(int(info["blocked_clients"]) for info in infos.values())
            return int(client.redis.info("clients")["blocked_clients"])
    except REDIS_DOWN:
        return 0  # a server that is down holds no claim
