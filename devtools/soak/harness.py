"""One soak run: a redis-server with AOF, `blueque worker` and `blueque scheduler` processes,
a producer, and the chaos, for a set time; then everything settles and the verdict is drawn
(`ledger.summarize`).

The soak is one thread (plus one that follows the queue's events, for the report only): it
enqueues, signals, restarts Redis and cancels in turn, so none of its own Redis calls is in
flight when it kills Redis. Everything it starts is a `devtools.processes.Process`, stopped by
pid at the end, also after an error or Ctrl-C; the work directory (worker logs, Redis's AOF,
report.json) is kept.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import signal
import tempfile
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from blueque import Client, ConnectionFailedError, InvalidStateError, Queue, TaskNotFoundError
from blueque.connection import REDIS_DOWN
from devtools.processes import pid_running, wait_until
from devtools.soak.ledger import Execution, FinalTask, Happening, Summary, summarize
from devtools.soak.scheduler import Scheduler
from devtools.soak.store import Store
from devtools.soak.task import FAIL_ALWAYS, FAIL_ONCE, TASK_REF, runs_key
from devtools.soak.workers import WorkerPool, WorkerTimings

T = TypeVar("T")

QUEUE = "soak"
CHAOS = ("kill", "stop", "term", "redis", "cancel", "scheduler-kill", "scheduler-term")
_WEIGHTS = {
    "kill": 3,
    "stop": 2,
    "term": 2,
    "redis": 1,
    "cancel": 2,
    "scheduler-kill": 1,
    "scheduler-term": 1,
}
TICK_S = 0.02
PRODUCE_EVERY_S = 0.2


@dataclass(frozen=True)
class SoakSettings:
    tasks: int = 1000
    duration_s: float = 60.0
    """Chaos and production time; the tasks are enqueued evenly over it."""
    workers: int = 4
    """Worker processes at any time: even ones forking, odd ones in-process."""
    seed: int | None = None
    heartbeat_ttl_s: float = 3.0
    heartbeat_interval_s: float = 0.5
    task_sleep_max_s: float = 0.2
    """Each task sleeps a uniform random time up to this."""
    fail_share: float = 0.05
    """Tasks planned to fail: half of them always, half only on their first attempt (the
    queue retries a failure once)."""
    scheduled_share: float = 0.05
    """Tasks enqueued with a delay (0.1 to 2 s), promoted by the scheduler (the workers do
    not promote in the soak)."""
    chaos_interval_s: float = 1.0
    """Mean time between two chaos actions (exponentially distributed)."""
    chaos: tuple[str, ...] = CHAOS
    redis_down_max_s: float | None = None
    """Longest Redis outage; default 1.5 times the heartbeat TTL. Every other outage (the
    first included) lasts longer than the TTL, so that every heartbeat expires meanwhile."""
    settle_timeout_s: float = 300.0
    """After the chaos, how long every task has to finish before the rest count as lost."""
    requeue_live_every_s: float = 0.0
    """Sabotage, to prove the soak detects what it hunts: every this often, requeue the
    running task of a live worker (0: never)."""
    cluster: bool = False
    """Run on a Redis Cluster of three masters (an outage is then that of the master that
    holds the queue's keys)."""
    workdir: Path | None = None


class Soak:
    def __init__(self, settings: SoakSettings) -> None:
        unknown = set(settings.chaos) - set(CHAOS)
        if unknown:
            raise ValueError(f"unknown chaos {sorted(unknown)}; known: {', '.join(CHAOS)}")
        self.settings = settings
        self.seed = settings.seed if settings.seed is not None else random.randrange(2**31)
        self.action_rng = random.Random(self.seed)  # which actions, when: one draw each
        self.chaos_rng = random.Random(self.seed + 1)  # their targets and durations
        self.task_rng = random.Random(self.seed + 2)
        self.workdir = settings.workdir or Path(tempfile.mkdtemp(prefix="blueque-soak-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.redis = Store(self.workdir / "redis", cluster=settings.cluster)
        self.timings = WorkerTimings(settings.heartbeat_interval_s, settings.heartbeat_ttl_s)
        self.pool = WorkerPool(
            url=self.redis.url,
            queue=QUEUE,
            size=settings.workers,
            timings=self.timings,
            log_dir=self.workdir / "logs",
            rng=self.chaos_rng,
        )
        self.client: Client | None = None
        self.scheduler = Scheduler(
            url=self.redis.url, queue=QUEUE, log_dir=self.workdir / "logs", rng=self.chaos_rng
        )
        self.waited_for_scheduler: set[str] = set()
        """Tasks that were due, or held by a dead worker, when a scheduler was started again:
        they waited for it."""
        self.events = EventLog(self.redis.url, QUEUE)
        self.ids: dict[str, int] = {}  # task id -> sequence number
        self.uncertain: set[int] = set()  # sequence numbers of enqueues whose reply was lost
        self.recent: deque[str] = deque(maxlen=200)
        self.sent = 0
        self.done: Counter[str] = Counter()
        self.cancels: Counter[str] = Counter()
        self.outages: list[float] = []
        self.warnings: list[str] = []
        self._down_since: float | None = None
        self._back_at = 0.0
        self._t0 = 0.0
        self._last_produce = 0.0
        self._last_sabotage = 0.0
        self._chaos_began = 0.0
        self._outage_happenings: list[Happening] = []

    @property
    def origin(self) -> float:
        """Unix time of the start: the printed times are seconds since then."""
        return self._t0

    # -- the run ----------------------------------------------------------------------------

    def run(self) -> Summary:
        try:
            self._start()
            chaos_s = self._chaos()
            settle_s = self._settle()
            return self._verdict(chaos_s, settle_s)
        finally:
            self._stop()

    def _start(self) -> None:
        self.redis.start()
        self.client = Client(self.redis.url)
        queue = self.client.get_queue(QUEUE)
        queue.set_config(
            keep_finished=max(10_000, 2 * self.settings.tasks),  # retention must not delete
            retry_max=1,
            retry_delay_s=0.2,
        )
        self.events.start()
        self.scheduler.start()
        self.pool.start_all()
        # The chaos starts once every worker has registered (Python takes a while to start
        # on a loaded machine): an early Redis outage would otherwise find nobody to hurt.
        wait_until(
            lambda: len(queue.workers()) == self.settings.workers,
            60,
            what="every worker to register",
        )
        self._t0 = time.time()

    def _chaos(self) -> float:
        s = self.settings
        began = time.monotonic()
        end = began + s.duration_s
        kinds = list(_WEIGHTS)
        weights = [_WEIGHTS[k] if k in s.chaos else 0 for k in kinds]
        self._chaos_began = began
        next_action = began + self.action_rng.expovariate(1 / s.chaos_interval_s)
        while (now := time.monotonic()) < end:
            self._tick(began)
            if now >= next_action:
                if any(weights):
                    self._act(self.action_rng.choices(kinds, weights)[0])
                next_action = now + self.action_rng.expovariate(1 / s.chaos_interval_s)
            time.sleep(TICK_S)
        return time.monotonic() - began

    def _tick(self, began: float) -> None:
        self.pool.tick()
        if self._down_since is not None and time.monotonic() >= self._back_at:
            self._redis_back()
        self._tend_scheduler()
        if self._down_since is None:
            self._produce(began)
            self._sabotage()

    def _settle(self) -> float:
        """No more chaos: every worker runs, Redis is up, the rest is enqueued; waits until
        every task finished (or the settle timeout)."""
        began = time.monotonic()
        self.pool.settle()
        if self._down_since is not None:
            self._redis_back()
        if not self.scheduler.up:
            self._scheduler_back()
        while self.sent < self.settings.tasks:
            self._produce(self._chaos_began, force=True)
        self._adopt_uncertain()
        unfinished = set(self.ids)
        deadline = began + self.settings.settle_timeout_s
        last_check = 0.0
        while unfinished and time.monotonic() < deadline:
            self.pool.tick()
            self._tend_scheduler()
            if time.monotonic() - last_check >= 0.5:
                last_check = time.monotonic()
                unfinished -= self._finished_among(unfinished)
            time.sleep(TICK_S)
        return time.monotonic() - began

    def _verdict(self, chaos_s: float, settle_s: float) -> Summary:
        # Stop first, so nothing moves while the states are read; busy workers finish.
        self.pool.stop_all()
        self.scheduler.stop_all()
        self.events.stop()
        finals = self._final_tasks()
        executions = self._executions()
        self._kill_leftover_task_processes(executions)
        self._check_counters(finals)
        happenings = [
            *self.pool.happenings,
            *self.events.happenings,
            *self._outage_happenings,
            *self.scheduler.happenings,
        ]
        total_s = time.time() - self._t0
        return summarize(
            finals,
            executions,
            happenings,
            run=self._run_info(chaos_s, settle_s, total_s),
            warnings=[*self.pool.warnings, *self.scheduler.warnings, *self.warnings],
        )

    def _stop(self) -> None:
        with contextlib.suppress(Exception):
            self.pool.stop_all()
        self.scheduler.stop_all()
        self.events.stop()
        if self.client is not None:
            self.client.close()
        self.redis.stop()  # keeps the directories, AOF included

    # -- producing ----------------------------------------------------------------------------

    def _produce(self, began: float, *, force: bool = False) -> None:
        s = self.settings
        now = time.monotonic()
        if not force and now - self._last_produce < PRODUCE_EVERY_S:
            return
        self._last_produce = now
        elapsed = now - began
        target = (
            s.tasks
            if force or elapsed >= s.duration_s
            else math.ceil(s.tasks * elapsed / s.duration_s)
        )
        count = min(target - self.sent, 500)
        if count <= 0:
            return
        queue = self._queue()
        batch: list[dict[str, Any]] = []
        for _ in range(count):
            params = self._params()
            if self.task_rng.random() < s.scheduled_share:
                self._enqueue([params], lambda p: [queue.schedule(p[0], delay=self._delay())])
            else:
                batch.append(params)
        self._enqueue(batch, queue.enqueue_many)

    def _params(self) -> dict[str, Any]:
        s = self.settings
        fail = None
        if self.task_rng.random() < s.fail_share:
            fail = self.task_rng.choice((FAIL_ALWAYS, FAIL_ONCE))
        params = {
            "n": self.sent,
            "sleep_ms": self.task_rng.randint(0, int(s.task_sleep_max_s * 1000)),
            "fail": fail,
        }
        self.sent += 1
        return params

    def _delay(self) -> float:
        return self.task_rng.uniform(0.1, 2.0)

    def _enqueue(
        self, batch: list[dict[str, Any]], call: Callable[[list[dict[str, Any]]], list[str]]
    ) -> None:
        if not batch:
            return
        try:
            ids = call(batch)
        except ConnectionFailedError as exc:
            # Created or not: `_adopt_uncertain` looks for them once Redis is back.
            self.warnings.append(f"enqueue of {len(batch)} task(s) got no answer: {exc}")
            self.uncertain.update(p["n"] for p in batch)
            return
        for task_id, params in zip(ids, batch, strict=True):
            self.ids[task_id] = params["n"]
            self.recent.append(task_id)

    def _adopt_uncertain(self) -> None:
        """Tasks in Redis that the soak did not see enqueued: those of an enqueue whose
        answer was lost are the soak's; any other is reported."""
        queue = self._queue()
        prefix = queue.keys.task("")
        pattern = queue.keys.task(f"{QUEUE}:*")
        found = [
            key[len(prefix) :]
            for key in self._retry(
                lambda: list(queue.client.redis.scan_iter(match=pattern, count=1000))
            )
        ]
        strangers = [task_id for task_id in found if task_id not in self.ids]
        for task in self._retry(lambda: queue.get_tasks(strangers)):
            n = task.parameters.get("n") if isinstance(task.parameters, dict) else None
            if n in self.uncertain:
                self.ids[task.id] = n
            else:
                self.warnings.append(f"task {task.id} in Redis was not enqueued by the soak")

    # -- chaos -------------------------------------------------------------------------------

    def _act(self, kind: str) -> None:
        if kind == "redis":
            if self._down_since is None:
                self._redis_down()
                self.done[kind] += 1
            return
        if kind == "cancel":
            if self._down_since is None and self.recent:
                self._cancel_some()
                self.done[kind] += 1
            return
        if kind in ("scheduler-kill", "scheduler-term"):
            if self.scheduler.up:
                (self.scheduler.kill if kind == "scheduler-kill" else self.scheduler.term)()
                self.done[kind] += 1
            return
        target = self.pool.pick()
        if target is None:
            return
        {"kill": self.pool.kill, "stop": self.pool.stop, "term": self.pool.term}[kind](target)
        self.done[kind] += 1

    def _redis_down(self) -> None:
        """SIGKILL; the restart comes from `_tick`. Outages are in turn longer than the
        heartbeat TTL (the first one: every heartbeat expires meanwhile) and shorter than
        half of it."""
        ttl = self.settings.heartbeat_ttl_s
        longest = self.settings.redis_down_max_s or 1.5 * ttl
        long = self.done["redis"] % 2 == 0
        low, high = (min(ttl + 0.2, longest), longest) if long else (0.2, min(ttl / 2, longest))
        self._down_since = time.time()
        self.redis.down(self._queue().keys.workers)
        self._back_at = time.monotonic() + self.chaos_rng.uniform(low, high)

    def _redis_back(self) -> None:
        self.redis.back()
        assert self._down_since is not None
        self.outages.append(time.time() - self._down_since)
        self._outage_happenings.append(
            Happening(f"Redis down {self.outages[-1]:.1f} s", self._down_since, time.time())
        )
        self._down_since = None

    def _cancel_some(self) -> None:
        queue = self._queue()
        picks = self.chaos_rng.sample(list(self.recent), min(len(self.recent), 3))
        for task_id in picks[: self.chaos_rng.randint(1, len(picks))]:
            try:
                self.cancels[queue.cancel(task_id)] += 1
            except InvalidStateError:
                self.cancels["already finished"] += 1
            except TaskNotFoundError:
                self.cancels["not found"] += 1
            except ConnectionFailedError:
                self.cancels["no answer"] += 1

    def _sabotage(self) -> None:
        every = self.settings.requeue_live_every_s
        if not every or time.monotonic() - self._last_sabotage < every:
            return
        self._last_sabotage = time.monotonic()
        queue = self._queue()
        busy = [w for w in self._retry(queue.workers) if w.task and w.alive]
        if not busy:
            return
        victim = self.chaos_rng.choice(busy)
        at = time.time()
        queue.requeue_worker(victim.id, "requeued alive by the soak's sabotage")
        self.done["requeue alive"] += 1
        holder = next((i.name for i in self.pool.slots if i and i.worker_id == victim.id), None)
        self.pool.happenings.append(Happening("sabotage (requeued while alive)", at, at, holder))

    def _tend_scheduler(self) -> None:
        if self.scheduler.restart_due:
            self._scheduler_back()
        self.scheduler.tick()

    def _scheduler_back(self) -> None:
        """Starts a scheduler again, after reading (when Redis is up) what waited for it:
        scheduled tasks due by now, and the tasks of workers whose heartbeat expired (none
        but the scheduler promotes or reaps here)."""
        queue = self._queue()
        now_ms = time.time() * 1000
        if self._down_since is None:
            due = self._retry(
                lambda: queue.client.redis.zrangebyscore(queue.keys.scheduled, "-inf", now_ms)
            )
            dead = [w for w in self._retry(queue.workers) if not w.alive]
            self.waited_for_scheduler.update(str(i) for i in due)
            self.waited_for_scheduler.update(i for w in dead for i in w.holding)
        self.scheduler.restart()

    # -- reading the outcome -------------------------------------------------------------------

    def _finished_among(self, ids: set[str]) -> set[str]:
        queue = self._queue()
        done: set[str] = set()
        chunk = list(ids)
        for i in range(0, len(chunk), 1000):
            with contextlib.suppress(*REDIS_DOWN):
                done |= {t.id for t in queue.get_tasks(chunk[i : i + 1000]) if t.finished}
        return done

    def _final_tasks(self) -> dict[str, FinalTask]:
        queue = self._queue()
        ids = list(self.ids)
        finals = {task_id: FinalTask(task_id, None) for task_id in ids}
        for i in range(0, len(ids), 1000):
            for t in self._retry(partial(queue.get_tasks, ids[i : i + 1000])):
                finals[t.id] = FinalTask(
                    id=t.id,
                    state=str(t.status),
                    attempts=t.attempts,
                    retries=t.retries,
                    losses=t.losses,
                    error_type=t.error.get("type") if t.error else None,
                    error_message=t.error.get("message") if t.error else None,
                    worker=t.worker,
                )
        return finals

    def _executions(self) -> dict[str, list[Execution]]:
        raw = self.redis.connect()
        ids = list(self.ids)
        runs: dict[str, list[Execution]] = {}
        try:
            for i in range(0, len(ids), 1000):
                pipe = raw.pipeline(transaction=False)
                for task_id in ids[i : i + 1000]:
                    pipe.hvals(runs_key(task_id))
                for task_id, entries in zip(ids[i : i + 1000], pipe.execute(), strict=True):
                    runs[task_id] = [Execution.from_json(task_id, e) for e in entries]
        finally:
            raw.close()
        return runs

    def _kill_leftover_task_processes(self, executions: dict[str, list[Execution]]) -> None:
        """A forked task whose worker was SIGKILLed may outlive it (where the worker cannot
        take it along): such a process still running now is killed by its pid, once /proc
        shows it is a soak task in the session of a worker this soak started (each worker
        leads its own session, and its task processes stay in it)."""
        sessions = {inc.process.pid for inc in self.pool.all}
        for pid in {e.pid for runs in executions.values() for e in runs}:
            if pid and pid_running(pid) and _soak_task_session(pid) in sessions:
                self.warnings.append(f"task process {pid} outlived its worker: killed")
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def _check_counters(self, finals: dict[str, FinalTask]) -> None:
        """The queue's own figures against what the soak saw: not the verdict, but a
        difference is worth a look."""
        queue = self._queue()
        stats = self._retry(queue.stats)
        states = Counter(f.state for f in finals.values())
        expected = {
            "pending": (stats.pending, 0),
            "reserved": (stats.reserved, 0),
            "running": (stats.running, 0),
            "scheduled": (stats.scheduled, 0),
            "total enqueued": (stats.totals.get("enqueued", 0), len(finals)),
            "total completed": (stats.totals.get("completed", 0), states["complete"]),
            "total failed": (stats.totals.get("failed", 0), states["failed"]),
            "total cancelled": (stats.totals.get("cancelled", 0), states["cancelled"]),
        }
        for name, (seen, want) in expected.items():
            if seen != want:
                self.warnings.append(f"queue stats: {name} is {seen}, expected {want}")
        for w in self._retry(queue.workers):
            if w.holding:
                self.warnings.append(f"worker {w.id} still holds {list(w.holding)} after stop")

    def _run_info(self, chaos_s: float, settle_s: float, total_s: float) -> dict[str, Any]:
        s = self.settings
        done = self.done
        long_stops = sum(1 for h in self.pool.happenings if h.what.startswith("SIGSTOP") and h.loss)
        outages = (
            f" (down {min(self.outages):.1f} to {max(self.outages):.1f} s, "
            f"{sum(self.outages):.1f} s in all)"
            if self.outages
            else ""
        )
        cancels = ", ".join(f"{k} {n}" for k, n in sorted(self.cancels.items()))
        down = self.scheduler.outages
        sched_outages = (
            f" (down {min(down):.1f} to {max(down):.1f} s; {len(self.waited_for_scheduler)}"
            " tasks waited for its return)"
            if down
            else ""
        )
        info: dict[str, Any] = {
            "soak": f"{s.tasks} tasks over {s.duration_s:g} s of chaos, {s.workers} workers"
            f" ({(s.workers + 1) // 2} forking, {s.workers // 2} in-process), heartbeat TTL"
            f" {s.heartbeat_ttl_s:g} s, seed {self.seed}",
            "redis": f"{self.redis.description} appendonly yes, appendfsync always; restarts"
            " are SIGKILL + start",
            "chaos": f"SIGKILL {done['kill']}, SIGSTOP {done['stop']} ({long_stops} past the"
            f" TTL), SIGTERM {done['term']}, Redis restarts {done['redis']}{outages},"
            f" cancels {done['cancel']} ({cancels or 'none'}), scheduler SIGKILL"
            f" {done['scheduler-kill']}, SIGTERM {done['scheduler-term']}{sched_outages}",
            "events seen": ", ".join(f"{k} {n}" for k, n in sorted(self.events.counts.items())),
            "time": f"chaos {chaos_s:.1f} s, settle {settle_s:.1f} s, total {total_s:.1f} s",
            "workdir": str(self.workdir),
        }
        if done["requeue alive"]:
            info["sabotage"] = f"requeued a live worker's task {done['requeue alive']} times"
        return info

    # -- helpers -----------------------------------------------------------------------------

    def _queue(self) -> Queue:
        assert self.client is not None
        return self.client.get_queue(QUEUE)

    def _retry(self, call: Callable[[], T], attempts: int = 20) -> T:
        """A read retried while Redis is unreachable (after a restart, for a moment)."""
        for _ in range(attempts - 1):
            try:
                return call()
            except REDIS_DOWN:
                time.sleep(0.25)
        return call()


def _soak_task_session(pid: int) -> int | None:
    """The session of a process running the soak's task (None for any other process)."""
    try:
        if TASK_REF.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes():
            return None
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[3])  # field 6 of proc(5): the session id


class EventLog:
    """Follows the queue's events in a thread, through Redis restarts, for the report: which
    tasks were requeued from which worker and when. Pub/sub drops what is published while
    the subscriber reconnects, so this explains; it never decides."""

    def __init__(self, url: str, queue: str) -> None:
        self.url = url
        self.queue = queue
        self.counts: Counter[str] = Counter()
        self.happenings: list[Happening] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, name="soak-events", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _follow(self) -> None:
        with Client(self.url) as client:
            queue = client.get_queue(self.queue)
            while not self._stop.is_set():
                try:
                    with queue.events() as events:
                        while not self._stop.is_set():
                            event = events.next(timeout=0.5)
                            if event is not None:
                                self._note(event)
                except Exception:  # Redis restarting; this thread must outlive it
                    self._stop.wait(0.1)

    def _note(self, event: dict[str, Any]) -> None:
        kind = str(event.get("event"))
        if kind in ("requeued", "released", "stale", "refused", "worker_removed"):
            self.counts[kind] += 1
        if kind == "requeued":
            at = int(event.get("ts", 0)) / 1000
            self.happenings.append(
                Happening(
                    f"requeued from worker {event.get('worker')}",
                    at,
                    at,
                    task_id=str(event.get("task")),
                )
            )
