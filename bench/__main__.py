"""`python -m bench [--quick] [--rounds R] [--hiredis on,off] [--json out.json] [...]`

Starts one redis-server and runs R rounds on it. In each round every hiredis mode gets a
fresh process (`bench.round`, `BENCH_HIREDIS` set for it and the workers it starts), in an
order rotated from round to round, and within that process every system takes its turn per
measurement, also rotated. Prints issue 11's comparison table with its goals for each
hiredis mode, every figure, and hiredis against none, with the machine's load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import HIREDIS_ENV, harness, report
from bench.round import add_options, defaults
from devtools.redis_servers import RedisServer

ROOT = Path(__file__).resolve().parent.parent


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[1])
    p.add_argument("--rounds", type=int, help="rounds; medians over rounds are reported")
    p.add_argument("--hiredis", default="on,off", help="hiredis modes to measure: on, off")
    p.add_argument("--json", type=Path, help="also write every value to this file")
    add_options(p)
    args = defaults(p.parse_args(argv))
    args.rounds = args.rounds or (1 if args.quick else 3)
    passed: list[str] = []  # what each round process gets
    for name in ("tasks", "fork_tasks", "many", "batch", "samples", "systems", "only"):
        passed += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    passed += ["--timeout", str(args.timeout)]
    if args.profile is not None:
        passed += ["--profile", str(args.profile), *(["--native"] if args.native else [])]
    return args, passed


def main(argv: list[str]) -> int:
    args, passed = parse_args(argv)
    modes = [m for m in args.hiredis.split(",") if m]
    results: dict[str, list[float]] = {}
    loads: list[str] = []
    load_before = harness.machine_load()
    print(f"# {platform.platform()}, Python {platform.python_version()}; {load_before}")
    started = time.monotonic()
    with RedisServer() as server, tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        print(f"# redis-server on {server.url}", flush=True)
        for rnd in range(args.rounds):
            order = modes[rnd % len(modes) :] + modes[: rnd % len(modes)]
            for mode in order:
                load = harness.machine_load()
                print(f"round {rnd + 1}, hiredis {mode} ({load})", flush=True)
                loads.append(f"round {rnd + 1} hiredis {mode}: {load}")
                out = Path(tmp) / f"round-{rnd}-{mode}.json"
                env = {**os.environ, HIREDIS_ENV: mode, "PYTHONPATH": str(ROOT)}
                cmd = [sys.executable, "-m", "bench.round", server.url, str(rnd), str(out)]
                done = subprocess.run([*cmd, *passed], env=env, cwd=ROOT, check=False)
                if done.returncode != 0 or not out.exists():
                    print(f"! round {rnd + 1} hiredis {mode} failed ({done.returncode})")
                    continue
                got: dict[str, float] = json.loads(out.read_text())
                if bool(got.pop("hiredis")) != (mode == "on"):
                    print(f"! hiredis {mode} asked, but redis-py says otherwise: is it installed?")
                for key, value in got.items():
                    results.setdefault(f"{mode}:{key}", []).append(value)
    load_after = harness.machine_load()
    elapsed = time.monotonic() - started
    print(f"\n# {args.rounds} round(s) in {elapsed:.0f} s; before: {load_before}")
    print(f"# after: {load_after}")
    for mode in modes:
        print(f"\n## hiredis {mode}\n")
        print(report.comparison_table(results, mode))
        print()
        print(report.numbers_table(results, mode))
    if set(modes) == {"on", "off"}:
        print("\n## hiredis on against off\n")
        print(report.hiredis_table(results))
    if args.json:
        doc = {
            "argv": argv,
            "load_before": load_before,
            "load_after": load_after,
            "loads": loads,
            "results": results,
        }
        args.json.write_text(json.dumps(doc, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
