"""The soak's `blueque scheduler` process, and what the chaos does to it.

In the soak the scheduler alone promotes scheduled tasks (the workers run with
`--promote-interval 0`) and alone reaps workers whose heartbeat expired, so while it is down
every delayed task, every automatic retry and every dead worker's task waits for it. The chaos
SIGKILLs it, or SIGTERMs it (it ends its pass and exits 0), and starts a new process after
`RESTART_DELAY_S`, as a Deployment would: the new one knows nothing of what the old one saw
(its `ReapGuard` starts afresh). A scheduler that ends on its own is a warning, and is started
again at once. Each outage is a `Happening` that concerns no one worker: it explains no rerun,
and the report shows it next to an unexplained one.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import time
from pathlib import Path

from devtools.processes import Process
from devtools.soak.ledger import Happening
from devtools.soak.workers import ROOT

INTERVAL_S = 0.5
"""`blueque scheduler --interval`: the longest sleep between two passes."""
RESTART_DELAY_S = (0.5, 3.0)
"""How long the scheduler stays down after the chaos ended it (uniform)."""
TERM_GRACE_S = 10.0
"""A scheduler told to stop with SIGTERM is SIGKILLed (and reported) after this."""


class Scheduler:
    def __init__(self, *, url: str, queue: str, log_dir: Path, rng: random.Random) -> None:
        self.url = url
        self.queue = queue
        self.log_dir = log_dir
        self.rng = rng
        self.process: Process | None = None
        self.all: list[Process] = []
        self.happenings: list[Happening] = []
        self.warnings: list[str] = []
        self.outages: list[float] = []
        self._down: tuple[str, float] | None = None  # (what ended it, unix time)
        self._back_due = 0.0  # monotonic
        self._terminated: list[tuple[Process, float]] = []  # (process, monotonic SIGTERM)

    @property
    def up(self) -> bool:
        return self._down is None

    @property
    def restart_due(self) -> bool:
        return self._down is not None and time.monotonic() >= self._back_due

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BLUEQUE_")}
        env["PYTHONPATH"] = str(ROOT)  # this checkout's library, as the workers
        n = len(self.all) + 1
        self.process = Process.start(
            f"scheduler.{n}",
            [
                str(Path(sys.executable).parent / "blueque"),
                "--url",
                self.url,
                "scheduler",
                self.queue,
                "--interval",
                str(INTERVAL_S),
            ],
            log_file=self.log_dir / f"scheduler.{n}.log",
            cwd=ROOT,
            env=env,
        )
        self.all.append(self.process)

    # -- what the chaos does ------------------------------------------------------------------

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self._went_down("SIGKILL")

    def term(self) -> None:
        assert self.process is not None
        self.process.signal(signal.SIGTERM)
        self._terminated.append((self.process, time.monotonic()))
        self._went_down("SIGTERM")

    def _went_down(self, what: str) -> None:
        self.process = None
        self._down = (what, time.time())
        self._back_due = time.monotonic() + self.rng.uniform(*RESTART_DELAY_S)

    def restart(self) -> None:
        """Ends an outage the chaos began (due or not)."""
        assert self._down is not None
        what, since = self._down
        self._down = None
        self.start()
        now = time.time()
        self.outages.append(now - since)
        self.happenings.append(Happening(f"scheduler {what}, down {now - since:.1f} s", since, now))

    # -- every tick ---------------------------------------------------------------------------

    def tick(self) -> None:
        """Notices a scheduler that ended on its own (started again at once) and checks that
        a SIGTERMed one exits 0 within its grace."""
        if self.process is not None and self.process.poll() is not None:
            self.warnings.append(
                f"{self.process.name} exited with status {self.process.poll()}:"
                f" {self.process.tail(3)!r}"
            )
            self.start()
        for process, at in list(self._terminated):
            code = process.poll()
            if code is None and time.monotonic() - at > TERM_GRACE_S:
                self.warnings.append(
                    f"{process.name} still running {TERM_GRACE_S:.0f} s after SIGTERM"
                )
                process.kill()
                code = process.poll()
            if code is not None:
                self._terminated.remove((process, at))
                # -SIGTERM: it was starting, its handler not installed yet.
                if code not in (0, -signal.SIGTERM):
                    self.warnings.append(f"{process.name} exited {code} after SIGTERM")

    def stop_all(self) -> None:
        """Stops every scheduler process started, by pid."""
        for process in self.all:
            process.stop()
        self.process = None
