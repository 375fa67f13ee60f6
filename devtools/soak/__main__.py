"""`python -m devtools.soak`: run a soak, print its summary, exit 1 unless lost and over-run
are both 0 (see the package docstring for what they mean)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from devtools.soak.harness import CHAOS, Soak, SoakSettings
from devtools.soak.ledger import format_summary


def parse_args(argv: list[str]) -> tuple[SoakSettings, bool]:
    """The settings, and whether to print JSON."""
    defaults = SoakSettings()
    p = argparse.ArgumentParser(
        prog="python -m devtools.soak",
        description="Real blueque workers under SIGKILL, SIGSTOP, SIGTERM, Redis restarts,"
        " scheduler restarts and cancels; prints every task's fate and exits 1 if a task was"
        " lost or ran more often than its worker died.",
    )
    p.add_argument("--tasks", type=int, default=defaults.tasks, help="tasks to enqueue")
    p.add_argument(
        "--duration",
        type=float,
        default=defaults.duration_s,
        help="seconds of chaos; the tasks are enqueued evenly over them",
    )
    p.add_argument("--workers", type=int, default=defaults.workers, help="worker processes")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    p.add_argument("--heartbeat-ttl", type=float, default=defaults.heartbeat_ttl_s)
    p.add_argument("--heartbeat-interval", type=float, default=defaults.heartbeat_interval_s)
    p.add_argument(
        "--task-sleep-max",
        type=float,
        default=defaults.task_sleep_max_s,
        help="each task sleeps up to this many seconds",
    )
    p.add_argument("--fail-share", type=float, default=defaults.fail_share)
    p.add_argument("--scheduled-share", type=float, default=defaults.scheduled_share)
    p.add_argument(
        "--chaos-interval",
        type=float,
        default=defaults.chaos_interval_s,
        help="mean seconds between chaos actions",
    )
    p.add_argument(
        "--chaos",
        default=",".join(defaults.chaos),
        help=f"comma-separated subset of {','.join(CHAOS)} (empty: none)",
    )
    p.add_argument(
        "--redis-down-max",
        type=float,
        default=None,
        help="longest Redis outage in seconds (default 1.5 x the heartbeat TTL)",
    )
    p.add_argument(
        "--cluster",
        action="store_true",
        help="on a Redis Cluster of 3 masters (Redis restarts: the master holding the queue)",
    )
    p.add_argument("--settle-timeout", type=float, default=defaults.settle_timeout_s)
    p.add_argument(
        "--requeue-live-every",
        type=float,
        default=0.0,
        help="sabotage: requeue a live worker's running task this often (to see the soak catch it)",
    )
    p.add_argument("--workdir", type=Path, default=None, help="logs, AOF and report.json")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    a = p.parse_args(argv)
    if a.tasks < 1 or a.workers < 1 or a.duration <= 0:
        p.error("--tasks, --workers and --duration must be positive")
    settings = SoakSettings(
        tasks=a.tasks,
        duration_s=a.duration,
        workers=a.workers,
        seed=a.seed,
        heartbeat_ttl_s=a.heartbeat_ttl,
        heartbeat_interval_s=a.heartbeat_interval,
        task_sleep_max_s=a.task_sleep_max,
        fail_share=a.fail_share,
        scheduled_share=a.scheduled_share,
        chaos_interval_s=a.chaos_interval,
        chaos=tuple(c for c in a.chaos.split(",") if c),
        redis_down_max_s=a.redis_down_max,
        cluster=a.cluster,
        settle_timeout_s=a.settle_timeout,
        requeue_live_every_s=a.requeue_live_every,
        workdir=a.workdir,
    )
    return settings, a.json


def main(argv: list[str] | None = None) -> int:
    settings, as_json = parse_args(sys.argv[1:] if argv is None else argv)
    soak = Soak(settings)
    print(f"soak: work directory {soak.workdir}", file=sys.stderr, flush=True)
    summary = soak.run()
    report = summary.as_dict()
    (soak.workdir / "report.json").write_text(json.dumps(report, indent=1))
    if as_json:
        print(json.dumps(report, indent=1))
    else:
        print(format_summary(summary, soak.origin))
    return 0 if summary.ok else 1


if __name__ == "__main__":
    sys.exit(main())
