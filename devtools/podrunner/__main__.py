"""`python -m devtools.podrunner`: the pod runner as a process of its own, for the demo and for
people, against the cluster of `python -m devtools.localkube up`.

It runs until SIGTERM or SIGINT, then stops its processes and releases its finalizers. Stop it
that way, not with SIGKILL: its processes die with it (PR_SET_PDEATHSIG), but the finalizers it
left would hold its pods, and their namespace, until someone removes them. Errors are one line on
stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from devtools.errors import DevtoolsError
from devtools.localkube.cluster import LocalCluster, default_state_dir
from devtools.podrunner.options import WORKER_SELECTOR, RunnerOptions
from devtools.podrunner.runner import PodRunner


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m devtools.podrunner", description=__doc__)
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=default_state_dir(),
        help="the local cluster's state directory (default: that of `localkube up`)",
    )
    parser.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        help="a namespace to watch (repeatable; default: all)",
    )
    parser.add_argument("-l", "--selector", default=WORKER_SELECTOR, help="pod label selector")
    parser.add_argument("--container", help="the container to run (default: worker, or the first)")
    parser.add_argument(
        "--cwd", type=Path, default=Path.cwd(), help="working directory of the processes"
    )
    parser.add_argument(
        "--log-dir", type=Path, help="one log per pod (default: <state-dir>/pod-logs)"
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="environment the image would set, under the pod's own (repeatable)",
    )
    parser.add_argument(
        "--close-grace", type=float, default=10.0, help="seconds from SIGTERM to SIGKILL on exit"
    )
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING"))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr
    )
    env = {}
    for pair in args.env:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            print(f"podrunner: --env wants KEY=VALUE, got {pair!r}", file=sys.stderr)
            return 2
        env[key] = value
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        api = LocalCluster.attach(args.state_dir).admin_client()
        options = RunnerOptions(
            log_dir=args.log_dir or args.state_dir / "pod-logs",
            namespaces=tuple(args.namespace),
            label_selector=args.selector,
            container=args.container,
            cwd=args.cwd.resolve(),
            env=env,
            close_grace_s=args.close_grace,
        )
        with PodRunner(api, options) as runner:
            where = ", ".join(options.namespaces) or "all namespaces"
            print(f"running pods {options.label_selector!r} in {where}; logs in {options.log_dir}")
            while not stop.wait(1.0):
                runner.statuses()  # raises if the reconciler failed
    except DevtoolsError as exc:
        print(f"podrunner: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
