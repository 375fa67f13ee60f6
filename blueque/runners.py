"""How a begun task is run: in a forked child (the default) or in the worker process.

The forking runner keeps the worker parent clean and alive whatever the task does (crash,
leak, signal); the child runs in its own process group, so a terminal's Ctrl-C reaches only
the parent, which decides. The child dies with the parent, and what the task leaves
behind is ended when it ends (see `process_tree`). The in-process runner saves the fork
for short tasks, at the price of sharing the worker's fate; it heartbeats from a thread
while a task runs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from typing import TYPE_CHECKING

from blueque.connection import REDIS_DOWN, unavailable
from blueque.errors import CorruptKeyError
from blueque.outcome import call_task_function
from blueque.process_tree import become_subreaper, children, end_strays, kill_group
from blueque.serialization import encode
from blueque.task import Task
from blueque.task_process import EXIT_RECORDED, Forks, Handover, TaskProcess

if TYPE_CHECKING:
    from blueque.worker import Worker

log = logging.getLogger("blueque.worker")

# Between tasks, a sweep for processes that finished tasks left runs at most this often (it
# reads /proc: 0.1 to 0.4 ms, or a scan of every process where the kernel has no children
# file), so that it costs nothing measurable however short the tasks.
STRAY_SWEEP_INTERVAL_S = 1.0


class ForkingRunner:
    """Runs each task in a forked process of its own (`blueque.task_process`). The process
    for the next task is forked while the current one runs, and waits, claiming nothing,
    until it is given a task. A task process hands its outcome to the parent over a pipe
    and the parent records it on its own, already open connection, then acknowledges; a
    process that gets no acknowledgement (end of file: the parent could not record, or,
    where a child does not die with its parent, the parent is gone) records the outcome
    itself. The common path costs the child no Redis connection of its own (redis-py opens
    a new one after a fork: several round trips, and the pages it touches are copied, which
    is slow on small virtual machines)."""

    name = "fork"

    def __init__(self) -> None:
        self._exiting: list[int] = []  # children whose outcome is recorded, not yet reaped
        self._subreaper: bool | None = None  # None until the first task
        self._not_ours: set[int] = set()  # children the worker's program had before that
        self._next_sweep = 0.0
        self._forks = Forks()
        self._spare: TaskProcess | None = None  # forked for the next task

    def execute(self, worker: Worker, task: Task) -> None:
        if self._subreaper is None:
            self._subreaper = become_subreaper()
            self._not_ours = children() if self._subreaper else set()
        self._reap_exited()
        self._end_strays()
        process = self._take_spare(worker)
        if not process.assign(task):  # the spare died before its task (killed from outside)
            process.discard()
            process = self._forks.spawn(worker)
            process.assign(task)  # should this one die too, its death is the task's
        if _more_to_come(worker):
            # The next task's process, forked while this task runs (its copy of this one's
            # pipes closed: the child waits for their end of file).
            self._spare = self._forks.spawn(worker, close_in_child=process.fds)
        handover = Handover(process.out_r, process.ack_w)
        try:
            self._supervise(worker, task, process.pid, handover)
        finally:
            os.close(process.out_r)
            if handover.ack_w >= 0:
                os.close(handover.ack_w)

    def _take_spare(self, worker: Worker) -> TaskProcess:
        spare, self._spare = self._spare, None
        if spare is not None and spare.alive():
            return spare
        if spare is not None:
            spare.discard()
        return self._forks.spawn(worker)

    def _supervise(self, worker: Worker, task: Task, pid: int, handover: Handover) -> None:
        """Waits for the child, heartbeating, recording the outcome it hands over; stops it
        when its task is cancelled."""
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
                watch = [pidfd] if handover.done else [pidfd, handover.fd]
                ready = worker.wait_readable(watch, wait_s)
                if handover.fd in ready:
                    handover.read_and_record(worker, task)
                if pidfd in ready:
                    break
                if handover.recorded:
                    # The task is finished; the child only exits now. The worker goes on
                    # (its next claim overlaps that exit) and reaps it later: before its
                    # next fork, or when a claim finds nothing.
                    self._exiting.append(pid)
                    return
                self._reap_exited()  # the previous task's process, if it was still exiting
                try:
                    cancel = worker.heartbeat_if_due() and not handover.recorded
                except (*REDIS_DOWN, CorruptKeyError) as exc:
                    log.warning("heartbeat failed: %s; the task keeps running", _why(exc))
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
        except BaseException:
            # Never leave a task process unsupervised: whatever ends this watch (a second
            # stop signal, an unexpected error) ends the task too; it stays in this
            # worker's list, for recovery.
            _signal_group(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise
        finally:
            os.close(pidfd)
        kill_group(pid)  # what the task left in its group ends with it
        _, status = os.waitpid(pid, 0)
        if not handover.done:
            # The child is gone: whatever it wrote is in the pipe, complete or not.
            handover.read_and_record(worker, task, final=True)
        if handover.recorded:
            return
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

    def idle(self) -> None:
        self._reap_exited()
        self._end_strays()

    def close(self) -> None:
        if self._spare is not None:
            self._spare.discard()
            self._spare = None
        deadline = time.monotonic() + 1.0
        while self._exiting and time.monotonic() < deadline:
            self._reap_exited()
            time.sleep(0.01)
        for pid in self._exiting:  # recorded, but slow to exit: it ends now
            kill_group(pid)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        self._exiting.clear()
        self._end_strays(now=True)

    def _reap_exited(self) -> None:
        """Reaps children whose task was recorded once they exited, after ending what their
        task left in their process group (while the exited child, a zombie, still holds
        the group's id)."""
        for pid in list(self._exiting):
            try:
                exited = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                self._exiting.remove(pid)
                continue
            if exited is None:
                continue  # still exiting: next time
            kill_group(pid)
            os.waitpid(pid, 0)
            self._exiting.remove(pid)

    def _end_strays(self, *, now: bool = False) -> None:
        """Ends processes that finished tasks detached and that were reparented to this
        worker (a subreaper). Runs only between tasks."""
        if not self._subreaper:
            return
        if not (now or time.monotonic() >= self._next_sweep):
            return
        self._next_sweep = time.monotonic() + STRAY_SWEEP_INTERVAL_S
        spare = {self._spare.pid} if self._spare is not None else set()
        ended = end_strays(self._not_ours | set(self._exiting) | spare)
        if ended:
            log.info("ended %d process(es) that finished tasks left running", ended)


def _more_to_come(worker: Worker) -> bool:
    """Whether the worker will claim again after this task (a spare is forked only then)."""
    limit = worker.settings.max_tasks
    return worker.signals == 0 and not (limit and worker.tasks_done + 1 >= limit)


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


class InProcessRunner:
    """Runs the task function in the worker itself. A running task cannot be stopped by a
    cancel here (there is no child to signal); the cancel is noted and the task finishes."""

    name = "inprocess"

    def __init__(self) -> None:
        # Whether a task runs: set and read without a lock (one attribute, under the GIL);
        # an Event costs a Condition's lock twice per task and nothing waits on it.
        self._busy = False
        self._thread: threading.Thread | None = None
        self._worker: Worker | None = None

    def idle(self) -> None:
        pass

    def close(self) -> None:
        pass

    def execute(self, worker: Worker, task: Task) -> None:
        self._ensure_heartbeat_thread(worker)
        self._busy = True
        try:
            outcome, payload = call_task_function(worker.fn, task)
        finally:
            self._busy = False
        worker.record(task, outcome, payload, then_claim=True)

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
            if self._busy:
                try:
                    worker.heartbeat_if_due()
                except (*REDIS_DOWN, CorruptKeyError) as exc:
                    log.warning("heartbeat failed: %s; the task keeps running", _why(exc))
                except Exception:  # this thread must outlive any one failed heartbeat
                    log.exception("heartbeat failed; the task keeps running")


def _why(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, CorruptKeyError) else unavailable(exc)
