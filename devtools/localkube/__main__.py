"""`python -m devtools.localkube build|up|down|status`: the local control plane for people.

`up` leaves the cluster running in the background with its state in `default_state_dir()`
(or `--state-dir`), so that `down` and `status` from another shell find it. Errors are one line
on stderr and exit status 1, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from devtools.errors import DevtoolsError
from devtools.localkube.build import build, cache_dir
from devtools.localkube.cluster import LocalCluster, default_state_dir
from devtools.localkube.errors import LocalKubeError
from devtools.localkube.versions import PINNED


def _cmd_build(args: argparse.Namespace) -> int:
    started = time.monotonic()
    binaries = build(jobs=args.jobs)
    print(
        f"{PINNED.key}: binaries in {binaries.etcd.parent} "
        f"(kubectl: {binaries.kubectl}) [{time.monotonic() - started:.1f} s]"
    )
    return 0


def _cmd_up(args: argparse.Namespace) -> int:
    cluster = LocalCluster(
        args.state_dir, node_count=args.nodes, max_pods=args.max_pods, owned_by_caller=False
    )
    cluster.start(timeout_s=args.timeout)
    state = cluster.state
    print(f"ready in {state.ready_after_s:.1f} s: {state.server}, nodes {', '.join(state.nodes)}")
    print(f"control plane RSS: {cluster.rss_bytes() / 2**20:.0f} MiB")
    print(f"export KUBECONFIG={cluster.kubeconfig}")
    return 0


def _cmd_down(args: argparse.Namespace) -> int:
    try:
        cluster = LocalCluster.attach(args.state_dir)
    except LocalKubeError:
        print(f"no cluster recorded in {args.state_dir}")
        return 0
    cluster.stop()
    print(f"stopped and removed {args.state_dir}")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    cluster = LocalCluster.attach(args.state_dir)
    state = cluster.state
    alive = cluster.alive()
    for component in state.components:
        word = "running" if alive[component.name] else "STOPPED"
        print(f"{component.name:<24} pid {component.pid:<8} {word}  log {component.log_file}")
    healthy = cluster.admin_client().healthy()
    print(f"api {state.server} {'ready' if healthy else 'NOT READY'}")
    print(f"control plane RSS: {cluster.rss_bytes() / 2**20:.0f} MiB")
    print(f"export KUBECONFIG={cluster.kubeconfig}")
    return 0 if healthy and all(alive.values()) else 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m devtools.localkube", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_build = sub.add_parser("build", help=f"build the binaries into {cache_dir()} if missing")
    p_build.add_argument("--jobs", type=int, default=None, help="go build -p (default: CPUs)")
    p_build.set_defaults(func=_cmd_build)
    for name, func, text in (
        ("up", _cmd_up, "start a cluster in the background"),
        ("down", _cmd_down, "stop it and remove its state"),
        ("status", _cmd_status, "show its processes and health"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("--state-dir", type=Path, default=default_state_dir())
        p.set_defaults(func=func)
        if name == "up":
            p.add_argument("--nodes", type=int, default=3, help="KWOK fake nodes")
            p.add_argument("--max-pods", type=int, default=110, help="pod capacity per node")
            p.add_argument("--timeout", type=float, default=120.0, help="seconds to be ready")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except DevtoolsError as exc:
        print(f"localkube: {exc}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
