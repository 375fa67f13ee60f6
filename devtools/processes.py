"""Starting and stopping local processes, by pid and never by name, and waiting on them.

Other sessions (another engineer's tests, a cluster left up by `python -m devtools.localkube up`)
run the same binaries on the same machine, so a process is only ever signalled through the pid
recorded when it started, and only while /proc confirms that this pid still runs the recorded
executable since the recorded boot tick (pids are reused). Each process leads its own session and
process group, so SIGKILL reaches the children that stayed in its group (a task forked by
`blueque worker` moves to a group of its own on purpose, and is not reached).

A process owned by its starter (the default) asks the kernel to kill it when that starter dies
(PR_SET_PDEATHSIG): a pytest killed with SIGKILL leaves nothing behind. The kernel sends that
signal when the *thread* that started the process ends, so start such a process from a thread
that lives as long as it should (pytest's main thread does). `die_with_parent=False` is for a
process that outlives its starter on purpose (`python -m devtools.localkube up`).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from devtools.errors import ProcessError, WaitTimeoutError

__all__ = ["Process", "free_port", "pid_running", "stop_all", "wait_until"]

T = TypeVar("T")

_PR_SET_PDEATHSIG = 1
_KILL_TIMEOUT_S = 5.0


@dataclass
class Process:
    """A process started by `Process.start()`, or found again from its `to_json()` record.

    Its stdout and stderr go to `log_file`. Only the interpreter that started it knows its exit
    status (`poll`, `wait_exit`); any other can still check, signal and stop it by its record.
    """

    name: str
    pid: int
    executable: str
    """/proc/<pid>/exe once it started: for a script, its interpreter."""
    started_tick: int
    """Its start time in clock ticks since boot (/proc/<pid>/stat): with the pid, unique."""
    log_file: Path
    _popen: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def start(
        cls,
        name: str,
        argv: Sequence[str],
        *,
        log_file: Path,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        die_with_parent: bool = True,
    ) -> Process:
        """Starts `argv` in a new session, stdin from /dev/null, output appended to `log_file`.

        `env` is the whole environment (default: this process's).
        """
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with log_file.open("ab") as log:
            try:
                popen = subprocess.Popen(
                    list(argv),
                    cwd=cwd,
                    env=None if env is None else dict(env),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=_die_with_parent() if die_with_parent else None,
                )
            except OSError as exc:
                raise ProcessError(f"cannot start {name} ({argv[0]}): {exc}") from exc
        # Popen returns once the exec succeeded, so /proc shows the program, not this Python.
        identity = _identity(popen.pid)
        if identity is None:  # it already exited (a zombie until reaped)
            stat = _stat(popen.pid)
            identity = (shutil.which(argv[0]) or argv[0], stat[1] if stat else 0)
        executable, started_tick = identity
        return cls(name, popen.pid, executable, started_tick, log_file, popen)

    def to_json(self) -> dict[str, str | int]:
        """What another process needs to find it again (`from_json`)."""
        return {
            "name": self.name,
            "pid": self.pid,
            "executable": self.executable,
            "started_tick": self.started_tick,
            "log_file": str(self.log_file),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Process:
        return cls(
            name=str(data["name"]),
            pid=int(data["pid"]),
            executable=str(data["executable"]),
            started_tick=int(data["started_tick"]),
            log_file=Path(data["log_file"]),
        )

    # -- observing --------------------------------------------------------------------------

    def alive(self) -> bool:
        """True while the pid runs the recorded executable since the recorded tick (a zombie,
        exited but not yet reaped, is not alive)."""
        return _identity(self.pid) == (self.executable, self.started_tick)

    def poll(self) -> int | None:
        """Its exit status once it has ended, None while it runs."""
        return self._child().poll()

    def output(self) -> str:
        """Everything it wrote so far."""
        try:
            return self.log_file.read_text(errors="replace")
        except OSError:
            return ""

    def tail(self, lines: int = 20) -> str:
        return "\n".join(self.output().splitlines()[-lines:]) or "(no output)"

    def rss_bytes(self) -> int:
        """Its resident memory, from /proc (0 once it is gone)."""
        if not self.alive():
            return 0
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def cpu_seconds(self) -> float:
        """User + system CPU time it has used so far, from /proc (0 once it is gone); its
        children's only once reaped."""
        if not self.alive():
            return 0.0
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        # utime and stime: fields 14 and 15 of proc(5); cutime and cstime follow.
        ticks = sum(int(f) for f in fields[11:15])
        return ticks / os.sysconf("SC_CLK_TCK")

    # -- acting -----------------------------------------------------------------------------

    def signal(self, sig: int) -> None:
        """Sends `sig` to the process alone, as a kubelet does to a container's main process
        (nothing when it has ended)."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def wait_exit(self, timeout_s: float = 10.0) -> int:
        """Its exit status; WaitTimeoutError, with the end of its output, after `timeout_s`."""
        try:
            return self._child().wait(timeout_s)
        except subprocess.TimeoutExpired:
            raise WaitTimeoutError(
                f"{self.name} (pid {self.pid}) still running after {timeout_s} s; "
                f"last output:\n{self.tail()}"
            ) from None

    def stop(self, grace_s: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL to its whole group after `grace_s`; returns once it is gone,
        with its exit status when it was started here."""
        self.signal(signal.SIGTERM)
        return self._end_within(grace_s)

    def kill(self) -> int | None:
        """SIGKILL to its whole process group; returns once it is gone."""
        if self.alive():
            try:
                os.killpg(self.pid, signal.SIGKILL)  # it leads its group (setsid at start)
            except ProcessLookupError:  # it left the group it led: the process alone, then
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
        try:
            wait_until(lambda: not self.alive(), _KILL_TIMEOUT_S, interval_s=0.01)
        except WaitTimeoutError:
            raise ProcessError(f"{self.name} (pid {self.pid}) survived SIGKILL") from None
        return self._reap()

    def __enter__(self) -> Process:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _child(self) -> subprocess.Popen[bytes]:
        if self._popen is None:
            raise ProcessError(
                f"{self.name} (pid {self.pid}) was started by another process: "
                "its exit status is not known here"
            )
        return self._popen

    def _end_within(self, grace_s: float) -> int | None:
        try:
            wait_until(lambda: not self.alive(), grace_s, interval_s=0.01)
        except WaitTimeoutError:
            return self.kill()
        return self._reap()

    def _reap(self) -> int | None:
        return None if self._popen is None else self._popen.wait()


def stop_all(processes: Iterable[Process], grace_s: float = 10.0) -> None:
    """`Process.stop` for many at once: SIGTERM to all, then SIGKILL to the groups of those
    still running after `grace_s`, so that stopping n processes takes one grace period."""
    processes = list(processes)
    for process in processes:
        process.signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for process in processes:
        process._end_within(max(0.0, deadline - time.monotonic()))


def pid_running(pid: int) -> bool:
    """Whether `pid` exists and has not exited: for processes started by others (a worker's
    forked task), which have no record to check against."""
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def free_port() -> int:
    """A loopback port that is free now (the kernel picks it; a race is possible but rare)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(
    predicate: Callable[[], T | None],
    timeout_s: float = 10.0,
    *,
    interval_s: float = 0.02,
    what: str | Callable[[], str] = "",
) -> T:
    """The predicate's first truthy value; WaitTimeoutError after `timeout_s`, saying `what`
    (a callable: computed then, e.g. to show the last value seen).

    For conditions no event announces: a process exited, a port answers, a key expired.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            described = what() if callable(what) else what
            raise WaitTimeoutError(
                f"timed out after {timeout_s} s waiting for {described or predicate}"
            )
        time.sleep(interval_s)


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, start tick) from /proc/<pid>/stat, None when there is no such process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], int(fields[19])  # fields 3 and 22 of proc(5)


def _identity(pid: int) -> tuple[str, int] | None:
    """(executable, start tick) of a live process, None when it is gone or a zombie."""
    stat = _stat(pid)
    if stat is None or stat[0] in ("Z", "X"):
        return None
    try:
        exe = str(Path(f"/proc/{pid}/exe").readlink())
    except OSError:
        return None
    return exe.removesuffix(" (deleted)"), stat[1]


def _die_with_parent() -> Callable[[], None]:
    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getpid()

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec
