"""One round of the comparison, in a process of its own: `python -m bench.round URL ROUND
OUT [options of python -m bench]`.

Each measurement runs for every system in turn, in an order rotated by the round's number,
so slow drift of the machine's load hits them alike. The values go to OUT as JSON, with
whether redis-py found hiredis in this process (`BENCH_HIREDIS`, see `bench/__init__.py`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import redis.utils

from bench import harness, profiles
from bench.blueque_system import BluequeSystem
from bench.harness import System
from bench.huey_system import HueySystem
from bench.rq_system import RqSystem

SYSTEMS = ("blueque", "huey", "huey_notify", "rq")
KINDS = ("enqueue", "enqueue_many", "inprocess", "fork", "latency", "latency_held")
LATENCY_FIELDS = tuple(f for f in harness.Latency.__dataclass_fields__ if f != "samples")
METRICS = {
    "enqueue": ("enqueue", "redis_cpu_us.enqueue", "client_cpu_us.enqueue"),
    "enqueue_many": ("enqueue_many", "redis_cpu_us.enqueue_many", "client_cpu_us.enqueue_many"),
    **{
        kind: (
            f"worker.{kind}",
            f"redis_cpu_us.worker.{kind}",
            f"worker_cpu_ms.{kind}",
            f"worker_sys_ms.{kind}",
            f"worker_faults.{kind}",
            f"parent_sys_ms.{kind}",
            f"parent_faults.{kind}",
        )
        for kind in ("inprocess", "fork")
    },
    "latency": tuple(f"latency.{f}" for f in LATENCY_FIELDS),
    "latency_held": tuple(f"latency_held.{f}" for f in LATENCY_FIELDS),
}
PRODUCER_KINDS = ("enqueue", "enqueue_many", "latency")
WORKER_MODES = {
    "blueque": ("inprocess", "fork"),
    "rq": ("inprocess", "fork"),
    "huey": ("inprocess",),
    "huey_notify": ("inprocess",),
}
FACTORIES: dict[str, Callable[[str], System]] = {
    "blueque": BluequeSystem,
    "huey": HueySystem,
    "huey_notify": lambda url: HueySystem(url, notify=True),
    "rq": RqSystem,
}


def add_options(p: argparse.ArgumentParser) -> None:
    """The options a round takes (the benchmark's command line passes them on)."""
    p.add_argument("--quick", action="store_true", help="small counts, one round (a smoke run)")
    p.add_argument("--tasks", type=int, help="tasks per enqueue / in-process worker run")
    p.add_argument("--fork-tasks", type=int, help="tasks per forking worker run")
    p.add_argument("--many", type=int, help="tasks enqueued with enqueue_many")
    p.add_argument("--batch", type=int, default=1000, help="enqueue_many batch size")
    p.add_argument("--samples", type=int, help="latency samples (after 20 warm-up tasks)")
    p.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated subset")
    p.add_argument("--only", default=",".join(KINDS), help="comma-separated measurements")
    p.add_argument("--timeout", type=float, default=180.0, help="bound of one measurement, s")
    p.add_argument("--profile", type=Path, help="py-spy the Blueque workers into this folder")
    p.add_argument("--native", action="store_true", help="with --profile: native frames too")


def defaults(args: argparse.Namespace) -> argparse.Namespace:
    quick = args.quick
    args.tasks = args.tasks or (300 if quick else 2000)
    args.fork_tasks = args.fork_tasks or max(20, args.tasks // 4)
    args.many = args.many or args.tasks * 10
    args.samples = args.samples or (50 if quick else 300)
    return args


def run_round(url: str, rnd: int, args: argparse.Namespace) -> dict[str, float]:
    names = [s for s in args.systems.split(",") if s]
    kinds = [k for k in args.only.split(",") if k]
    order = names[rnd % len(names) :] + names[: rnd % len(names)]
    results: dict[str, float] = {}
    systems = {name: FACTORIES[name](url) for name in names}
    cpu = harness.RedisCpu(url)
    try:
        for kind in kinds:
            for name in order:
                _measure(args, systems[name], kind, rnd, results, cpu)
    finally:
        for system in systems.values():
            system.close()
        cpu.close()
    return results


def _measure(
    args: argparse.Namespace,
    system: System,
    kind: str,
    rnd: int,
    results: dict[str, float],
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
    print(f"  {name:11} {kind:12} {shown}", flush=True)
    for metric in METRICS[kind]:
        results[f"{name}.{metric}"] = values.get(metric, math.nan)


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
        rate, redis_us, client_us = harness.enqueue_rate(
            system, f"bench.enq.{tag}", args.tasks, cpu
        )
        values["enqueue"], values["redis_cpu_us.enqueue"] = rate, redis_us
        values["client_cpu_us.enqueue"] = client_us
    elif kind == "enqueue_many":
        assert isinstance(system, BluequeSystem)
        cpu_before, client_before = cpu(), time.process_time()
        seconds = system.enqueue_many(f"bench.many.{tag}", args.many, args.batch)
        values["enqueue_many"] = args.many / seconds
        values["redis_cpu_us.enqueue_many"] = (cpu() - cpu_before) / args.many * 1e6
        values["client_cpu_us.enqueue_many"] = (
            (time.process_time() - client_before) / args.many * 1e6
        )
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
    elif kind in ("latency", "latency_held"):
        sample = None
        if kind == "latency_held":
            assert isinstance(system, BluequeSystem)
            sample = system.latency_sample_subscribed
        lat = harness.latency(
            system, "inprocess", f"bench.{kind}.{tag}", args.samples, 20, args.timeout, sample
        )
        for field, value in asdict(lat).items():
            if field != "samples":
                values[f"{kind}.{field}"] = value


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.round", description=__doc__)
    p.add_argument("url")
    p.add_argument("round", type=int)
    p.add_argument("out", type=Path)
    add_options(p)
    args = defaults(p.parse_args(argv))
    results = run_round(args.url, args.round, args)
    results["hiredis"] = float(redis.utils.HIREDIS_AVAILABLE)
    args.out.write_text(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
