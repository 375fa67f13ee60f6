"""Task processes that outlive their worker, found through the pid files they write.

A task process forked by a worker runs in a process group of its own and outlives a worker
killed with SIGKILL, so the task functions of the tests write their pid into the directory named
by $BLUEQUE_TEST_PIDS_DIR (`register_pid`), and the spawners' teardown kills those still running
(`TaskPids.kill_all`).
"""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass
from pathlib import Path

from devtools.processes import pid_running, wait_until

PIDS_ENV = "BLUEQUE_TEST_PIDS_DIR"


def register_pid() -> None:
    """In a task process: leave its pid where the test's teardown looks."""
    directory = os.environ.get(PIDS_ENV)
    if directory:
        (Path(directory) / str(os.getpid())).touch()


@dataclass(frozen=True)
class TaskPids:
    directory: Path
    marker: bytes
    """What the command line of these task processes holds (that of the worker that forked
    them): a pid that was reused by another program is never signalled."""

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)

    def all(self) -> list[int]:
        """Every task process that ran, dead or alive."""
        return [int(p.name) for p in self.directory.iterdir() if p.name.isdigit()]

    def alive(self) -> list[int]:
        return [pid for pid in self.all() if pid_running(pid) and self._ours(pid)]

    def kill_all(self) -> None:
        for pid in self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not self.alive(), 10, what="task processes to die")

    def _ours(self, pid: int) -> bool:
        try:
            return self.marker in Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False
