"""What every measurement shares: the Redis server, worker subprocesses, and the timings.

Each system module implements `System`; the functions here drive it the same way for all
three, so a difference in the numbers is a difference of the systems, not of the harness.
Every loop is bounded in count and in time (`deadline`), and every process started here is
stopped by its pid (`devtools.processes`).
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import redis

from bench import profiles
from devtools.errors import ProcessError, WaitTimeoutError
from devtools.processes import Process, wait_until

ROOT = Path(__file__).resolve().parent.parent


class System(Protocol):
    """One task queue under test. Worker modes: 'inprocess' (no fork per task) and 'fork'.

    Every system's no-op task returns `time.time()` when it runs: the worker-side start time,
    on the same clock as the producer's, with microsecond resolution.
    """

    name: str

    def enqueue(self, queue: str, n: int) -> float:
        """Enqueues n no-op tasks one call at a time; returns the seconds it took."""
        ...

    def prefill(self, queue: str, n: int) -> tuple[Any, Any]:
        """Enqueues n no-op tasks as fast as it can (not timed); returns handles of the first
        and the last."""
        ...

    def started_at(self, handle: Any) -> float | None:
        """The time the task's function ran, or None while it has not finished."""
        ...

    def latency_sample(self, queue: str) -> tuple[float, float, float]:
        """Enqueues one task and waits for it the system's own way (its blocking wait);
        returns (enqueue call time, function start time, time the wait returned)."""
        ...

    def worker_command(self, mode: str, queue: str) -> list[str]: ...

    def close(self) -> None: ...


class RedisCpu:
    """CPU seconds the redis-server has used so far (user + system, from INFO cpu): what a
    measurement cost the server, whatever commands or scripts it ran."""

    def __init__(self, url: str) -> None:
        self._redis = redis.Redis.from_url(url)

    def __call__(self) -> float:
        info = self._redis.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

    def close(self) -> None:
        self._redis.close()


RUSAGE_ENV = "BENCH_RUSAGE_FILE"


@contextlib.contextmanager
def report_rusage() -> Iterator[None]:
    """In a worker subprocess: writes the CPU time and page faults it and its reaped
    children used while working (imports excluded) to the file the harness named."""
    path = os.environ.get(RUSAGE_ENV)
    before = _rusage()
    try:
        yield
    finally:
        if path:
            after = _rusage()
            Path(path).write_text(json.dumps({k: after[k] - before[k] for k in after}))


def _rusage() -> dict[str, float]:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "cpu_s": own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime,
        "sys_s": own.ru_stime + kids.ru_stime,
        "faults": float(own.ru_minflt + kids.ru_minflt),
        "parent_sys_s": own.ru_stime,
        "parent_faults": float(own.ru_minflt),
    }


