"""`./dev demo`: the operator scaling real workers on a local Kubernetes control plane, live
(demo/kube.py); `./dev demo --redis-only`: the quick look without Kubernetes, Redis and three
workers (demo/redis_only.py).

The first Kubernetes run on a machine needs the control-plane binaries: `./dev demo` builds them
first, through the same step as `./dev test` (about 15-20 minutes on two cores, once; then cached
in ~/.cache/blueque).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from demo import kube, redis_only
from devtools.errors import DevtoolsError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./dev demo", description=__doc__)
    parser.add_argument(
        "--redis-only",
        action="store_true",
        help="no Kubernetes: Redis, a fixed set of workers and a producer",
    )
    parser.add_argument(
        "--seconds", type=float, default=None, help="how long to run (default 90; 45 Redis-only)"
    )
    parser.add_argument(
        "--workers", type=int, default=3, help="with --redis-only: how many workers (default 3)"
    )
    parser.add_argument(
        "--burst-every",
        type=float,
        default=30.0,
        metavar="S",
        help="a burst of tasks every S seconds (default 30: time to scale down in between)",
    )
    parser.add_argument(
        "--no-chaos",
        action="store_true",
        help="do not force-delete a busy worker pod after each burst",
    )
    parser.add_argument("--seed", type=int, default=None, help="for repeatable bursts")
    parser.add_argument(
        "--summary", type=Path, default=None, help="write what happened as JSON to this file"
    )
    args = parser.parse_args(argv)
    if args.redis_only:
        return redis_only.run(args.seconds or 45.0, args.workers)
    options = kube.DemoOptions(
        seconds=args.seconds or 90.0,
        burst_every_s=args.burst_every,
        chaos=not args.no_chaos,
        summary=args.summary,
        seed=args.seed,
    )
    try:
        return kube.run(options)
    except DevtoolsError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
