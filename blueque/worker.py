"""The worker loop: claim one task, begin it, run it, record it; never more than one.

The parent is single-threaded when it forks (the forking runner): it claims with a blocking
`BLMOVE` into its own in-progress list, asks the `begin` script for permission, hands the task
to its runner, and refreshes its heartbeat while the task runs. Nothing here times a task
out. Signals (SIGTERM, SIGINT) only set flags and wake the loop through a pipe: the first
one lets the current task finish and then stops (exit 0); the second stops at once and leaves
the task in this worker's list, for recovery.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import socket
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Protocol

import redis.exceptions

from blueque.client import Client
from blueque.connection import REDIS_DOWN, check_claim_timeout, is_cluster, unavailable
from blueque.corruption import naming_keys
from blueque.environment import WorkerSettings
from blueque.errors import CorruptKeyError, CorruptTaskError, StopNow, WorkerIdInUseError
from blueque.identity import Holder, refuse_a_live_holder
from blueque.keys import PROTOCOL_VERSION
from blueque.outcome import TaskFunction, error_info
from blueque.protocol import Begun
from blueque.queue import Queue
from blueque.serialization import decode, encode
from blueque.states import Outcome
from blueque.task import Task

log = logging.getLogger("blueque.worker")

# A stopping worker tries this long to deregister while Redis is unreachable, then leaves:
# a stop must not wait for Redis (an idle worker exits within about a second), and a task it
# claimed meanwhile is given back like a dead worker's (reap, the operator, a restart).
STOP_PATIENCE_S = 1.0

# The exit status of a worker that does not start because another live worker holds its id
# (EX_CONFIG of sysexits.h: the configuration gave two workers one id).
EXIT_ID_IN_USE = 78


class Runner(Protocol):
    """Runs one begun task to its end and records its outcome through `worker.record`."""

    name: str

    def execute(self, worker: Worker, task: Task) -> None: ...

    def idle(self) -> None:
        """Called when a claim found nothing: housekeeping between tasks."""
        ...

    def close(self) -> None:
        """Called once when the worker stops: ends what its tasks left behind."""
        ...


class Worker:
    def __init__(
        self,
        client: Client,
        queue: str | Queue,
        fn: TaskFunction,
        runner: Runner,
        settings: WorkerSettings | None = None,
    ) -> None:
        self.client = client
        self._cluster = is_cluster(client.redis)  # (checked per claim: an isinstance of a union)
        self.queue = queue if isinstance(queue, Queue) else client.get_queue(queue)
        self.fn = fn
        self.runner = runner
        self.settings = settings or WorkerSettings.from_env()
        check_claim_timeout(client.redis, self.settings.claim_timeout_s)
        self.id = self.settings.resolved_worker_id()
        self.transitions = self.queue.transitions
        self.keys = self.queue.keys
        self.signals = 0
        self.draining = False
        self.tasks_done = 0
        self.current: Task | None = None
        self._started_ms = int(time.time() * 1000)
        self._last_heartbeat = 0.0
        self._last_promote = 0.0
        self._check_own_list = True
        self._early: Begun | None = None  # begun, not run yet (claimed with a finish, or in a stop)
        self._wake_r = -1

    # -- the loop --------------------------------------------------------------------------

    def run(self) -> int:
        """Works until stopped; returns the process exit code (0 after a clean stop)."""
        with self._signal_handling():
            log.info(
                "worker %s on queue %s (%s runner)", self.id, self.queue.name, self.runner.name
            )
            try:
                self._with_redis(self._start, until_stopping=True)
                while not self.stopping:
                    self._with_redis(self._step, until_stopping=True)
                self._with_redis(self._deregister, patience_s=STOP_PATIENCE_S)
            except WorkerIdInUseError as exc:
                log.error("%s", exc)
                return EXIT_ID_IN_USE
            except StopNow:
                log.warning("worker %s stopped at once; its task stays in its list", self.id)
                return 128 + signal.SIGTERM
            finally:
                self.runner.close()
        log.info("worker %s stopped after %d tasks", self.id, self.tasks_done)
        return 0

    @property
    def stopping(self) -> bool:
        limit = self.settings.max_tasks
        return self.signals > 0 or bool(limit and self.tasks_done >= limit)

    def _start(self) -> None:
        fields, fresh = self.transitions.registration(self.id)
        refuse_a_live_holder(
            self.id, Holder.from_fields(fields), fresh, socket.gethostname(), os.getpid()
        )
        # A restarted worker (same id, e.g. a container restart in the same pod) gives back
        # what its previous life held: that task's process is gone.
        with naming_keys(self.client.redis, "start", [self.keys.worker_tasks(self.id)]):
            held = self.transitions.held(self.id)
        if held is not None:
            requeued, failed = self.transitions.requeue_worker(self.id, "worker restarted")
            log.warning("recovered own list: %d requeued, %d failed", requeued, failed)
        self.transitions.register_queue()
        self.heartbeat()
        self._check_own_list = False

    def _step(self) -> None:
        if self.draining and self._early is None:
            self.sleep(self.settings.claim_timeout_s)
            self.heartbeat()
            return
        self.heartbeat_if_due()
        self._promote_if_due()
        begun = self._claim_and_begin()
        if begun is None:
            self.runner.idle()
            return
        task_id = begun.task_id
        if begun.status == "draining":
            log.info("worker %s is draining: claims nothing until undrained", self.id)
            self.draining = True
            return
        if begun.status == "unregistered":
            # Presumed dead and reaped while it was alive (a stall): register again first.
            log.warning("worker %s was unregistered; registering again", self.id)
            self.heartbeat()
            return
        if begun.status != "ok":
            log.info("task %s not begun: %s", task_id, begun.status)
            return
        try:
            parameters, unreadable = decode(begun.parameters, "parameters"), None
        except CorruptTaskError as exc:
            parameters, unreadable = None, exc
        task = Task.running(self.queue, task_id, parameters, begun.attempt, self.id)
        if unreadable is not None:
            # Parameters nobody can read: the task fails, the worker goes on.
            log.warning("task %s: %s", task_id, unreadable)
            self.record(task, "failed", encode(error_info(unreadable)))
            self.tasks_done += 1
            return
        self.current = task
        try:
            self.runner.execute(self, task)
        finally:
            self.current = None
        self.tasks_done += 1

    def _promote_if_due(self) -> None:
        interval = self.settings.promote_interval_s
        if interval and time.monotonic() - self._last_promote >= interval:
            self._last_promote = time.monotonic()
            self.transitions.promote_due()

    def _claim_and_begin(self) -> Begun | None:
        """Claims a task and begins it; None when nothing came within the claim timeout (or
        a stop came first). Claim and begin go out in one round trip where they can (not on
        a Cluster, whose pipelines are not one round trip, and not when this worker's own
        list must be looked at first)."""
        if self._early is not None:  # (never 'empty': record keeps only a claim that came)
            begun, self._early = self._early, None
            return begun
        if self._check_own_list or self._cluster:
            task_id = self._claim()
            if task_id is None or self.stopping:
                return None  # a task claimed during a stop is given back by _deregister
            return self.transitions.begin(self.id, task_id, os.getpid())
        # Until the answer is read, the claim may have run unseen: after any error, the next
        # claim looks in this worker's own list first.
        self._check_own_list = True
        begun = self.transitions.claim_and_begin(
            self.id, os.getpid(), self.settings.claim_timeout_s
        )
        self._check_own_list = False
        if begun.status == "ok" and self.stopping:
            # A stop came during the claim: the task is begun but not run; _deregister
            # gives it back at no cost rather than run it after the stop.
            self._early = begun
            return None
        return None if begun.status == "empty" else begun

    def _claim(self) -> str | None:
        with naming_keys(
            self.client.redis, "claim", [self.keys.pending, self.keys.worker_tasks(self.id)]
        ):
            return self._claim_unchecked()

    def _claim_unchecked(self) -> str | None:
        if self._check_own_list:
            # After a lost connection a claim may have moved a task to us unseen.
            held = self.transitions.held(self.id)
            self._check_own_list = False
            if held is not None:
                return held
        return self.transitions.claim(self.id, self.settings.claim_timeout_s)

    def _deregister(self) -> None:
        # A task begun in the claim that a stop interrupted (sent with the last finish, or
        # the claim itself) never ran: it goes back as if never begun, costing nothing.
        early = self._early
        if early is not None and early.status == "ok":
            state = self.transitions.release(self.id, early.task_id, early.attempt)
            log.info("task %s begun during the stop, not run: %s", early.task_id, state)
        self._early = None
        requeued, failed = self.transitions.requeue_worker(self.id, "worker stopped", exiting=True)
        if requeued or failed:
            log.info("gave back %d reserved task(s) on stop", requeued + failed)

    # -- heartbeat, recording ----------------------------------------------------------------

    def heartbeat(self) -> bool:
        """Refreshes registration and liveness; returns whether the current task's cancel
        was requested. Also learns whether this worker is draining."""
        s = self.settings
        fields: dict[str, str | int] = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "pod": s.pod_name or "",
            "pod_uid": s.pod_uid or "",
            "owner": s.owner or "",
            "started_at": self._started_ms,
            "runner": self.runner.name,
            "protocol": PROTOCOL_VERSION,
        }
        task_id = self.current.id if self.current else None
        draining, cancel = self.transitions.heartbeat(
            self.id, int(s.heartbeat_ttl_s * 1000), fields, task_id
        )
        if draining != self.draining:
            log.info("worker %s %s", self.id, "draining" if draining else "undrained")
        self.draining = draining
        self._last_heartbeat = time.monotonic()
        return cancel

    @property
    def _backoff_cap_s(self) -> float:
        # A retry at least every half TTL: after an outage, reapers give live workers one TTL
        # to heartbeat again (blueque.reaping).
        return min(self.settings.reconnect_max_delay_s, self.settings.heartbeat_ttl_s / 2)

    def heartbeat_if_due(self) -> bool:
        if time.monotonic() - self._last_heartbeat >= self.settings.heartbeat_interval_s:
            return self.heartbeat()
        return False

    def record(
        self, task: Task, outcome: Outcome, payload: str, *, then_claim: bool = False
    ) -> str:
        """Writes a task's outcome, retrying while Redis is unreachable: a result is never
        dropped because of an outage. Returns the task's new state, or 'stale'.

        With `then_claim` (the worker process, right before its loop would claim again), the
        finish also claims and begins the next task when one is pending (the `cycle` script:
        one round trip, on a Cluster too), when nothing else (a stop, a drain, a heartbeat or
        promotion that is due) would come first."""
        delay = 0.1
        claim = then_claim
        while True:
            try:
                if claim and self._may_claim_with_finish():
                    # Until the answer is read, the claim may have run unseen: after any
                    # error, the next claim looks in this worker's own list first.
                    self._check_own_list = True
                    state, begun = self.transitions.finish_claim_begin(
                        self.id, task.id, task.attempts, outcome, payload, os.getpid()
                    )
                    self._check_own_list = False
                    # Nothing was pending: the next step claims as usual (and waits).
                    self._early = None if begun.status == "empty" else begun
                else:
                    state = self.transitions.finish(
                        self.id, task.id, task.attempts, outcome, payload
                    )
                break
            except REDIS_DOWN as exc:
                claim = False
                if self.signals >= 2:
                    raise StopNow from exc
                log.warning(
                    "cannot record %s: %s; retrying in %.1f s", task.id, unavailable(exc), delay
                )
                self.sleep(delay)
                delay = min(delay * 2, self._backoff_cap_s)
            except CorruptKeyError as exc:
                # Kept until the key is repaired (a result is never dropped for a key that
                # is not the task's own), heartbeating meanwhile.
                claim = False
                if self._on_corrupt(exc) or self.signals >= 2:
                    return "dropped"
                log.error("cannot record %s: %s; retrying in %.1f s", task.id, exc, delay)
                self.sleep(delay)
                delay = min(delay * 2, self._backoff_cap_s)
                with contextlib.suppress(*REDIS_DOWN, CorruptKeyError):
                    self.heartbeat()
        if state == "stale":
            log.warning("task %s: late result dropped (requeued while it ran)", task.id)
        return state

    def _on_corrupt(self, exc: CorruptKeyError) -> bool:
        """When the corrupt key is the hash of a task in this worker's own list, that task
        cannot be begun, finished or given back: it is dropped from the list (and from the
        `live` count), so that it stops this worker; returns True. False for any other key."""
        prefix = self.keys.task("")
        if not exc.key or not exc.key.startswith(prefix):
            return False
        task_id = exc.key[len(prefix) :]
        try:
            if not self.client.redis.lrem(self.keys.worker_tasks(self.id), 0, task_id):
                return False
            self.client.redis.hincrby(self.keys.stats, "live", -1)
        except (*REDIS_DOWN, redis.exceptions.ResponseError):
            return False
        log.error("%s; task %s dropped from the list of worker %s", exc, task_id, self.id)
        return True

    def _may_claim_with_finish(self) -> bool:
        s = self.settings
        now = time.monotonic()
        return (
            self.signals == 0
            and not self.draining
            and not (s.max_tasks and self.tasks_done + 1 >= s.max_tasks)
            and now - self._last_heartbeat < s.heartbeat_interval_s
            and not (s.promote_interval_s and now - self._last_promote >= s.promote_interval_s)
            and not self._check_own_list
        )

    # -- signals and waiting ---------------------------------------------------------------

    @contextlib.contextmanager
    def _signal_handling(self) -> Iterator[None]:
        read_fd, write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._wake_r = read_fd
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
        old_wakeup = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        for sig in previous:
            signal.signal(sig, self._on_signal)
        try:
            yield
        finally:
            signal.set_wakeup_fd(old_wakeup)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            os.close(read_fd)
            os.close(write_fd)
            self._wake_r = -1

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.signals += 1
        name = signal.Signals(signum).name
        if self.signals == 1:
            log.info("%s: finishing the current task, then stopping", name)
        else:
            log.warning("%s again: stopping at once", name)

    def sleep(self, seconds: float) -> None:
        """Sleeps, but wakes at once on a signal."""
        self.wait_readable([], seconds)

    def wait_readable(self, fds: list[int], seconds: float) -> list[int]:
        """Waits for any of `fds`, a signal or the timeout; returns the ready fds."""
        watch = [*fds, self._wake_r] if self._wake_r >= 0 else fds
        ready, _, _ = select.select(watch, [], [], max(0.0, seconds))
        if self._wake_r in ready:
            with contextlib.suppress(BlockingIOError):
                os.read(self._wake_r, 512)
        if self.signals >= 2:
            raise StopNow
        return [fd for fd in ready if fd != self._wake_r]

    def _with_redis(
        self,
        action: Callable[[], None],
        *,
        until_stopping: bool = False,
        patience_s: float | None = None,
    ) -> None:
        """Runs `action`, retrying with exponential backoff while Redis is unreachable; with
        `until_stopping`, gives up once a stop was requested; with `patience_s`, after that
        long. A second signal always ends it."""
        delay = 0.1
        began = time.monotonic()
        while True:
            try:
                action()
                return
            except CorruptKeyError as exc:
                self._check_own_list = True
                if self._on_corrupt(exc):
                    continue
                # Another key (stats, config, a list): nothing this worker can repair. It
                # waits, saying which key, instead of exiting into the same failure.
                if patience_s is not None and time.monotonic() - began >= patience_s:
                    log.error("%s; leaving without deregistering", exc)
                    return
                log.error("%s; retrying in %.1f s (repair or delete that key)", exc, delay)
                self.sleep(delay)
                delay = min(delay * 2, self._backoff_cap_s)
                if until_stopping and self.stopping:
                    return
            except REDIS_DOWN as exc:
                self._check_own_list = True
                if patience_s is not None and time.monotonic() - began >= patience_s:
                    log.warning(
                        "%s; leaving without deregistering: what this worker holds is"
                        " recovered as a dead worker's",
                        unavailable(exc),
                    )
                    return
                log.warning("%s; retrying in %.1f s", unavailable(exc), delay)
                self.sleep(delay)
                delay = min(delay * 2, self._backoff_cap_s)
                if until_stopping and self.stopping:
                    return
