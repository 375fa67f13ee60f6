"""`python -m bench.scale [pending] [memory] [workers] [many] [--out docs/plots]`: how the
costs grow, on a redis-server of its own.

- **pending**: the same calls (enqueue, a worker's cycle, stats, info, observe) with 10 to
  1,000,000 tasks waiting: wall time and Redis CPU per call, and Redis memory per pending
  task. O(1) per call means flat lines.
- **memory**: Redis memory per pending and per finished task, Blueque against python-rq and
  Huey (`used_memory` before and after, divided by the tasks).
- **workers**: 1 to 8 in-process worker processes on one Redis: tasks/s, the CPU each task
  costs the workers and the server, and the round-trip ceiling `redis-benchmark` measures on
  the same server with as many clients (PING), so the share of it the workers reach.
- **many**: `enqueue_many` by batch size: tasks/s and CPU per task, against what
  `redis-benchmark` gets from the same server for pipelined RPUSH and HSET (the two writes
  every task needs).

Each prints a Markdown table and writes `<name>.json` and `<name>.svg` into `--out`.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from bench import harness, svg
from bench.blueque_system import BluequeSystem
from bench.harness import System
from bench.huey_system import HueySystem
from bench.rq_system import RqSystem
from blueque import Client
from devtools.processes import wait_until
from devtools.redis_servers import RedisServer, require

ROOT = Path(__file__).resolve().parent.parent
SIZES = (10, 1_000, 10_000, 100_000, 1_000_000)
WORKER_COUNTS = (1, 2, 3, 4, 6, 8)
BATCHES = (1, 10, 100, 1000, 10_000)


class Probe:
    """Server-side figures of one redis-server: CPU seconds so far, memory in use."""

    def __init__(self, url: str) -> None:
        self.redis = redis.Redis.from_url(url)

    def cpu_s(self) -> float:
        info = self.redis.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

    def memory(self) -> int:
        return int(self.redis.info("memory")["used_memory"])

    def close(self) -> None:
        self.redis.close()


def timed(call: Callable[[], object], n: int, probe: Probe) -> tuple[float, float]:
    """Median wall microseconds per call over n calls, and the server's CPU us per call."""
    times: list[float] = []
    cpu = probe.cpu_s()
    for _ in range(n):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1e6)
    return statistics.median(times), (probe.cpu_s() - cpu) / n * 1e6


# -- pending -----------------------------------------------------------------------------


def pending(url: str, sizes: tuple[int, ...], samples: int) -> dict[str, Any]:
    probe = Probe(url)
    client = Client(url)
    try:
        client.redis.flushall()
        queue = client.get_queue("scale.pending")
        t = queue.transitions
        t.heartbeat("w", 3_600_000, {})
        queue.enqueue(None)  # loads the library
        t.finish("w", *_begun(t), "complete", "1")
        rows: list[dict[str, float]] = []
        last_size, last_memory = 0, probe.memory()
        for size in sizes:
            missing = size - queue.stats().pending
            while missing > 0:
                batch = min(1000, missing)
                queue.enqueue_many([None] * batch)
                missing -= batch
            row: dict[str, float] = {"pending": size}
            # What the tasks added since the last size took: the fixed costs (the library,
            # the queue's other keys) fall out, and so does the allocator's noise at 10.
            memory_now = probe.memory()
            row["bytes_per_pending"] = (memory_now - last_memory) / (size - last_size)
            last_size, last_memory = size, memory_now
            begun = [t.claim_and_begin("w", 1, 1.0)]

            def cycle(begun: list[Any] = begun) -> None:  # a worker's finish, claim, begin
                b = begun[0]
                state, begun[0] = t.finish_claim_begin(
                    "w", b.task_id, b.attempt, "complete", "1", 1
                )
                assert state == "complete" and begun[0].status == "ok"

            for name, call in (
                ("enqueue", lambda: queue.enqueue(None)),
                ("worker cycle", cycle),
                ("stats", queue.stats),
                ("info", client.info),
                ("observe", queue.observe),
            ):
                for _ in range(10):  # warm: connections, caches, the server's own
                    call()
                wall, cpu = timed(call, samples, probe)
                row[f"{name} us"], row[f"{name} redis cpu us"] = wall, cpu
            b = begun[0]
            t.finish("w", b.task_id, b.attempt, "complete", "1")
            rows.append(row)
            print(
                f"  {size:>9,} pending: "
                + ", ".join(f"{k} {v:,.1f}" for k, v in row.items() if k != "pending"),
                flush=True,
            )
        return {"rows": rows, "samples": samples}
    finally:
        client.close()
        probe.close()


