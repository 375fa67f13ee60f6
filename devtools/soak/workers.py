"""The soak's worker processes: real `blueque worker` commands, one per slot, restarted when
they end, and everything the soak does to them, recorded as `Happening`s.

Each process started is an *incarnation* (`w<slot>.<n>`), named in its environment so that the
tasks it runs can say who ran them. Even slots run the forking runner, odd ones the in-process
runner. A slot restarted after a SIGKILL or a SIGTERM keeps its worker id half the time (a
container restarted in its pod: the new process recovers its own list) and takes a new one
otherwise (a new pod: the scheduler's reap must find the old id dead).
"""

from __future__ import annotations

import os
import random
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from devtools.processes import Process, stop_all
from devtools.soak.ledger import Happening
from devtools.soak.task import INCARNATION_ENV, REDIS_URL_ENV, TASK_REF

ROOT = Path(__file__).resolve().parents[2]
TERM_GRACE_S = 30.0
"""A worker told to stop with SIGTERM is SIGKILLed (and counted as lost) after this."""


@dataclass(frozen=True)
class WorkerTimings:
    heartbeat_interval_s: float
    heartbeat_ttl_s: float

    @property
    def reconnect_max_delay_s(self) -> float:
        """Backoff cap while Redis is down. Two thirds of the TTL: after an outage a worker
        may take that long to heartbeat again, as with the default of 10 s out of 30 s, so
        a reaper that counts the outage against workers (issue 8 case 20) shows."""
        return self.heartbeat_ttl_s * 2 / 3

    @property
    def claim_timeout_s(self) -> float:
        return min(0.5, self.heartbeat_ttl_s / 4)

    @property
    def lost_after_stop_s(self) -> float:
        """A SIGSTOP at least this long may get the worker reaped: its last heartbeat may be
        one interval older than the stop."""
        return self.heartbeat_ttl_s - self.heartbeat_interval_s


@dataclass
class Incarnation:
    name: str
    slot: int
    worker_id: str
    fork: bool
    process: Process
    stopped_at: float | None = None
    cont_due: float = 0.0
    """When a stopped incarnation gets its SIGCONT (monotonic)."""
    term_at: float | None = None
    gone: bool = False

    @property
    def available(self) -> bool:
        """Running normally: a target for the next signal."""
        return not self.gone and self.stopped_at is None and self.term_at is None


