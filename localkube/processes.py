"""Starting and stopping the component processes, by pid and never by name.

Other clusters (another engineer's tests, CI right after a session) may run the same binaries on
the same machine, so a process is only ever signalled through the pid this module recorded, and
only after /proc confirms that pid still runs the same executable (pids are reused). Each process
leads its own session, so stopping it reaches any children it has.

A process owned by a test session asks the kernel to kill it when its parent dies
(PR_SET_PDEATHSIG): a pytest killed with SIGKILL leaves no control plane behind. Processes
started by `python -m localkube up` outlive that command on purpose and skip this. The kernel
sends that signal when the *thread* that started the process ends, so start a cluster owned by
a test session from a thread that lives as long as the session (pytest's main thread does).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from localkube.errors import ClusterError

__all__ = ["Component", "free_port", "is_alive", "rss_bytes", "start", "stop"]

_PR_SET_PDEATHSIG = 1

#: Popen objects of the processes this interpreter started, kept so that they are reaped through
#: subprocess (a dropped Popen of a live process warns when garbage-collected).
_children: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class Component:
    """One running component: enough to find it again from another process."""

    name: str
    pid: int
    executable: str
    log_file: str


def free_port() -> int:
    """A loopback port that is free now (the kernel picks it; a race is possible but rare)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _die_with_parent() -> Callable[[], None]:
    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getpid()

    def preexec() -> None:
        os.setsid()
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def start(
    name: str, argv: list[str], log_file: Path, *, owned_by_caller: bool, cwd: Path
) -> Component:
    """Start `argv` with output to `log_file`; owned_by_caller ties its life to this process."""
    with log_file.open("ab") as log:
        try:
            proc = subprocess.Popen(
                argv,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent() if owned_by_caller else os.setsid,
            )
        except OSError as exc:
            raise ClusterError(f"cannot start {name} ({argv[0]}): {exc}") from exc
    _children[proc.pid] = proc
    return Component(name=name, pid=proc.pid, executable=argv[0], log_file=str(log_file))


def is_alive(component: Component) -> bool:
    """True while the recorded pid still runs the recorded executable (and is not a zombie)."""
    proc = Path(f"/proc/{component.pid}")
    try:
        exe = str((proc / "exe").readlink())
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    if state in ("Z", "X"):
        _reap(component.pid)
        return False
    return exe.removesuffix(" (deleted)") == str(Path(component.executable).resolve())


def _reap(pid: int) -> None:
    child = _children.get(pid)
    if child is not None:
        if child.poll() is not None:
            del _children[pid]
        return
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def stop(component: Component, *, grace_s: float = 10.0) -> None:
    """SIGTERM the component's process group, SIGKILL after `grace_s`; returns once it is gone."""
    if not is_alive(component):
        return
    _signal_group(component.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        _reap(component.pid)
        if not is_alive(component):
            return
        time.sleep(0.05)
    _signal_group(component.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        _reap(component.pid)
        if not is_alive(component):
            return
        time.sleep(0.05)
    raise ClusterError(f"{component.name} (pid {component.pid}) survived SIGKILL")


def _signal_group(pid: int, sig: signal.Signals) -> None:
    # Each component leads its own session and process group (setsid at start).
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


def rss_bytes(component: Component) -> int:
    """Resident memory of the component's process, from /proc (0 when it is gone)."""
    try:
        status = Path(f"/proc/{component.pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0
