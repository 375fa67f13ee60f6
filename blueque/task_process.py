"""The forked process that runs one task, and the pipes between it and the worker parent.

The forking runner forks the process for the next task while the current one runs
(`spawn`): the fork's cost then overlaps a task instead of delaying the next one. Such a
spare process claims nothing and talks to no one: it waits on its task pipe until the
parent, which still claims one task at a time and only when free, has begun a task and
`assign`s it (its id, attempt and parameters), and it leaves, having run nothing, when the
parent closes that pipe instead. Once the task ran, the process hands its outcome to the
parent over a second pipe and waits for the acknowledgement on a third (`Handover`); with
none (end of file: the parent could not record it, or is gone) it records the outcome
itself.

Before each fork the parent's heap is frozen (`gc.freeze`): objects that exist at the fork
are left out of every later collection, in the parent and in the child, so neither
process's collector walks (and so writes to, and so copies) the pages they share. Garbage
cycles frozen this way are collected every `FULL_COLLECT_EVERY` forks.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import pickle
import signal
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn

from blueque.errors import StopNow
from blueque.outcome import call_task_function
from blueque.process_tree import die_with_parent, kill_group
from blueque.states import Outcome, as_outcome
from blueque.task import Task

if TYPE_CHECKING:
    from blueque.worker import Worker

log = logging.getLogger("blueque.worker")

EXIT_RECORDED = 0  # the outcome was recorded (by the parent, or by the process itself)
EXIT_NOT_RECORDED = 70
EXIT_UNUSED = 0  # a spare whose parent closed its task pipe: it ran nothing
ACK = b"1"  # parent to child: your outcome is recorded
FULL_COLLECT_EVERY = 1000  # forks between two full collections of the parent's heap


@dataclass
class TaskProcess:
    """A forked task process, as its parent holds it: its pid and the parent's ends of its
    pipes (-1 once closed)."""

    pid: int
    task_w: int
    out_r: int
    ack_w: int

    @property
    def fds(self) -> list[int]:
        return [fd for fd in (self.task_w, self.out_r, self.ack_w) if fd >= 0]

    def alive(self) -> bool:
        try:
            return os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None
        except ChildProcessError:
            return False

    def assign(self, task: Task) -> bool:
        """Sends the process its task; False when it is gone (it ran nothing)."""
        message = pickle.dumps((task.id, task.attempts, task.parameters), pickle.HIGHEST_PROTOCOL)
        try:
            with os.fdopen(self.task_w, "wb") as pipe:
                pipe.write(message)
        except BrokenPipeError:
            return False
        finally:
            self.task_w = -1
        return True

    def discard(self) -> None:
        """Ends a process that was given no task, and reaps it."""
        for fd in self.fds:
            os.close(fd)
        self.task_w = self.out_r = self.ack_w = -1
        kill_group(self.pid)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)


class Forks:
    """Forks task processes, freezing the parent's heap first."""

    def __init__(self) -> None:
        self.count = 0

    def spawn(self, worker: Worker, close_in_child: Iterable[int] = ()) -> TaskProcess:
        """A new task process, waiting for its task. `close_in_child`: the parent's ends of
        other task processes' pipes, which this one must not hold open (a process waits for
        the end of file of its acknowledgement pipe)."""
        if self.count % FULL_COLLECT_EVERY == 0:
            gc.unfreeze()
            gc.collect()
        gc.freeze()
        self.count += 1
        sys.stdout.flush()
        sys.stderr.flush()
        task_r, task_w = os.pipe2(os.O_CLOEXEC)
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        ack_r, ack_w = os.pipe2(os.O_CLOEXEC)
        parent = os.getpid()
        try:
            pid = os.fork()
        except BaseException:
            for fd in (task_r, task_w, out_r, out_w, ack_r, ack_w):
                os.close(fd)
            raise
        if pid == 0:
            _child(worker, parent, task_r, out_w, ack_r, [task_w, out_r, ack_w, *close_in_child])
        for fd in (task_r, out_w, ack_r):
            os.close(fd)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.setpgid(pid, pid)  # also from the parent: no race with the child's own call
        return TaskProcess(pid, task_w, out_r, ack_w)


