"""`python -m bench.kube [--only scaleup,requeue,busy,fleet] [--trials 20] [--json out.json]`

Starts a local control plane, a redis-server and operator processes of its own, runs the
operator's measurements (issue 9, "Measure") and prints their numbers; stops everything it
started by pid. Takes about 15 minutes in all; wants a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.harness import machine_load, percentile
from bench.kube import busy, fleet, scaling, svg
from bench.kube.env import KubeBench

KINDS = ("scaleup", "requeue", "busy", "fleet")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.kube", description=__doc__.split("\n\n")[1])
    p.add_argument("--only", default=",".join(KINDS), help="comma-separated measurements")
    p.add_argument("--trials", type=int, default=20, help="trials of each latency")
    p.add_argument("--polls", default="1,0.25", help="poll intervals of the scale-up, s")
    p.add_argument("--rounds", type=int, default=3, help="rounds of the busy-pods comparison")
    p.add_argument("--queues", type=int, default=200, help="BlueQueues of the fleet")
    p.add_argument("--pods", type=int, default=5, help="worker pods per BlueQueue of the fleet")
    p.add_argument("--busy", type=int, default=3, help="of which busy (simulated workers)")
    p.add_argument("--fleet-poll", type=float, default=1.0, help="the fleet's poll interval, s")
    p.add_argument("--window", type=float, default=60.0, help="the fleet's steady window, s")
    p.add_argument("--profile", type=Path, help="py-spy the fleet's operator into this folder")
    p.add_argument("--json", type=Path, help="write every value to this file")
    p.add_argument("--svg", type=Path, help="plot the latencies into this SVG file")
    p.add_argument("--workdir", type=Path, help="logs and cluster state (default: a temp dir)")
    p.add_argument(
        "--operator-src", type=Path, help="run the operator from this checkout (A/B runs)"
    )
    args = p.parse_args(argv)
    args.only = [k for k in args.only.split(",") if k]
    unknown = set(args.only) - set(KINDS)
    if unknown:
        p.error(f"unknown measurement(s): {', '.join(sorted(unknown))}")
    args.polls = [float(v) for v in args.polls.split(",") if v]
    return args


def _latency_row(trials: scaling.Trials) -> str:
    v = [x * 1000 for x in trials.values_s]
    return (
        f"| {trials.name} | {len(v)} | {percentile(v, 50):.0f} | {percentile(v, 95):.0f}"
        f" | {min(v):.0f} | {max(v):.0f} |"
    )


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="blueque-bench-kube-"))
    out: dict[str, Any] = {"load_before": machine_load(), "workdir": str(workdir)}
    print(f"{machine_load()}; logs in {workdir}", flush=True)
    latencies: list[scaling.Trials] = []
    started = time.monotonic()
    max_pods = 110 if "fleet" not in args.only else max(110, args.queues * args.pods // 2)
    bench_env = KubeBench(
        workdir, max_pods=max_pods, audit_log="fleet" in args.only, operator_src=args.operator_src
    )
    with bench_env as bench:
        print(f"control plane ready ({bench.cluster.state.ready_after_s:.1f} s)", flush=True)
        if "scaleup" in args.only:
            for poll_s in args.polls:
                bench.redis.flush()
                latencies.append(scaling.scale_up(bench, poll_s=poll_s, trials=args.trials))
        if "requeue" in args.only:
            bench.redis.flush()
            latencies.append(scaling.requeue(bench, trials=args.trials))
        if "busy" in args.only:
            bench.redis.flush()
            rounds = busy.compare(bench, rounds=args.rounds)
            out["busy"] = [asdict(r) for r in rounds]
            print(busy.table(rounds), flush=True)
        if "fleet" in args.only:
            bench.redis.flush()
            result = fleet.measure(
                bench,
                queues=args.queues,
                pods=args.pods,
                busy=args.busy,
                poll_s=args.fleet_poll,
                window_s=args.window,
                profile=args.profile,
            )
            out["fleet"] = asdict(result)
            print(fleet.table(result), flush=True)
    if latencies:
        print("| measurement | trials | p50 ms | p95 ms | min ms | max ms |")
        print("|---|---:|---:|---:|---:|---:|")
        for trials in latencies:
            print(_latency_row(trials))
        out["latencies"] = [asdict(t) for t in latencies]
        if args.svg is not None:
            goals = {t.name: (2.0 if t.name.startswith("pod") else 1.0) for t in latencies}
            args.svg.write_text(svg.latency_plot(latencies, goals))
            print(f"plot: {args.svg}")
    out["load_after"] = machine_load()
    out["elapsed_s"] = time.monotonic() - started
    print(f"{machine_load()}; {out['elapsed_s']:.0f} s", flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
