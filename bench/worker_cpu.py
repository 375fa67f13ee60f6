"""`python -m bench.worker_cpu [--tasks N] [--rounds R]`: the in-process worker's own CPU per
no-op task, its Python included, in this one process.

Each round enqueues N tasks (without parameters) on its own redis-server, then runs a worker
with the in-process runner in this process until it has done them, and reads the process's
user and system CPU around that run (`resource.getrusage`; the server is another process). A
task is then one `cycle` round trip plus the worker's Python around it. CPU time moves less
with the machine's load than a rate does, but still moves; for counts that do not, run it
under `valgrind --tool=callgrind` at two task counts and divide the difference of the totals.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time

from blueque import Client, Task, Worker, WorkerSettings
from blueque.runners import InProcessRunner
from devtools.redis_servers import RedisServer


def noop(task: Task) -> float:
    return time.time()  # (what the comparison's worker returns)


def one_round(url: str, tasks: int) -> tuple[float, float, float]:
    """(user CPU, system CPU, wall time), in us per task."""
    client = Client(url)
    client.redis.flushall()
    queue = client.get_queue("cpu")
    for done in range(0, tasks, 1000):
        queue.enqueue_many([None] * min(1000, tasks - done))
    settings = WorkerSettings(worker_id="cpu-w", max_tasks=tasks, fork=False)
    worker = Worker(client, queue, noop, InProcessRunner(), settings)
    before, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    worker.run()
    after, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - wall
    client.close()
    per_task = 1e6 / tasks
    return (
        (after.ru_utime - before.ru_utime) * per_task,
        (after.ru_stime - before.ru_stime) * per_task,
        wall * per_task,
    )


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.worker_cpu", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--tasks", type=int, default=20_000)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args(argv)
    print(f"# {os.getloadavg()[0]:.2f} load average (1 min) before", flush=True)
    with RedisServer() as server:
        one_round(server.url, 1000)  # warm-up: imports, the function library, the pool
        rounds = [one_round(server.url, args.tasks) for _ in range(args.rounds)]
    print(f"# {os.getloadavg()[0]:.2f} load average (1 min) after")
    for i, name in enumerate(("user CPU", "system CPU", "wall time")):
        column = [r[i] for r in rounds]
        print(
            f"{name}, us per task: {statistics.median(column):.1f}"
            f" ({min(column):.1f}-{max(column):.1f})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
