"""What a task's processes may outlive, and how the forking worker ends them.

A task runs in a forked child that leads its own process group. Three mechanisms bound what
it can leave behind, as a container runtime would at the end of a container:

- **The child dies with the worker parent** (Linux: `PR_SET_PDEATHSIG` with SIGKILL, then a
  check that the parent did not die before that took effect). So a worker SIGKILLed outside
  a container does not leave its task running while a restarted worker runs it again.
- **The task's process group is SIGKILLed when the task's process ends**: whatever the task
  started and left in its group (a `subprocess.Popen` it did not wait for) ends with it.
- **The worker parent is a child subreaper** (Linux: `PR_SET_CHILD_SUBREAPER`): a process the
  task detached (`setsid`, a double fork) is reparented to the worker, not to init, when its
  parent exits; the worker SIGKILLs and reaps such strays between tasks, never while a task
  runs (a task may use a daemon it started): before a next task begins or while the worker
  is idle, at most once a second (finding them reads /proc), and when the worker stops.
  Children the worker's program had before its first task are left alone; a process that
  program starts later (from another thread: the forking parent is meant to be
  single-threaded) would be taken for a stray.

What escapes: on other systems only the process-group kill applies (a child whose parent is
SIGKILLed runs on and records its own result); a SIGKILLed worker parent leaves its task's
grandchildren running (in a container they end with the container); a process started
outside the worker's tree (`systemd-run`, a container engine, a remote shell) is out of reach;
a detached process that outlives a task is ended between tasks, not at the instant the task
ends. The in-process runner runs tasks in the worker itself: what they start is the worker's
own, ended by nothing here.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import sys
import time
from pathlib import Path

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36

# Loaded once, before any fork: a child must not dlopen between fork and its prctl.
_LIBC = (
    ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True) if sys.platform == "linux" else None
)


def _prctl(option: int, value: int) -> bool:
    if _LIBC is None:
        return False
    return bool(_LIBC.prctl(option, value, 0, 0, 0) == 0)


def die_with_parent(parent_pid: int) -> None:
    """In a forked child: be SIGKILLed when the parent dies (where the OS allows), and leave
    at once if it died already, before that request took effect."""
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:
        os._exit(1)  # the task stays in the dead worker's list, recovered with it


def become_subreaper() -> bool:
    """Makes orphaned descendants of this process its children; False where unsupported."""
    return _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def kill_group(pgid: int) -> None:
    """SIGKILLs a process group. Call it while its leader is not yet reaped (alive or a
    zombie): only then can the id not belong to another group already."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def children() -> set[int]:
    """The pids of this process's children (Linux /proc; empty elsewhere)."""
    if not Path("/proc/self/task").is_dir():
        return set()
    try:
        return listed_children()
    except FileNotFoundError:  # no children file (CONFIG_PROC_CHILDREN off)
        return scanned_children()


def listed_children() -> set[int]:
    found: set[int] = set()
    for thread in Path("/proc/self/task").iterdir():
        found.update(int(pid) for pid in (thread / "children").read_text().split())
    return found


def scanned_children() -> set[int]:
    """The same as `listed_children`, from every process's parent pid: slower."""
    me = os.getpid()
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_bytes()
        except OSError:
            continue  # gone meanwhile
        if int(stat.rsplit(b")", 1)[1].split()[1]) == me:
            found.add(int(entry.name))
    return found


def end_strays(known: set[int], patience_s: float = 1.0) -> int:
    """SIGKILLs and reaps this process's children that are not in `known` (the task
    processes and children that are not the runner's), and then those whose parent that
    made this process their reaper; returns how many. Waits up to `patience_s` for them to
    die; what does not die in time is left for the next sweep."""
    ended = 0
    deadline = time.monotonic() + patience_s
    while True:
        strays = children() - known
        if not strays:
            return ended
        for pid in strays:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        ended += len(strays)
        for pid in strays:
            while not _reaped(pid):
                if time.monotonic() >= deadline:
                    return ended
                time.sleep(0.005)


def _reaped(pid: int) -> bool:
    try:
        return os.waitpid(pid, os.WNOHANG) != (0, 0)
    except ChildProcessError:
        return True
