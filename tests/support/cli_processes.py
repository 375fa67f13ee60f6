"""The real `blueque` console script as subprocesses, for the CLI and task-control tests.

`BluequeRunner.run()` runs one command to its end; `start()` leaves a long-running one (a
worker, a scheduler, `info --watch`) in the background as a `devtools.processes.Process`, its
output in a log file. `kill_all()` (each fixture's teardown) SIGKILLs, by pid, every process it
started and every task process their workers forked (see `task_pids.py`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from devtools.processes import Process
from tests.support.task_pids import PIDS_ENV, TaskPids

REPO = Path(__file__).resolve().parents[2]


def blueque_executable() -> str:
    path = Path(sys.executable).parent / "blueque"
    if not path.exists():
        raise RuntimeError(f"{path} is missing: run `.venv/bin/pip install -e .` first")
    return str(path)


@dataclass
class BluequeRunner:
    url: str
    directory: Path
    started: list[Process] = field(default_factory=list)

    @property
    def task_pids(self) -> TaskPids:
        return TaskPids(self.directory / "task-pids", marker=b"blueque")

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BLUEQUE_")}
        env.update({"BLUEQUE_REDIS_URL": self.url, PIDS_ENV: str(self.task_pids.directory)})
        env.update(extra or {})
        return env

    def run(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 30.0
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [blueque_executable(), *args],
            cwd=REPO,
            env=self.env(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start(self, *args: str, env: dict[str, str] | None = None) -> Process:
        process = Process.start(
            f"blueque {args[0]}",
            [blueque_executable(), *args],
            log_file=self.directory / f"blueque-{len(self.started)}.log",
            cwd=REPO,
            env=self.env(env),
        )
        self.started.append(process)
        return process

    def worker(self, queue: str, task: str, *options: str) -> Process:
        """A worker on `queue` running `tests.support.task_functions:<task>`, with fast
        heartbeats (so cancels are seen quickly)."""
        return self.start(
            "worker",
            queue,
            "--task",
            f"tests.support.task_functions:{task}",
            "--claim-timeout",
            "0.2",
            "--heartbeat-interval",
            "0.1",
            "--heartbeat-ttl",
            "5",
            *options,
        )

    def kill_all(self) -> None:
        for process in self.started:
            process.kill()
        self.task_pids.kill_all()
