"""Worker processes for the tests, started as subprocesses and always killed afterwards.

`WorkerSpawner.start()` runs `tests/support/worker_main.py` with its output in a log file;
`kill_all()` (the fixture's teardown) SIGKILLs every worker it started and every task process
they forked (task processes leave their pid in a directory, since a forked child outlives a
parent killed with SIGKILL and runs in its own process group).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from redis.cluster import RedisCluster

from blueque import Client
from blueque.connection import REDIS_DOWN, is_cluster
from tests.support.cli_processes import Background
from tests.support.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
WORKER_MAIN = REPO / "tests" / "support" / "worker_main.py"


class WorkerProcess(Background):
    """A worker started by `WorkerSpawner`."""


@dataclass
class WorkerSpawner:
    directory: Path
    started: list[WorkerProcess] = field(default_factory=list)
    urls: set[str] = field(default_factory=set)

    @property
    def pids_dir(self) -> Path:
        path = self.directory / "task-pids"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def start(
        self,
        url: str,
        queue: str,
        *,
        runner: str = "fork",
        env: dict[str, str] | None = None,
        script: Path | None = None,
    ) -> WorkerProcess:
        """Starts a worker (or, with `script`, any Python file) as a subprocess."""
        log = self.directory / f"worker-{len(self.started)}.log"
        self.urls.add(url)
        full_env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "BLUEQUE_TEST_PIDS": str(self.pids_dir),
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
        with log.open("wb") as out:
            process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=full_env,
                cwd=REPO,
                start_new_session=True,  # its own process group, as under an init
            )
        worker = WorkerProcess(process, log)
        self.started.append(worker)
        return worker

    def task_pids(self) -> list[int]:
        return [int(p.name) for p in self.pids_dir.iterdir()]

    def alive_task_pids(self) -> list[int]:
        return [pid for pid in self.task_pids() if _is_test_worker(pid)]

    def kill_all(self) -> None:
        for worker in self.started:
            if worker.process.poll() is None:
                worker.process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.process.wait(10)
        for pid in self.alive_task_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not self.alive_task_pids(), timeout=10, what="task processes to die")
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


def _is_test_worker(pid: int) -> bool:
    """Alive, not a zombie, and running worker_main (a forked task shares its command line)."""
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return status.rsplit(")", 1)[1].split()[0] != "Z" and b"worker_main" in cmdline