def _begun(t: Any) -> tuple[str, int]:
    b = t.claim_and_begin("w", 1, 1.0)
    return b.task_id, b.attempt


def pending_report(doc: dict[str, Any], out: Path) -> str:
    rows = doc["rows"]
    ops = ("enqueue", "worker cycle", "stats", "info", "observe")
    lines = [
        "| pending | "
        + " | ".join(f"{op}, us (Redis CPU us)" for op in ops)
        + " | Redis memory per task added |",
        "|---:|" + "---:|" * (len(ops) + 1),
    ]
    for r in rows:
        cells = [f"{r[f'{op} us']:.0f} ({r[f'{op} redis cpu us']:.0f})" for op in ops]
        memory = f"{r['bytes_per_pending']:.0f} B" if r["pending"] >= 1000 else "\u2013"
        lines.append(f"| {r['pending']:,.0f} | " + " | ".join(cells) + f" | {memory} |")
    chart = svg.line_chart(
        "Calls with 10 to 1,000,000 tasks pending (median wall time)",
        svg.Axis("tasks pending", log=True),
        svg.Axis("microseconds per call", lowest=0),
        [svg.Series(op, [(r["pending"], r[f"{op} us"]) for r in rows]) for op in ops],
        note=f"median of {doc['samples']} calls each; one producer and one simulated worker",
    )
    (out / "scale-pending.svg").write_text(chart)
    return "\n".join(lines)


# -- memory --------------------------------------------------------------------------------


def memory(url: str, n_pending: int, n_finished: int, timeout_s: float) -> dict[str, Any]:
    probe = Probe(url)
    cpu = harness.RedisCpu(url)
    rows: dict[str, dict[str, float]] = {}
    try:
        for name, factory in (
            ("blueque", BluequeSystem),
            ("huey", HueySystem),
            ("rq", RqSystem),
        ):
            system: System = factory(url)
            try:
                probe.redis.flushall()
                base = probe.memory()
                system.prefill(f"mem.pending.{name}", n_pending)
                per_pending = (probe.memory() - base) / n_pending
                probe.redis.flushall()
                base = probe.memory()
                harness.worker_rate(
                    system, "inprocess", f"mem.done.{name}", n_finished, timeout_s, cpu
                )
                wait_until(
                    lambda: probe.redis.info("clients")["connected_clients"] <= 4,
                    10,
                    what="the worker to leave",
                )
                per_finished = (probe.memory() - base) / n_finished
            finally:
                system.close()
            rows[name] = {"pending": per_pending, "finished": per_finished}
            print(f"  {name}: {per_pending:.0f} B per pending, {per_finished:.0f} B per finished")
        return {"rows": rows, "n_pending": n_pending, "n_finished": n_finished}
    finally:
        cpu.close()
        probe.close()


def memory_report(doc: dict[str, Any]) -> str:
    titles = {"blueque": "Blueque", "huey": "Huey", "rq": "python-rq"}
    lines = [
        "| Redis memory per task | " + " | ".join(titles.values()) + " |",
        "|---|---:|---:|---:|",
    ]
    for kind in ("pending", "finished"):
        cells = [f"{doc['rows'][s][kind]:.0f} B" for s in titles]
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# -- workers -------------------------------------------------------------------------------


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime, stime in clock ticks (USER_HZ)


def redis_benchmark(port: int, *args: str) -> dict[str, float]:
    """requests/s of each test `redis-benchmark` ran (its --csv output)."""
    cmd = [require("redis-benchmark"), "-h", "127.0.0.1", "-p", str(port), "--csv", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=True)
    rates: dict[str, float] = {}
    for line in done.stdout.splitlines():
        match = re.match(r'"([^"]+)","([\d.]+)"', line)
        if match:
            rates[match[1]] = float(match[2])
    return rates


