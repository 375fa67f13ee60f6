"""`python -m bench.server_cost [--calls N] [--rounds R]`: the server's time per script call.

For each transition on the hot path (enqueue, enqueue_many per task, begin, finish, stats,
heartbeat) it runs N calls alone on a fresh redis-server and reads Redis's own accounting:
`INFO commandstats` (microseconds spent in the FCALL or EVALSHA command, the script's Redis
calls included) and the server's CPU time per call (`INFO cpu`, reading and writing the
socket included; for begin and finish also the claim and the bookkeeping around them), once
with the function library and once with scripts (`EVALSHA`),
alternating, R rounds; prints the median and the range. The client's speed does not enter
these figures, so they hold on a busy machine better than any rate does (the CPU figures
best: commandstats counts wall time).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable

from blueque import Client, Queue
from blueque.records import TOTALS
from devtools.redis_servers import RedisServer

MODES = ("scripts", "functions")
BATCH = 1000


def measure(url: str, mode: str, calls: int) -> dict[str, float]:
    """Microseconds of server time per call of each script, in one mode."""
    with Client(url) as client:
        client.redis.flushall()
        client.scripting.functions = mode == "functions"
        command = "fcall" if mode == "functions" else "evalsha"
        queue = client.get_queue("cost")
        t = queue.transitions
        t.heartbeat("w", 600_000, {})
        queue.enqueue(None)  # loads the library or the scripts: not measured
        # A queue that has seen every kind of transition has every counter in its stats hash.
        for counter in ("running", "live", *TOTALS):
            client.redis.hsetnx(queue.keys.stats, counter, 0)
        out: dict[str, float] = {}

        def phase(name: str, action: Callable[[], None], per: int = 1) -> None:
            client.redis.config_resetstat()
            cpu_before = server_cpu_s(client)
            action()
            cpu_s = server_cpu_s(client) - cpu_before
            stats = client.redis.info("commandstats")[f"cmdstat_{command}"]
            out[name] = float(stats["usec"]) / stats["calls"] / per
            out[f"{name}, CPU"] = cpu_s * 1e6 / stats["calls"] / per

        phase("enqueue", repeat(calls, lambda: queue.enqueue(None)))
        phase(
            "enqueue_many (per task)",
            repeat(max(1, calls // 100), lambda: queue.enqueue_many([None] * BATCH)),
            BATCH,
        )
        _drain(queue)
        queue.enqueue_many([None] * calls)
        begun: list[tuple[str, int]] = []

        def begin_all() -> None:
            for _ in range(calls):
                task_id = t.claim("w", 1)
                assert task_id is not None
                b = t.begin("w", task_id, 1)
                begun.append((b.task_id, b.attempt))
                _park(queue, b.task_id)

        phase("begin", begin_all)
        tasks = list(begun)

        def finish_all() -> None:
            for task_id, attempt in tasks:
                _unpark(queue, task_id)
                t.finish("w", task_id, attempt, "complete", "1")

        phase("finish", finish_all)
        phase("stats", repeat(calls, queue.stats))
        phase("heartbeat", repeat(calls, lambda: t.heartbeat("w", 600_000, {"pid": 1})))
        return out


def server_cpu_s(client: Client) -> float:
    """The server process's CPU time so far (user + system): its time per call whatever
    else the machine runs, the network's share included (commandstats' figure is wall time
    inside the command, which a busy machine stretches)."""
    info = client.redis.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def repeat(n: int, call: Callable[[], object]) -> Callable[[], None]:
    def run() -> None:
        for _ in range(n):
            call()

    return run


def _drain(queue: Queue) -> None:
    queue.client.redis.delete(queue.keys.pending)


def _park(queue: Queue, task_id: str) -> None:
    """Moves a begun task out of the worker's list, so that the next claim is allowed (a
    worker holds one task at a time); `_unpark` puts it back before its finish."""
    r = queue.client.redis
    r.lrem(queue.keys.worker_tasks("w"), 1, task_id)
    r.rpush(queue.keys.prefix + "parked", task_id)


def _unpark(queue: Queue, task_id: str) -> None:
    r = queue.client.redis
    r.lrem(queue.keys.prefix + "parked", 1, task_id)
    r.rpush(queue.keys.worker_tasks("w"), task_id)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.server_cost", description=__doc__)
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    results: dict[tuple[str, str], list[float]] = {}
    with RedisServer() as server:
        for _ in range(args.rounds):
            for mode in MODES:
                for name, us in measure(server.url, mode, args.calls).items():
                    results.setdefault((name, mode), []).append(us)
    names = list(dict.fromkeys(name for name, _ in results))
    print("| script | scripts (EVALSHA), us/call | functions (FCALL), us/call | saved |")
    print("|---|---:|---:|---:|")
    for name in names:
        cells = []
        medians = []
        for mode in MODES:
            values = results[(name, mode)]
            medians.append(statistics.median(values))
            cells.append(f"{medians[-1]:.1f} ({min(values):.1f}-{max(values):.1f})")
        print(f"| {name} | {cells[0]} | {cells[1]} | {1 - medians[1] / medians[0]:.0%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