class WorkerPool:
    def __init__(
        self,
        *,
        url: str,
        queue: str,
        size: int,
        timings: WorkerTimings,
        log_dir: Path,
        rng: random.Random,
    ) -> None:
        self.url = url
        self.queue = queue
        self.timings = timings
        self.log_dir = log_dir
        self.rng = rng
        self.slots: list[Incarnation | None] = [None] * size
        self.all: list[Incarnation] = []
        self.happenings: list[Happening] = []
        self.warnings: list[str] = []
        self._starts = [0] * size
        self._stops = 0
        self._restart_at: dict[int, tuple[float, bool]] = {}  # slot -> (monotonic due, same id)

    # -- starting ---------------------------------------------------------------------------

    def start_all(self) -> None:
        for slot in range(len(self.slots)):
            self._start(slot, same_id=False)

    def _start(self, slot: int, *, same_id: bool) -> Incarnation:
        self._starts[slot] += 1
        n = self._starts[slot]
        previous = self.slots[slot]
        worker_id = previous.worker_id if same_id and previous else f"soak-w{slot}-{n}"
        name = f"w{slot}.{n}"
        fork = slot % 2 == 0
        t = self.timings
        env = {k: v for k, v in os.environ.items() if not k.startswith("BLUEQUE_")}
        env.update(
            {
                "PYTHONPATH": str(ROOT),
                "PYTHONUNBUFFERED": "1",
                INCARNATION_ENV: name,
                REDIS_URL_ENV: self.url,
            }
        )
        process = Process.start(
            name,
            [
                str(Path(sys.executable).parent / "blueque"),
                "--url",
                self.url,
                "worker",
                self.queue,
                "--task",
                TASK_REF,
                "--worker-id",
                worker_id,
                "--claim-timeout",
                str(t.claim_timeout_s),
                "--heartbeat-interval",
                str(t.heartbeat_interval_s),
                "--heartbeat-ttl",
                str(t.heartbeat_ttl_s),
                "--cancel-grace",
                "1",
                "--reconnect-max-delay",
                str(t.reconnect_max_delay_s),
                "--promote-interval",
                "0",  # the scheduler alone promotes: its outages (chaos) then matter
                "--fork" if fork else "--no-fork",
            ],
            log_file=self.log_dir / f"{name}.log",
            cwd=ROOT,
            env=env,
        )
        incarnation = Incarnation(name, slot, worker_id, fork, process)
        self.slots[slot] = incarnation
        self.all.append(incarnation)
        return incarnation

    def _restart_later(self, slot: int) -> None:
        delay_s, same_id = self.rng.uniform(0.1, 1.5), self.rng.random() < 0.5
        self._restart_at[slot] = (time.monotonic() + delay_s, same_id)

    # -- what the chaos does ------------------------------------------------------------------

    def pick(self) -> Incarnation | None:
        candidates = [i for i in self.slots if i is not None and i.available]
        return self.rng.choice(candidates) if candidates else None

    def kill(self, inc: Incarnation, what: str = "SIGKILL") -> None:
        at = time.time()
        inc.process.kill()
        inc.gone = True
        self.happenings.append(Happening(what, at, at, inc.name, loss=True))
        self._restart_later(inc.slot)

    def stop(self, inc: Incarnation) -> None:
        """SIGSTOP, in turn past the heartbeat TTL (the first one) and well under it; `tick`
        sends the SIGCONT."""
        ttl = self.timings.heartbeat_ttl_s
        self._stops += 1
        long = self._stops % 2 == 1
        duration = self.rng.uniform(ttl + 0.5, ttl + 3) if long else self.rng.uniform(0.2, ttl / 3)
        inc.process.signal(signal.SIGSTOP)
        inc.stopped_at = time.time()
        inc.cont_due = time.monotonic() + duration

    def cont(self, inc: Incarnation) -> None:
        if inc.stopped_at is None:
            return
        inc.process.signal(signal.SIGCONT)
        start, end = inc.stopped_at, time.time()
        inc.stopped_at = None
        lost = end - start >= self.timings.lost_after_stop_s
        self.happenings.append(
            Happening(f"SIGSTOP {end - start:.1f} s", start, end, inc.name, loss=lost)
        )

    def term(self, inc: Incarnation) -> None:
        inc.process.signal(signal.SIGTERM)
        inc.term_at = time.time()
        self.happenings.append(Happening("SIGTERM", inc.term_at, inc.term_at, inc.name))

    # -- every tick ---------------------------------------------------------------------------

    def tick(self) -> None:
        """Notices exits, escalates SIGTERMs past their grace, restarts slots when due."""
        now = time.time()
        for inc in self.slots:
            if inc is None or inc.gone:
                continue
            if inc.stopped_at is not None:
                if time.monotonic() >= inc.cont_due:
                    self.cont(inc)
                continue
            code = inc.process.poll()
            if code is not None:
                inc.gone = True
                if inc.term_at is not None and code == -signal.SIGTERM:
                    # SIGTERM before its handler was installed (it was starting): it held
                    # nothing yet, but it died.
                    self.happenings.append(
                        Happening("died of SIGTERM", now, now, inc.name, loss=True)
                    )
                elif inc.term_at is None or code != 0:
                    # A worker that ends on its own died: its task is a lost worker's.
                    self.warnings.append(
                        f"{inc.name} ({inc.worker_id}) exited with status {code}"
                        f" (log {inc.process.log_file}): {inc.process.tail(3)!r}"
                    )
                    self.happenings.append(
                        Happening(f"exited {code}", now, now, inc.name, loss=True)
                    )
                self._restart_later(inc.slot)
            elif inc.term_at is not None and now - inc.term_at > TERM_GRACE_S:
                self.warnings.append(f"{inc.name} still running {TERM_GRACE_S:.0f} s after SIGTERM")
                self.kill(inc, "SIGKILL after the SIGTERM grace")
        for slot, (due, same_id) in list(self._restart_at.items()):
            if time.monotonic() >= due:
                del self._restart_at[slot]
                self._start(slot, same_id=same_id)

    def settle(self) -> None:
        """Ends the chaos: SIGCONT to every stopped worker, pending restarts now."""
        for inc in self.slots:
            if inc is not None:
                self.cont(inc)
        self._restart_at = {slot: (0.0, same) for slot, (_, same) in self._restart_at.items()}
        self.tick()

    def all_running(self) -> bool:
        return not self._restart_at and all(i is not None and i.available for i in self.slots)

    def stop_all(self) -> None:
        """SIGTERM to every worker (SIGCONT first): busy ones finish their task; SIGKILL
        after the grace."""
        live = [i for i in self.all if not i.gone]
        for inc in live:
            self.cont(inc)
        stop_all([i.process for i in live], grace_s=15.0)
        for inc in live:
            inc.gone = True
        for inc in self.all:
            inc.process.kill()  # reaps every one; nothing is left running