def workers(server: RedisServer, counts: tuple[int, ...], per_worker: int) -> dict[str, Any]:
    url = server.url
    probe = Probe(url)
    client = Client(url)
    system = BluequeSystem(url)
    rows: list[dict[str, float]] = []
    try:
        for n in counts:
            probe.redis.flushall()
            queue = client.get_queue(f"scale.workers.{n}")
            total = max(4000, per_worker * n)
            warm, most = total // 10, total * 7 // 10
            for done in range(0, total, 1000):
                queue.enqueue_many([None] * min(1000, total - done))
            procs = []
            try:
                for _ in range(n):
                    procs.append(
                        harness.worker_process(system.worker_command("inprocess", queue.name))
                    )
                running = [p.__enter__() for p in procs]

                def completed(queue: Any = queue) -> int:
                    return int(queue.stats().totals["completed"])  # (the index is trimmed)

                def reached(count: int, queue: Any = queue) -> bool:
                    return completed(queue) >= count

                wait_until(functools.partial(reached, warm), 120, what=f"{n} workers warm")
                t1, c1 = time.perf_counter(), completed()
                r1, w1 = probe.cpu_s(), sum(proc_cpu_s(p.pid) for p in running)
                wait_until(functools.partial(reached, most), 300, what=f"{n} workers")
                t2, c2 = time.perf_counter(), completed()
                r2, w2 = probe.cpu_s(), sum(proc_cpu_s(p.pid) for p in running)
            finally:
                for p in reversed(procs):
                    p.__exit__(None, None, None)
            done_n = c2 - c1
            ceiling = redis_benchmark(server.port, "-c", str(n), "-n", "100000", "-t", "ping_mbulk")
            ping = ceiling.get("PING_MBULK", float("nan"))
            row = {
                "workers": n,
                "tasks_per_s": done_n / (t2 - t1),
                "worker_cpu_us": (w2 - w1) / done_n * 1e6,
                "redis_cpu_us": (r2 - r1) / done_n * 1e6,
                "redis_busy": (r2 - r1) / (t2 - t1),
                "ping_per_s": ping,
            }
            rows.append(row)
            print("  " + ", ".join(f"{k} {v:,.2f}" for k, v in row.items()), flush=True)
        return {"rows": rows}
    finally:
        system.close()
        client.close()
        probe.close()


def workers_report(doc: dict[str, Any], out: Path) -> str:
    rows = doc["rows"]
    lines = [
        "| workers | tasks/s | share of the PING ceiling | worker CPU per task | Redis CPU per task"
        " | Redis busy | redis-benchmark PING, as many clients |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['workers']:.0f} | {r['tasks_per_s']:,.0f}"
            f" | {r['tasks_per_s'] / r['ping_per_s']:.1%}"
            f" | {r['worker_cpu_us']:.0f} us | {r['redis_cpu_us']:.0f} us"
            f" | {r['redis_busy']:.0%} of a CPU | {r['ping_per_s']:,.0f}/s |"
        )
    chart = svg.line_chart(
        "In-process workers on one Redis (2 CPUs)",
        svg.Axis("worker processes", ticks=[r["workers"] for r in rows]),
        svg.Axis("tasks per second", lowest=0),
        [svg.Series("Blueque, no-op tasks", [(r["workers"], r["tasks_per_s"]) for r in rows])],
        note="the workers, Redis and this script share the machine's 2 CPUs",
    )
    (out / "scale-workers.svg").write_text(chart)
    return "\n".join(lines)


# -- enqueue_many ----------------------------------------------------------------------------


