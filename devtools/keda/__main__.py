"""`python -m devtools.keda build`: build KEDA's operator and adapter into their cache."""

from __future__ import annotations

import argparse
import sys
import time

from devtools.errors import DevtoolsError
from devtools.keda.build import build_keda, keda_cache_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.keda", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_build = sub.add_parser("build", help=f"build into {keda_cache_dir()} if missing")
    p_build.add_argument("--jobs", type=int, default=None, help="go build -p (default: 2)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        binaries = build_keda(jobs=args.jobs)
    except DevtoolsError as exc:
        print(f"keda: {exc}", file=sys.stderr)
        return 1
    print(
        f"KEDA {binaries.version}: {binaries.operator.parent} [{time.monotonic() - started:.1f} s]"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
