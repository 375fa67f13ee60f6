"""`python -m bench.scaling` (`./dev bench operator`): the operator against KEDA, side by side.

Builds what is missing (the control plane, KEDA: about 6.5 min once), then runs the setups one
after another on one local cluster and one Redis, prints each trial, the tables and the load,
and writes every value (samples included) to a JSON file. `--redraw FILE` makes the tables and
figures again from such a file, without running anything.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from bench.scaling import report
from bench.scaling.run import Options, budget_s, run, write_json
from bench.scaling.setups import SETUPS, Common
from bench.scaling.workloads import WORKLOADS
from devtools.errors import DevtoolsError
from devtools.localkube.build import cache_root


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} CPUs"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="./dev bench operator", description=__doc__.split("\n\n")[1])
    names = ",".join(s.name for s in SETUPS)
    p.add_argument("--setups", default=names, help=f"comma-separated subset of {names}")
    p.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated subset")
    p.add_argument("--max-replicas", type=int, default=10, help="the same for every setup")
    p.add_argument(
        "--grace", type=int, default=30, help="terminationGracePeriodSeconds, same everywhere"
    )
    p.add_argument(
        "--work-dir",
        type=Path,
        default=cache_root() / "run" / "bench-scaling",
        help="cluster state, logs, pod logs",
    )
    p.add_argument("--json", type=Path, help="every value to this file (default: in --work-dir)")
    p.add_argument("--svg-dir", type=Path, help="write the figures (one SVG per workload) here")
    p.add_argument("--redraw", type=Path, help="only redraw tables and figures from this JSON")
    return p


def _print_report(data: dict[str, object], svg_dir: Path | None) -> None:
    setups = data["setups"]
    assert isinstance(setups, list)
    common = Common(
        "redis://127.0.0.1:6379", int(str(data["max_replicas"])), int(str(data["grace_s"]))
    )
    print("\n## Knobs\n")
    print(report.knobs_table(common))
    print("\n## Results\n")
    print(report.results_table(setups))
    print("\n## API writes per setup (audit log, per user)\n")
    print(report.writes_table(setups))
    print("\n## CPU per setup\n")
    print(report.cpu_table(setups))
    if svg_dir is not None:
        for path in report.figures(setups, svg_dir, common.max_replicas):
            print(f"wrote {path}")


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.redraw is not None:
        _print_report(json.loads(args.redraw.read_text()), args.svg_dir)
        return 0
    options = Options(
        work_dir=args.work_dir,
        setups=tuple(s for s in args.setups.split(",") if s),
        workloads=tuple(w for w in args.workloads.split(",") if w),
        max_replicas=args.max_replicas,
        grace_s=args.grace,
    )
    header: dict[str, object] = {
        "argv": argv,
        "platform": platform.platform(),
        "max_replicas": options.max_replicas,
        "grace_s": options.grace_s,
        "load_before": _load(),
        "budget_s": budget_s(options),
    }
    print(f"# {header['platform']}; {header['load_before']}", flush=True)
    started = time.monotonic()
    try:
        runs = run(options)
    except DevtoolsError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    elapsed_s = time.monotonic() - started
    header["load_after"] = _load()
    header["elapsed_s"] = elapsed_s
    out = args.json or options.work_dir / "scaling.json"
    write_json(runs, out, header)
    print(
        f"\n# {elapsed_s / 60:.1f} min; before: {header['load_before']}; "
        f"after: {header['load_after']}; every value in {out}"
    )
    _print_report(json.loads(out.read_text()), args.svg_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
