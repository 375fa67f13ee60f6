"""Long-running commands: `worker` and `scheduler`.

Every worker option mirrors a `WorkerSettings` field and, like it, can come from the
environment (`BLUEQUE_<FIELD>`); a flag on the command line wins. The settings object does
the reading and validating, so the CLI and `forking_runner.run` never disagree.
"""

from __future__ import annotations

import importlib
import json
import logging
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

import click

from blueque.cli.app import DURATION, State, UserError, describe, pass_state
from blueque.connection import REDIS_DOWN
from blueque.errors import CorruptKeyError, InvalidNameError
from blueque.outcome import TaskFunction
from blueque.reaping import ReapGuard
from blueque.runners import ForkingRunner, InProcessRunner
from blueque.settings import WorkerSettings
from blueque.worker import Runner, Worker

log = logging.getLogger("blueque.scheduler")

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )


def import_task(ref: str) -> TaskFunction:
    """The function named by 'package.module:function' (the current directory is importable,
    as with `python -m`)."""
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise UserError(f"--task must look like module:function, got {ref!r}")
    if str(Path.cwd()) not in sys.path and "" not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise UserError(f"cannot import task module {module_name!r}: {exc}") from None
    except Exception as exc:
        raise UserError(
            f"importing task module {module_name!r} failed: {type(exc).__name__}: {exc}"
        ) from None
    target: Any = module
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise UserError(f"task module {module_name!r} has no {attr!r}") from None
    if not callable(target):
        raise UserError(f"task {ref!r} is not callable")
    fn: TaskFunction = target
    return fn


def _env_help(field: str, text: str) -> str:
    return f"{text} [env: BLUEQUE_{field.upper()}]"


# option name -> WorkerSettings field; each option's default is None so that the
# environment (read by WorkerSettings.from_env) fills in what the command line leaves out.
WORKER_OPTIONS = {
    "worker_id": "worker_id",
    "pod_name": "pod_name",
    "claim_timeout": "claim_timeout_s",
    "heartbeat_interval": "heartbeat_interval_s",
    "heartbeat_ttl": "heartbeat_ttl_s",
    "cancel_grace": "cancel_grace_s",
    "reconnect_max_delay": "reconnect_max_delay_s",
    "promote_interval": "promote_interval_s",
    "max_tasks": "max_tasks",
    "fork": "fork",
}


@click.command()
@click.argument("queue", envvar="BLUEQUE_QUEUE")
@click.option(
    "--task",
    "task_ref",
    envvar="BLUEQUE_TASK",
    required=True,
    help="The task function, module:function. [env: BLUEQUE_TASK]",
)
@click.option("--worker-id", help=_env_help("worker_id", "Registry id (default: pod or host-pid)."))
@click.option("--pod-name", help=_env_help("pod_name", "Kubernetes pod (default: $POD_NAME)."))
@click.option(
    "--claim-timeout",
    **DURATION,
    help=_env_help("claim_timeout_s", "One blocking claim's wait (default 1s)."),
)
@click.option(
    "--heartbeat-interval",
    **DURATION,
    help=_env_help("heartbeat_interval_s", "Heartbeat period; also how fast a cancel is seen."),
)
@click.option(
    "--heartbeat-ttl",
    **DURATION,
    help=_env_help("heartbeat_ttl_s", "Presumed dead after this without heartbeat (30s)."),
)
@click.option(
    "--cancel-grace",
    **DURATION,
    help=_env_help("cancel_grace_s", "Cancelled task: SIGTERM, then SIGKILL after this (10s)."),
)
@click.option(
    "--reconnect-max-delay",
    **DURATION,
    help=_env_help("reconnect_max_delay_s", "Cap of the backoff while Redis is down (10s)."),
)
@click.option(
    "--promote-interval",
    **DURATION,
    help=_env_help("promote_interval_s", "Idle worker promotes due tasks this often (0: off)."),
)
@click.option(
    "--max-tasks",
    type=click.IntRange(min=0),
    help=_env_help("max_tasks", "Exit after this many tasks (0: never)."),
)
@click.option(
    "--fork/--no-fork",
    default=None,
    help=_env_help("fork", "Run each task in a forked child (default) or in the worker."),
)
@click.option(
    "--log-level",
    envvar="BLUEQUE_LOG_LEVEL",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    default="INFO",
    show_default=True,
    help="[env: BLUEQUE_LOG_LEVEL]",
)
@pass_state
def worker(state: State, /, queue: str, task_ref: str, log_level: str, **options: Any) -> None:
    """Work on QUEUE ($BLUEQUE_QUEUE), one task at a time, until SIGTERM or SIGINT (the first
    lets the running task finish; a second stops at once). Exits with the worker's exit
    status. Each option falls back to its BLUEQUE_* environment variable."""
    fn = import_task(task_ref)
    overrides = {WORKER_OPTIONS[name]: value for name, value in options.items()}
    settings = WorkerSettings.from_env(**overrides)
    configure_logging(log_level)
    client = state.client()
    runner: Runner = ForkingRunner() if settings.fork else InProcessRunner()
    code = Worker(client, queue, fn, runner, settings).run()
    click.get_current_context().exit(code)