def _child(
    worker: Worker, parent: int, task_r: int, out_w: int, ack_r: int, parents_fds: list[int]
) -> NoReturn:
    """The task process: waits for its task, runs it, hands over or records the outcome,
    and leaves without the parent's cleanup."""
    code = EXIT_NOT_RECORDED
    task_id = "(not assigned yet)"
    try:
        die_with_parent(parent)
        for fd in parents_fds:
            os.close(fd)
        os.setpgid(0, 0)
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        with os.fdopen(task_r, "rb") as pipe:
            message = pipe.read()
        if not message:  # the parent closed the pipe: no task for this spare
            _leave(EXIT_UNUSED)
        task_id, attempts, parameters = pickle.loads(message)
        task = Task.running(worker.queue, task_id, parameters, attempts, worker.id)
        worker.current = task
        outcome, payload = call_task_function(worker.fn, task)
        if not _hand_over(out_w, ack_r, outcome, payload):
            worker.record(task, outcome, payload)
        code = EXIT_RECORDED
    except BaseException:
        # The parent records a bare exit status; the reason goes to the log.
        log.exception("task %s: its process failed before its outcome was recorded", task_id)
    _leave(code)


def _leave(code: int) -> NoReturn:
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def _hand_over(out_w: int, ack_r: int, outcome: str, payload: str) -> bool:
    """In the child: sends the outcome to the parent; True once the parent recorded it."""
    body = payload.encode()
    message = f"{outcome} {len(body)}\n".encode() + body
    try:
        with os.fdopen(out_w, "wb") as out:
            out.write(message)
        with os.fdopen(ack_r, "rb") as ack:
            return ack.read(1) == ACK
    except OSError:  # the parent is gone (EPIPE)
        return False


class Handover:
    """In the parent: reads a task process's outcome message, records it, acknowledges it."""

    def __init__(self, fd: int, ack_w: int) -> None:
        os.set_blocking(fd, False)
        self.fd = fd
        self.ack_w = ack_w
        self.chunks: list[bytes] = []
        self.received = 0
        self.header: tuple[str, int, bytes] | None = None  # outcome, body length, the line
        self.done = False  # the message was read, or can no longer come
        self.recorded = False

    def read_and_record(self, worker: Worker, task: Task, *, final: bool = False) -> None:
        eof = self._read()
        message = self._message()
        if message is None:
            self.done = eof or final
            return
        self.done = True
        outcome, payload = message
        try:
            worker.record(task, outcome, payload, then_claim=True)
        except StopNow:
            raise
        except Exception:
            log.exception("task %s: recording its outcome failed; the child tries", task.id)
        else:
            self.recorded = True
            with contextlib.suppress(OSError):
                os.write(self.ack_w, ACK)
        # Closing is the answer when there is no acknowledgement: the child records itself.
        os.close(self.ack_w)
        self.ack_w = -1

    def _read(self) -> bool:
        """Reads what is there; True at end of file."""
        while True:
            try:
                chunk = os.read(self.fd, 1 << 20)
            except BlockingIOError:
                return False
            if not chunk:
                return True
            self.chunks.append(chunk)
            self.received += len(chunk)

    def _message(self) -> tuple[Outcome, str] | None:
        if self.header is None:
            data = b"".join(self.chunks)
            self.chunks = [data]
            line, sep, _ = data.partition(b"\n")
            if not sep:
                return None
            name, _, size = line.decode().partition(" ")
            self.header = (name, int(size), line + sep)
        outcome, length, head = self.header
        if self.received < len(head) + length:
            return None
        body = b"".join(self.chunks)[len(head) : len(head) + length]
        return as_outcome(outcome), body.decode()
