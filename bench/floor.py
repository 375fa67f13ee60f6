"""`python -m bench.floor [--calls N] [--rounds R]`: what one round trip costs on this
machine, and what Blueque's Python adds to it.

On its own redis-server, in this one process, alternating, R rounds (medians and ranges):

- **LPUSH, redis-py**: one `LPUSH` of a 100-byte message per call, through redis-py's
  `execute_command`: a bare round trip, which is what a Huey enqueue sends (Huey adds the
  pickling of its message).
- **enqueue, Blueque**: `Queue.enqueue(None)`.
- **cycle, bare**: the worker's `cycle` script (finish a task, claim and begin the next)
  packed by hiredis and sent on a plain socket, its reply read by hiredis: the server's work
  of a worker's task with nothing around it.
- **cycle, Blueque**: the same script through `Transitions.finish_claim_begin` (the steps,
  the runner, redis-py's connection): the same server work, so the difference to the bare
  row is what the library's client side costs per task (no task function, no task object).

For each: calls per second, the client's CPU per call (`time.process_time`) and the server's
(`INFO cpu`, the network stack's share included). A call's time is about the two CPUs added
up: the client waits for the reply, the server for the next call.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import time
from collections.abc import Callable
from urllib.parse import urlparse

import hiredis
import redis

from blueque import Client, Queue
from blueque.protocol import Begun
from blueque.scripts import function_name
from devtools.redis_servers import RedisServer

MESSAGE = "x" * 100
WORKER = "floor-w"


def measure(url: str, calls: int) -> dict[str, tuple[float, float, float]]:
    """name -> (calls/s, client CPU us per call, server CPU us per call)."""
    plain = redis.Redis.from_url(url)
    client = Client(url)
    queue = client.get_queue("floor")
    t = queue.transitions
    out: dict[str, tuple[float, float, float]] = {}

    def timed(name: str, n: int, run: Callable[[], object]) -> None:
        cpu0, wall0, proc0 = server_cpu(plain), time.perf_counter(), time.process_time()
        run()
        wall, proc = time.perf_counter() - wall0, time.process_time() - proc0
        out[name] = (n / wall, proc / n * 1e6, (server_cpu(plain) - cpu0) / n * 1e6)

    plain.flushall()
    timed("LPUSH, redis-py", calls, lambda: [plain.lpush("floor:l", MESSAGE) for _ in range(calls)])
    timed("enqueue, Blueque", calls, lambda: [queue.enqueue(None) for _ in range(calls)])

    plain.flushall()
    queue.enqueue_many([None] * (2 * calls + 2))
    t.heartbeat(WORKER, 600_000, {})
    begun = [t.claim_and_begin(WORKER, os.getpid(), 1.0)]

    def blueque_cycle() -> None:
        for _ in range(calls):
            b = begun[0]
            state, begun[0] = t.finish_claim_begin(
                WORKER, b.task_id, b.attempt, "complete", "1", os.getpid()
            )
            assert state == "complete" and begun[0].status == "ok", (state, begun[0])

    timed("cycle, Blueque", calls, blueque_cycle)
    timed("cycle, bare", calls, lambda: bare_cycle(url, queue, begun, calls))
    client.close()
    plain.close()
    return out


def bare_cycle(url: str, queue: Queue, begun: list[Begun], calls: int) -> None:
    """The same cycles, with hiredis on a plain socket: no client library around them."""
    k = queue.keys
    address = urlparse(url)
    sock = socket.create_connection((address.hostname, address.port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    reader = hiredis.Reader(encoding="utf-8")
    fixed = [k.worker_tasks(WORKER), k.worker(WORKER), k.stats, k.events]
    after = [k.complete, k.failed, k.cancelled, k.config, k.scheduled, k.draining, k.pending]
    name, pid = function_name("cycle"), os.getpid()
    task_id, attempt = begun[0].task_id, begun[0].attempt
    for _ in range(calls):
        keys = [*fixed, k.task(task_id), *after, k.workers]
        command: tuple[str | int, ...] = ("FCALL", name, len(keys), *keys)
        command += (WORKER, task_id, attempt, "complete", "1", pid)
        sock.sendall(hiredis.pack_command(command))  # type: ignore[arg-type]
        reply = reader.gets()
        while reply is False:
            reader.feed(sock.recv(65536))
            reply = reader.gets()
        state, next_begun = reply
        assert state == "complete" and next_begun[0] == "ok", reply
        attempt, task_id = next_begun[1], next_begun[3]
    sock.close()


def server_cpu(r: redis.Redis) -> float:
    info = r.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=5000)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args(argv)
    rows: dict[str, list[tuple[float, float, float]]] = {}
    print(f"# {os.getloadavg()[0]:.2f} load average (1 min) before", flush=True)
    with RedisServer() as server:
        for _ in range(args.rounds):
            for name, values in measure(server.url, args.calls).items():
                rows.setdefault(name, []).append(values)
    print(f"# {os.getloadavg()[0]:.2f} load average (1 min) after")
    print("| call | per second | client CPU, us per call | server CPU, us per call |")
    print("|---|---:|---:|---:|")
    for name, measured in rows.items():
        cells = []
        for i, fmt in enumerate(("{:,.0f}", "{:.0f}", "{:.0f}")):
            column = [row[i] for row in measured]
            med, lo, hi = statistics.median(column), min(column), max(column)
            cells.append(f"{fmt.format(med)} ({fmt.format(lo)}-{fmt.format(hi)})")
        print(f"| {name} | {' | '.join(cells)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