def many(server: RedisServer, batches: tuple[int, ...], tasks: int) -> dict[str, Any]:
    url = server.url
    probe = Probe(url)
    client = Client(url)
    rows: list[dict[str, float]] = []
    try:
        for batch in batches:
            probe.redis.flushall()
            queue = client.get_queue(f"scale.many.{batch}")
            queue.enqueue(None)
            n = max(tasks - tasks % batch, batch)
            params = [None] * batch
            cpu, client_cpu, start = probe.cpu_s(), time.process_time(), time.perf_counter()
            for _ in range(n // batch):
                queue.enqueue_many(params)
            elapsed = time.perf_counter() - start
            rows.append(
                {
                    "batch": batch,
                    "tasks_per_s": n / elapsed,
                    "redis_cpu_us": (probe.cpu_s() - cpu) / n * 1e6,
                    "client_cpu_us": (time.process_time() - client_cpu) / n * 1e6,
                }
            )
            print("  " + ", ".join(f"{k} {v:,.2f}" for k, v in rows[-1].items()), flush=True)
        probe.redis.flushall()
        ceilings = redis_benchmark(
            server.port, "-c", "1", "-n", "1000000", "-P", "1000", "-t", "rpush,hset"
        )
        return {"rows": rows, "ceilings": ceilings, "tasks": tasks}
    finally:
        client.close()
        probe.close()


def many_report(doc: dict[str, Any], out: Path) -> str:
    rows, ceilings = doc["rows"], doc["ceilings"]
    lines = [
        "| batch | tasks/s | Redis CPU per task | producer CPU per task |",
        "|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['batch']:,.0f} | {r['tasks_per_s']:,.0f} | {r['redis_cpu_us']:.1f} us"
            f" | {r['client_cpu_us']:.1f} us |"
        )
    lines.append("")
    lines.append(
        "redis-benchmark on the same server, one client, pipelines of 1,000: "
        + ", ".join(f"{name} {rate:,.0f}/s" for name, rate in ceilings.items())
    )
    chart = svg.line_chart(
        "enqueue_many by batch size, one producer",
        svg.Axis("tasks per call", log=True),
        svg.Axis("tasks per second", log=True),
        [svg.Series("Blueque enqueue_many", [(r["batch"], r["tasks_per_s"]) for r in rows])],
        [svg.Reference(f"{k}, pipelined", v) for k, v in ceilings.items()],
        note="each task: a hash of 6 fields, a list entry, an event, counters, in one script;"
        " dotted: redis-benchmark, pipelines of 1,000",
    )
    (out / "scale-many.svg").write_text(chart)
    return "\n".join(lines)


# -- the command ---------------------------------------------------------------------------

REPORTS: dict[str, Callable[[dict[str, Any], Path], str]] = {
    "pending": pending_report,
    "memory": lambda doc, _: memory_report(doc),
    "workers": workers_report,
    "many": many_report,
}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__)
    p.add_argument("what", nargs="*", default=["pending", "memory", "workers", "many"])
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "plots")
    p.add_argument("--max-pending", type=int, default=SIZES[-1])
    p.add_argument("--samples", type=int, default=500, help="calls timed per operation")
    p.add_argument("--quick", action="store_true", help="small counts (a smoke run)")
    p.add_argument(
        "--replot", action="store_true", help="only redraw tables and charts from --out's JSON"
    )
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.replot:
        for what in args.what:
            doc = json.loads((args.out / f"scale-{what}.json").read_text())
            print(f"\n## {what}\n\n{REPORTS[what](doc, args.out)}\n\n# {doc['load']}")
        return 0
    sizes = tuple(s for s in SIZES if s <= args.max_pending)
    print(f"# {harness.machine_load()}")
    with RedisServer() as server:
        for what in args.what:
            print(f"\n## {what}", flush=True)
            if what == "pending":
                doc = pending(server.url, sizes, 50 if args.quick else args.samples)
                text = pending_report(doc, args.out)
            elif what == "memory":
                n_pending, n_finished = (2000, 500) if args.quick else (50_000, 10_000)
                doc = memory(server.url, n_pending, n_finished, 600)
                text = memory_report(doc)
            elif what == "workers":
                counts = (1, 2) if args.quick else WORKER_COUNTS
                doc = workers(server, counts, 500 if args.quick else 2500)
                text = workers_report(doc, args.out)
            elif what == "many":
                doc = many(
                    server, BATCHES[:3] if args.quick else BATCHES, 2000 if args.quick else 100_000
                )
                text = many_report(doc, args.out)
            else:
                p.error(f"unknown measurement {what!r}")
            doc["load"] = harness.machine_load()
            (args.out / f"scale-{what}.json").write_text(json.dumps(doc, indent=2))
            print(f"\n{text}\n\n# {doc['load']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
