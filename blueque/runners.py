"""How a begun task is run: in a forked child (the default) or in the worker process.

The forking runner keeps the worker parent clean and alive whatever the task does (crash,
leak, signal); the child runs in its own process group, so a terminal's Ctrl-C reaches only
the parent, which decides. The in-process runner saves the fork for short tasks, at the
price of sharing the worker's fate; it heartbeats from a thread while a task runs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING

from blueque.connection import REDIS_DOWN
from blueque.errors import StopNow
from blueque.outcome import call_task_function
from blueque.serialization import encode
from blueque.task import Task

if TYPE_CHECKING:
    from blueque.worker import Worker

log = logging.getLogger("blueque.worker")

EXIT_RECORDED = 0  # the child recorded the outcome itself
EXIT_NOT_RECORDED = 70


class ForkingRunner:
    name = "fork"

    def execute(self, worker: Worker, task: Task) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: run, record, leave without running the parent's cleanup
            code = EXIT_NOT_RECORDED
            try:
                os.setpgid(0, 0)
                signal.set_wakeup_fd(-1)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                outcome, payload = call_task_function(worker.fn, task)
                worker.record(task, outcome, payload)
                code = EXIT_RECORDED
            finally:
                with contextlib.suppress(Exception):
                    sys.stdout.flush()
                    sys.stderr.flush()
                os._exit(code)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.setpgid(pid, pid)  # also from the parent: no race with the child's own call
        self._supervise(worker, task, pid)

    def _supervise(self, worker: Worker, task: Task, pid: int) -> None:
        """Waits for the child, heartbeating; stops it when its task is cancelled."""
        pidfd = os.pidfd_open(pid)
        cancelled_at: float | None = None
        killed = False
        try:
            while True:
                wait_s = worker.settings.heartbeat_interval_s
                if cancelled_at is not None and not killed:
                    wait_s = min(
                        wait_s,
                        max(0.0, cancelled_at + worker.settings.cancel_grace_s - time.monotonic()),
                    )
                try:
                    if worker.wait_readable([pidfd], wait_s):
                        break
                except StopNow:
                    _signal_group(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    raise
                try:
                    cancel = worker.heartbeat_if_due()
                except REDIS_DOWN as exc:
                    log.warning("heartbeat failed (%s); the task keeps running", exc)
                    cancel = False
                if cancel and cancelled_at is None:
                    log.info("task %s cancelled: SIGTERM to its process group", task.id)
                    cancelled_at = time.monotonic()
                    _signal_group(pid, signal.SIGTERM)
                elif (
                    cancelled_at is not None
                    and not killed
                    and time.monotonic() >= cancelled_at + worker.settings.cancel_grace_s
                ):
                    log.info("task %s still running after the cancel grace: SIGKILL", task.id)
                    _signal_group(pid, signal.SIGKILL)
                    killed = True
        finally:
            os.close(pidfd)
        _, status = os.waitpid(pid, 0)
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) == EXIT_RECORDED:
            return
        if os.WIFSIGNALED(status):
            sig = signal.Signals(os.WTERMSIG(status)).name
            if cancelled_at is not None:
                error = {
                    "type": "Cancelled",
                    "message": f"cancelled while running; stopped by {sig}",
                    "signal": sig,
                }
                worker.record(task, "cancelled", encode(error))
                return
            error = {
                "type": "KilledBySignal",
                "message": f"task process killed by {sig}",
                "signal": sig,
            }
        else:
            code = os.WEXITSTATUS(status)
            error = {
                "type": "ChildExited",
                "message": f"task process exited with status {code} before recording a result",
            }
        worker.record(task, "failed", encode(error))


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


class InProcessRunner:
    """Runs the task function in the worker itself. A running task cannot be stopped by a
    cancel here (there is no child to signal); the cancel is noted and the task finishes."""

    name = "inprocess"

    def __init__(self) -> None:
        self._busy = threading.Event()
        self._thread: threading.Thread | None = None
        self._worker: Worker | None = None

    def execute(self, worker: Worker, task: Task) -> None:
        self._ensure_heartbeat_thread(worker)
        self._busy.set()
        try:
            outcome, payload = call_task_function(worker.fn, task)
        finally:
            self._busy.clear()
        worker.record(task, outcome, payload)

    def _ensure_heartbeat_thread(self, worker: Worker) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._worker = worker
            self._thread = threading.Thread(
                target=self._heartbeat_while_busy, name="blueque-heartbeat", daemon=True
            )
            self._thread.start()

    def _heartbeat_while_busy(self) -> None:
        worker = self._worker
        assert worker is not None
        interval = worker.settings.heartbeat_interval_s
        while True:
            time.sleep(interval)
            if self._busy.is_set():
                try:
                    worker.heartbeat_if_due()
                except REDIS_DOWN as exc:
                    log.warning("heartbeat failed (%s); the task keeps running", exc)