@contextlib.contextmanager
def worker_process(
    command: Sequence[str],
    profile_to: Path | None = None,
    profile_native: bool = False,
    rusage_to: Path | None = None,
) -> Iterator[Process]:
    """A worker subprocess, stopped by pid (SIGTERM, then SIGKILL); its output goes to a log
    file that is removed once the worker has stopped without an error in the block.

    With `profile_to`, py-spy records it (and its forked children) while the block runs; with
    `rusage_to`, it writes its resource usage there when it stops."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if rusage_to is not None:
        env[RUSAGE_ENV] = str(rusage_to)
    fd, log_name = tempfile.mkstemp(prefix="bench-worker-", suffix=".log")
    os.close(fd)
    proc = Process.start("bench worker", command, log_file=Path(log_name), cwd=ROOT, env=env)
    try:
        if profile_to is None:
            yield proc
        else:
            with profiles.recording(
                proc.pid, profile_to, native=profile_native, subprocesses=True, rate_hz=1000
            ):
                yield proc
    finally:
        proc.stop(grace_s=5.0)
    proc.log_file.unlink()


# -- the measurements ------------------------------------------------------------------------


def enqueue_rate(system: System, queue: str, n: int, cpu: RedisCpu) -> tuple[float, float, float]:
    """Tasks per second, one producer, one enqueue call per task, no worker running; and
    the server's and the producer's CPU microseconds per task."""
    cpu_before, client_before = cpu(), time.process_time()
    rate = n / system.enqueue(queue, n)
    client_us = (time.process_time() - client_before) / n * 1e6
    return rate, (cpu() - cpu_before) / n * 1e6, client_us


@dataclass(frozen=True)
class WorkerRun:
    tasks_per_s: float
    redis_cpu_us: float  # the server's CPU per task
    worker_cpu_ms: float  # the worker's CPU per task (user + system), children included
    worker_sys_ms: float  # of which in the kernel
    worker_faults: float  # minor page faults per task, children included
    parent_sys_ms: float  # kernel time of the worker process alone (no children)
    parent_faults: float  # page faults of the worker process alone


def worker_rate(
    system: System,
    mode: str,
    queue: str,
    n: int,
    timeout_s: float,
    cpu: RedisCpu,
    profile_to: Path | None = None,
    profile_native: bool = False,
) -> WorkerRun:
    """No-op tasks per second through one worker: n tasks are queued before it starts, and
    the rate is taken between the first and the last task's start (n - 1 full cycles), so
    the worker's start-up is not counted. Also what each task cost the server and the
    worker (the worker's figures include its idle moments, a few per cent here)."""
    first, last = system.prefill(queue, n)
    deadline = time.monotonic() + timeout_s
    cpu_before = cpu()
    fd, name = tempfile.mkstemp(prefix="bench-rusage-", suffix=".json")
    os.close(fd)
    rusage_file = Path(name)
    command = system.worker_command(mode, queue)
    with worker_process(command, profile_to, profile_native, rusage_file) as proc:

        def last_started() -> float | None:
            _alive_or_raise(proc)
            return system.started_at(last)

        t_last = wait_until(
            last_started,
            deadline - time.monotonic(),
            what=f"{system.name} {mode} worker to run {n} tasks",
        )
        t_first = system.started_at(first)
        cpu_us = (cpu() - cpu_before) / n * 1e6
    assert t_first is not None
    try:
        used = json.loads(rusage_file.read_text() or "{}")
    finally:
        rusage_file.unlink()
    nan = float("nan")
    return WorkerRun(
        (n - 1) / (t_last - t_first),
        cpu_us,
        used.get("cpu_s", nan) / n * 1000,
        used.get("sys_s", nan) / n * 1000,
        used.get("faults", nan) / n,
        used.get("parent_sys_s", nan) / n * 1000,
        used.get("parent_faults", nan) / n,
    )


def _alive_or_raise(proc: Process) -> None:
    status = proc.poll()
    if status is not None:
        raise ProcessError(f"worker exited early with status {status}:\n{proc.tail()}")


@dataclass(frozen=True)
class Latency:
    to_start_p50_ms: float
    to_start_p99_ms: float
    to_done_p50_ms: float
    to_done_p99_ms: float
    samples: int


def latency(
    system: System,
    mode: str,
    queue: str,
    samples: int,
    warmup: int,
    timeout_s: float,
    sample: Callable[[str], tuple[float, float, float]] | None = None,
) -> Latency:
    """Enqueue-to-start and enqueue-to-done with an idle worker, one task at a time
    (`sample`: another way than the system's own `latency_sample` to take one)."""
    take = sample or system.latency_sample
    deadline = time.monotonic() + timeout_s
    to_start: list[float] = []
    to_done: list[float] = []
    with worker_process(system.worker_command(mode, queue)) as proc:
        for i in range(warmup + samples):
            _alive_or_raise(proc)
            if time.monotonic() > deadline:
                raise WaitTimeoutError(f"{system.name} latency: {i} samples in {timeout_s} s")
            t0, t_start, t_done = take(queue)
            if i >= warmup:
                to_start.append((t_start - t0) * 1000)
                to_done.append((t_done - t0) * 1000)
            time.sleep(0.002)  # the worker is idle (back in its blocking claim) again
    return Latency(
        percentile(to_start, 50),
        percentile(to_start, 99),
        percentile(to_done, 50),
        percentile(to_done, 99),
        samples,
    )


def percentile(values: Sequence[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = (len(ordered) - 1) * pct / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def machine_load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} CPUs"
