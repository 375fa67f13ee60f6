"""A pod's "container" on the host: the session its main process leads.

`Process.start` makes each process a session leader. What it forks stays in that session even
when it moves to a process group of its own (as a worker's task process does), so the session is
what a container's end must take down: SIGKILL to every member, as the kernel does to a pid
namespace whose init dies.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

from devtools.processes import Process, pid_running, wait_until

__all__ = ["kill_session", "session_members"]

_KILL_TIMEOUT_S = 5.0


def kill_session(process: Process) -> None:
    """SIGKILL to every process of `process`'s session, then reap it (its exit status stays with
    `process.poll()`). Members forked while this runs are caught by the next round."""
    for _ in range(3):
        members = session_members(process.pid, process.started_tick)
        if not members:
            break
        for pid in members:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        wait_until(
            lambda: not any(pid_running(pid) for pid in members),  # noqa: B023 (called here)
            _KILL_TIMEOUT_S,
            interval_s=0.01,
            what="the container's processes to die",
        )
    process.kill()


def session_members(session: int, since_tick: int) -> list[int]:
    """Live processes of `session` that started no earlier than its leader (`since_tick`): the
    leftovers of an older session whose leader had the same pid are not taken."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # proc(5): state, ppid, pgrp, session, ... starttime (field 22, index 19 here).
        state, session_id, started = fields[0], int(fields[3]), int(fields[19])
        if state not in ("Z", "X") and session_id == session and started >= since_tick:
            members.append(int(entry.name))
    return members
