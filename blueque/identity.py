"""Who holds a worker id: a worker refuses to start while another live worker holds its id.

Two workers sharing an id (one `BLUEQUE_WORKER_ID` copied across replicas) would share one
in-progress list: the second would "recover" the first's running task and run it again. But
a container restarted in the same pod also finds its id held, by its previous life, whose
heartbeat outlives it for up to one TTL; it must start and recover its own list. So a
holder counts as live only if its heartbeat is fresh (the alive key exists) and it is on
another host, or on this host with its pid alive, not ours, and older than the holder's
registration (a younger process at that pid reused the number: a restarted container's new
PID namespace does that).

A check before start, not an atomic claim: two workers started with one id within the same
instant both pass it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from blueque.errors import WorkerIdInUseError

# Process start times from /proc are exact to a tick, the boot time only to a second.
_START_SLACK_S = 1.0


@dataclass(frozen=True)
class Holder:
    """What the worker hash says of the worker that registered an id."""

    host: str
    pid: int
    started_at_s: float | None  # when it registered (seconds since the epoch)

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> Holder | None:
        try:
            started = fields.get("started_at")
            return cls(fields["host"], int(fields["pid"]), int(started) / 1000 if started else None)
        except (KeyError, ValueError):
            return None


def refuse_a_live_holder(
    worker_id: str, holder: Holder | None, fresh: bool, host: str, pid: int
) -> None:
    """Raises `WorkerIdInUseError` if `holder` is another live worker; see the module."""
    if holder is None or not fresh:
        return
    if holder.host != host:
        where = f"on host {holder.host!r} (pid {holder.pid})"
    elif holder.pid != pid and _same_process_alive(holder):
        where = f"on this host, pid {holder.pid}"
    else:
        return  # this process's previous life (a restarted container): it recovers its list
    raise WorkerIdInUseError(
        f"worker id {worker_id!r} is held by a live worker {where}: two workers must not"
        " share an id (BLUEQUE_WORKER_ID, --worker-id); this one does not start"
    )


def _same_process_alive(holder: Holder) -> bool:
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, another user's
    started = process_started_at(holder.pid)
    if started is None or holder.started_at_s is None:
        return True  # cannot tell a reused pid: presume the holder
    return started <= holder.started_at_s + _START_SLACK_S


def process_started_at(pid: int) -> float | None:
    """When a process started (seconds since the epoch), from Linux /proc; None elsewhere."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_bytes().splitlines()
            if line.startswith(b"btime ")
        )
    except (OSError, StopIteration, ValueError):
        return None
    ticks = int(stat.rsplit(b")", 1)[1].split()[19])  # field 22: start time, clock ticks
    return boot + ticks / os.sysconf("SC_CLK_TCK")
