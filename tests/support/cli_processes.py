"""The real `blueque` console script as subprocesses, for the CLI and task-control tests.

`BluequeRunner.run()` runs one command to its end; `start()` leaves a long-running one (a
worker, a scheduler, `info --watch`) in the background with its output in a log file.
`kill_all()` (each fixture's teardown) SIGKILLs, by pid, every process it started and every
task process their workers forked: the task functions in `task_functions.py` write their
pid into `$BLUEQUE_TEST_PIDS_DIR`, since a forked child runs in its own process group and
outlives a worker killed with SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PIDS_ENV = "BLUEQUE_TEST_PIDS_DIR"
DEFAULT_STOP = signal.SIGTERM  # (the class below has a method named `signal`)


def blueque_executable() -> str:
    path = Path(sys.executable).parent / "blueque"
    if not path.exists():
        raise RuntimeError(f"{path} is missing: run `.venv/bin/pip install -e .` first")
    return str(path)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    return True


@dataclass
class Background:
    """A process left running, its output in a log file."""

    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def signal(self, sig: int) -> None:
        self.process.send_signal(sig)

    def wait_exit(self, timeout: float = 10.0) -> int:
        """The exit status; fails the test, with the process's output, after `timeout`."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"{self.pid} still running after {timeout} s; output:\n{self.output()}"
            ) from None

    def stop(self, sig: int = DEFAULT_STOP, timeout: float = 10.0) -> int:
        """Sends `sig` and waits for the exit status."""
        self.signal(sig)
        return self.wait_exit(timeout)


@dataclass
class BluequeRunner:
    url: str
    directory: Path
    started: list[Background] = field(default_factory=list)

    @property
    def pids_dir(self) -> Path:
        path = self.directory / "task-pids"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BLUEQUE_")}
        env.update({"BLUEQUE_REDIS_URL": self.url, PIDS_ENV: str(self.pids_dir)})
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

    def start(self, *args: str, env: dict[str, str] | None = None) -> Background:
        log = self.directory / f"blueque-{len(self.started)}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [blueque_executable(), *args],
                cwd=REPO,
                env=self.env(env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        background = Background(process, log)
        self.started.append(background)
        return background

    def worker(self, queue: str, task: str, *options: str) -> Background:
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

    def task_pids(self) -> list[int]:
        return [int(p.name) for p in self.pids_dir.iterdir() if p.name.isdigit()]

    def kill_all(self) -> None:
        for background in self.started:
            if background.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    background.process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                background.process.wait(10)
        for pid in self.task_pids():
            # Only a process that still runs blueque: the pid may be gone and reused.
            with contextlib.suppress(OSError):
                if b"blueque" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    os.kill(pid, signal.SIGKILL)
