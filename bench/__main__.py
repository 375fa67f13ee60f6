"""`python -m bench [--quick] [--tasks N] [--rounds R] [--json out.json] [--profile DIR]`

Runs every measurement for every system on one fresh redis-server, in rounds; within a round
the systems take turns per measurement (in a rotated order), so slow drift of the machine's
load hits them alike. Prints the absolute numbers and the ratios against issue 4's targets.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from bench import harness, profiles, report
from bench.blueque_system import BluequeSystem
from bench.harness import System
from bench.huey_system import HueySystem
from bench.rq_system import RqSystem
from devtools.redis_servers import RedisServer

KINDS = ("enqueue", "enqueue_many", "inprocess", "fork", "latency", "latency_held")
METRICS = {
    "enqueue": ("enqueue", "redis_cpu_us.enqueue"),
    "enqueue_many": ("enqueue_many", "redis_cpu_us.enqueue_many"),
    "inprocess": (
        "worker.inprocess",
        "redis_cpu_us.worker.inprocess",
        "worker_cpu_ms.inprocess",
        "worker_sys_ms.inprocess",
        "worker_faults.inprocess",
        "parent_sys_ms.inprocess",
        "parent_faults.inprocess",
    ),
    "fork": (
        "worker.fork",
        "redis_cpu_us.worker.fork",
        "worker_cpu_ms.fork",
        "worker_sys_ms.fork",
        "worker_faults.fork",
        "parent_sys_ms.fork",
        "parent_faults.fork",
    ),
    "latency": tuple(
        f"latency.{f}" for f in harness.Latency.__dataclass_fields__ if f != "samples"
    ),
    "latency_held": tuple(
        f"latency_held.{f}" for f in harness.Latency.__dataclass_fields__ if f != "samples"
    ),
}
PRODUCER_KINDS = ("enqueue", "enqueue_many", "latency")
WORKER_MODES = {
    "blueque": ("inprocess", "fork"),
    "rq": ("inprocess", "fork"),
    "huey": ("inprocess",),
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[1])
    p.add_argument("--quick", action="store_true", help="small counts, one round (a smoke run)")
    p.add_argument("--tasks", type=int, help="tasks per enqueue / in-process worker run")
    p.add_argument("--fork-tasks", type=int, help="tasks per forking worker run")
    p.add_argument("--many", type=int, help="tasks enqueued with enqueue_many")
    p.add_argument("--batch", type=int, default=1000, help="enqueue_many batch size")
    p.add_argument("--samples", type=int, help="latency samples (after 20 warm-up tasks)")
    p.add_argument("--rounds", type=int, help="rounds; medians over rounds are reported")
    p.add_argument("--systems", default="blueque,huey,rq", help="comma-separated subset")
    p.add_argument("--only", default=",".join(KINDS), help="comma-separated measurements")
    p.add_argument("--timeout", type=float, default=120.0, help="bound of one measurement, s")
    p.add_argument("--json", type=Path, help="also write every value to this file")
    p.add_argument("--profile", type=Path, help="py-spy the Blueque workers into this folder")
    p.add_argument("--native", action="store_true", help="with --profile: native frames too")
    args = p.parse_args(argv)
    quick = args.quick
    args.tasks = args.tasks or (300 if quick else 2000)
    args.fork_tasks = args.fork_tasks or max(20, args.tasks // 4)
    args.many = args.many or args.tasks * 10
    args.samples = args.samples or (50 if quick else 300)
    args.rounds = args.rounds or (1 if quick else 3)
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    names = [s for s in args.systems.split(",") if s]
    kinds = [k for k in args.only.split(",") if k]
    results: dict[str, list[float]] = {}
    load_before = harness.machine_load()
    print(f"# {platform.platform()}, Python {platform.python_version()}; {load_before}")
    started = time.monotonic()
    with RedisServer() as server:
        print(f"# redis-server on {server.url}")
        systems: dict[str, System] = {}
        factories: dict[str, Callable[[str], System]] = {
            "blueque": BluequeSystem,
            "huey": HueySystem,
            "rq": RqSystem,
        }
        for name in names:
            systems[name] = factories[name](server.url)
        cpu = harness.RedisCpu(server.url)
        try:
            for rnd in range(args.rounds):
                order = names[rnd % len(names) :] + names[: rnd % len(names)]
                for kind in kinds:
                    for name in order:
                        _measure(args, systems[name], kind, rnd, results, cpu)
        finally:
            for system in systems.values():
                system.close()
            cpu.close()
    load_after = harness.machine_load()
    elapsed = time.monotonic() - started
    print(f"\n# {args.rounds} round(s) in {elapsed:.0f} s; before: {load_before}")
    print(f"# after: {load_after}\n")
    print(report.numbers_table(results))
    print()
    print(report.targets_table(results))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "argv": argv,
                    "load_before": load_before,
                    "load_after": load_after,
                    "results": results,
                    "targets": report.target_rows(results),
                },
                indent=2,
                default=str,
            )
        )
    return 0


def _measure(
    args: argparse.Namespace,
    system: System,
    kind: str,
    rnd: int,
    results: dict[str, list[float]],
    cpu: harness.RedisCpu,
) -> None:
    name = system.name
    tag = f"r{rnd}-{int(time.time() * 1000) % 10**8}"
    values: dict[str, float] = {}
    if kind in ("enqueue_many", "latency_held") and not isinstance(system, BluequeSystem):
        return  # neither peer has an atomic bulk enqueue of the same kind; a diagnostic
    if kind in ("inprocess", "fork") and kind not in WORKER_MODES[name]:
        return
    producer_profile: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
    if args.profile is not None and name == "blueque" and rnd == 0 and kind in PRODUCER_KINDS:
        args.profile.mkdir(parents=True, exist_ok=True)
        out = args.profile / f"producer-{kind}.txt"
        producer_profile = profiles.recording(os.getpid(), out, idle=True, native=args.native)
    try:
        with producer_profile:
            _run(args, system, kind, tag, rnd, values, cpu)
    except Exception:
        print(f"! {name} {kind} failed:", file=sys.stderr)
        traceback.print_exc()
        values = {}
    shown = ", ".join(f"{k} {v:,.2f}" for k, v in values.items()) or "failed"
    print(f"round {rnd + 1} {name:8} {kind:12} {shown}", flush=True)
    for metric in METRICS[kind]:
        results.setdefault(f"{name}.{metric}", []).append(values.get(metric, math.nan))


def _run(
    args: argparse.Namespace,
    system: System,
    kind: str,
    tag: str,
    rnd: int,
    values: dict[str, float],
    cpu: harness.RedisCpu,
) -> None:
    name = system.name
    if kind == "enqueue":
        values["enqueue"], values["redis_cpu_us.enqueue"] = harness.enqueue_rate(
            system, f"bench.enq.{tag}", args.tasks, cpu
        )
    elif kind == "enqueue_many":
        assert isinstance(system, BluequeSystem)
        cpu_before = cpu()
        seconds = system.enqueue_many(f"bench.many.{tag}", args.many, args.batch)
        values["enqueue_many"] = args.many / seconds
        values["redis_cpu_us.enqueue_many"] = (cpu() - cpu_before) / args.many * 1e6
    elif kind in ("inprocess", "fork"):
        n = args.tasks if kind == "inprocess" else args.fork_tasks
        profile = None
        if args.profile is not None and name == "blueque" and rnd == 0:
            args.profile.mkdir(parents=True, exist_ok=True)
            profile = args.profile / f"blueque-{kind}.txt"
        run = harness.worker_rate(
            system, kind, f"bench.{kind}.{tag}", n, args.timeout, cpu, profile, args.native
        )
        values[f"worker.{kind}"] = run.tasks_per_s
        values[f"redis_cpu_us.worker.{kind}"] = run.redis_cpu_us
        values[f"worker_cpu_ms.{kind}"] = run.worker_cpu_ms
        values[f"worker_sys_ms.{kind}"] = run.worker_sys_ms
        values[f"worker_faults.{kind}"] = run.worker_faults
        values[f"parent_sys_ms.{kind}"] = run.parent_sys_ms
        values[f"parent_faults.{kind}"] = run.parent_faults
    elif kind == "latency":
        lat = harness.latency(
            system, "inprocess", f"bench.lat.{tag}", args.samples, 20, args.timeout
        )
        for field, value in asdict(lat).items():
            if field != "samples":
                values[f"latency.{field}"] = value
    elif kind == "latency_held":
        assert isinstance(system, BluequeSystem)
        lat = harness.latency(
            system,
            "inprocess",
            f"bench.held.{tag}",
            args.samples,
            20,
            args.timeout,
            system.latency_sample_subscribed,
        )
        for field, value in asdict(lat).items():
            if field != "samples":
                values[f"latency_held.{field}"] = value


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