class _Stop:
    """Set by SIGTERM or SIGINT; waiting on it wakes at once."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.event.set()


@click.command()
@click.argument("queues", nargs=-1)
@click.option(
    "--interval",
    **DURATION,
    default=1.0,
    show_default=True,
    help="Longest sleep between passes (shorter when a task falls due sooner).",
)
@click.option("--once", is_flag=True, help="One pass, print what it did, exit.")
@click.option(
    "--log-level",
    envvar="BLUEQUE_LOG_LEVEL",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    default="INFO",
    show_default=True,
)
@pass_state
def scheduler(
    state: State, queues: tuple[str, ...], interval: float, once: bool, log_level: str
) -> None:
    """Promote due scheduled tasks and requeue the tasks of workers whose heartbeat expired,
    on QUEUES (default: every registered queue), until SIGTERM or SIGINT. For deployments
    without the Kubernetes operator; several schedulers may run at once. After Redis or
    this scheduler's connection comes back, reaping waits one heartbeat TTL, so that an
    outage is not taken for the death of every worker."""
    configure_logging(log_level)
    client = state.client()
    for name in queues:
        client.get_queue(name)  # a bad name is a mistake to report now, not every pass
    guard = ReapGuard()
    if once:
        report = scheduler_pass(state, queues, guard)
        click.echo(json.dumps(report) if state.json else _summary(report))
        broken = [name for name, r in report["queues"].items() if "error" in r]
        if broken:
            raise UserError(f"the pass failed on queue(s) {', '.join(broken)} (logged above)")
        return
    stop = _Stop()
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    log.info("scheduler on %s, every %ss", ", ".join(queues) or "every queue", interval)
    try:
        while not stop.event.is_set():
            wait_s = interval
            try:
                report = scheduler_pass(state, queues, guard)
                if report["next_due_in_s"] is not None:
                    wait_s = min(interval, report["next_due_in_s"])
            except Exception as exc:
                if isinstance(exc, REDIS_DOWN):
                    guard.lost()
                message = describe(exc)
                if message is None:
                    raise
                log.warning("%s; retrying in %ss", message, interval)
            stop.event.wait(max(0.01, wait_s))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("scheduler stopped")


def scheduler_pass(state: State, names: tuple[str, ...], guard: ReapGuard) -> dict[str, Any]:
    """promote_due and reap (through `guard`) on each queue; returns what was done and when
    the next task is due (seconds from now, or None)."""
    client = state.client()
    now_ms = time.time() * 1000
    report: dict[str, Any] = {"queues": {}, "next_due_in_s": None}
    for name in names or tuple(client.queues()):
        try:
            queue = client.get_queue(name)
        except InvalidNameError as exc:  # garbage in the registry must not stop the others
            log.warning("skipping %s", exc)
            continue
        try:
            promoted, next_due_ms = queue.promote_due()
            reap = guard.reap(queue)
        except CorruptKeyError as exc:  # one corrupt queue must not stop the others
            log.error("queue %s: %s", name, exc)
            report["queues"][name] = {"error": str(exc)}
            continue
        reaped, requeued, failed = reap.workers, reap.requeued, reap.failed
        report["queues"][name] = {
            "promoted": promoted,
            "reaped_workers": reaped,
            "requeued": requeued,
            "failed": failed,
            "reap_held_back": reap.held_back,
        }
        if promoted or reaped:
            log.info(
                "%s: promoted %d; reaped %d worker(s): %d requeued, %d failed",
                name,
                promoted,
                reaped,
                requeued,
                failed,
            )
        if next_due_ms is not None:
            due_in = max(0.0, (next_due_ms - now_ms) / 1000)
            current = report["next_due_in_s"]
            report["next_due_in_s"] = due_in if current is None else min(current, due_in)
    return report


def _summary(report: dict[str, Any]) -> str:
    lines = [
        f"{name}: failed: {r['error']}"
        if "error" in r
        else f"{name}: promoted {r['promoted']}, "
        + (
            f"reaping held back: {r['reap_held_back']}"
            if r["reap_held_back"]
            else f"reaped {r['reaped_workers']} worker(s)"
            f" ({r['requeued']} requeued, {r['failed']} failed)"
        )
        for name, r in report["queues"].items()
    ]
    return "\n".join(lines) or "no queues"


COMMANDS = (worker, scheduler)
