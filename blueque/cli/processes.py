"""Long-running commands: `worker` and `scheduler`.

Every worker option mirrors a `WorkerSettings` field and, like it, can come from the
environment (`BLUEQUE_<FIELD>`); a flag on the command line wins. The options are built from
the environment contract (`blueque.environment`), which does the reading and validating, so
the CLI and `forking_runner.run` never disagree.
"""

from __future__ import annotations

import importlib
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import click

from blueque import environment as env
from blueque.cli.app import DURATION, State, UserError, describe, env_help, flag, pass_state
from blueque.client import Client
from blueque.connection import REDIS_DOWN, unavailable
from blueque.maintenance import PassReport, maintenance_pass
from blueque.outcome import TaskFunction
from blueque.reaping import ReapGuard
from blueque.runners import ForkingRunner, InProcessRunner
from blueque.worker import Runner, Worker

log = logging.getLogger("blueque.scheduler")

F = TypeVar("F", bound=Callable[..., Any])


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


def setting_options(command: F) -> F:
    """One option per `WorkerSettings` field, built from the environment contract: its flag,
    its variable and its default in the help. Each option's value is None when not given, so
    that the variable (read by `WorkerEnvironment`) fills in what the command line leaves
    out. Durations take '250ms', '5m', '1h30m' on the command line."""
    for variable in reversed(env.SETTING_VARIABLES):
        assert variable.setting is not None
        kind = env.SETTING_TYPES[variable.setting]
        options: dict[str, Any] = {}
        if kind is bool:
            options["default"] = None
        elif kind is float:
            options = dict(DURATION)
        elif kind is int:
            options["type"] = click.IntRange(min=0)
        command = click.option(
            flag(variable), variable.setting, help=env_help(variable), **options
        )(command)
    return command


_QUEUE, _TASK, _LOG_LEVEL = (env.variable(n) for n in (env.QUEUE, env.TASK, env.LOG_LEVEL))


def log_level_option(command: F) -> F:
    return click.option(
        flag(_LOG_LEVEL),
        "log_level",
        type=click.Choice(env.LOG_LEVELS, case_sensitive=False),
        help=env_help(_LOG_LEVEL, "How much the process logs."),
    )(command)


@click.command(
    help=f"""Work on QUEUE (${_QUEUE.name}), one task at a time, until SIGTERM or SIGINT (the
    first lets the running task finish; a second stops at once). Exits with the worker's
    exit status. Each option falls back to its environment variable."""
)
@click.argument(flag(_QUEUE), required=False)
@click.option(flag(_TASK), "task_ref", help=env_help(_TASK))
@setting_options
@log_level_option
@pass_state
def worker(
    state: State,
    /,
    queue: str | None,
    task_ref: str | None,
    log_level: str | None,
    **settings: Any,
) -> None:
    environment = env.WorkerEnvironment.from_env(**settings)
    queue = queue or environment.queue
    task_ref = task_ref or environment.task
    if queue is None:
        raise click.UsageError(f"Missing argument QUEUE (or ${_QUEUE.name}).")
    if task_ref is None:
        raise click.UsageError(f"Missing option {flag(_TASK)} (or ${_TASK.name}).")
    fn = import_task(task_ref)
    configure_logging(log_level or environment.log_level)
    s = environment.settings
    backoff_cap_s = min(s.reconnect_max_delay_s, s.heartbeat_ttl_s / 2)  # as the worker's
    client = _client_once_available(state, logging.getLogger("blueque.worker"), backoff_cap_s)
    if client is None:
        return
    runner: Runner = ForkingRunner() if s.fork else InProcessRunner()
    code = Worker(client, queue, fn, runner, s).run()
    click.get_current_context().exit(code)


class _Stop:
    """Set by SIGTERM or SIGINT; waiting on it wakes at once."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.event.set()


def _client_once_available(
    state: State, logger: logging.Logger, backoff_cap_s: float
) -> Client | None:
    """The client, once Redis is available: a Redis Cluster's client connects when it is
    made (a standalone one at its first command), so a worker or scheduler started while
    the cluster is down or restarting waits here, with backoff, as it would have waited
    running. None when SIGTERM or SIGINT came first."""
    stop = _Stop()
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    delay = 0.1
    try:
        while True:
            try:
                return state.client()
            except REDIS_DOWN as exc:
                logger.warning("%s; retrying in %.1f s", unavailable(exc), delay)
            if stop.event.wait(delay):
                logger.info("stopped before Redis was available")
                return None
            delay = min(delay * 2, backoff_cap_s)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


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
@log_level_option
@pass_state
def scheduler(
    state: State, queues: tuple[str, ...], interval: float, once: bool, log_level: str | None
) -> None:
    """Promote due scheduled tasks and requeue the tasks of workers whose heartbeat expired,
    on QUEUES (default: every registered queue), until SIGTERM or SIGINT. For deployments
    without the Kubernetes operator; several schedulers may run at once. After Redis or
    this scheduler's connection comes back, reaping waits one heartbeat TTL, so that an
    outage is not taken for the death of every worker."""
    configure_logging(log_level or env.read_log_level())
    client = state.client() if once else _client_once_available(state, log, interval)
    if client is None:
        return
    for name in queues:
        client.get_queue(name)  # a bad name is a mistake to report now, not every pass
    guard = ReapGuard()
    if once:
        report = maintenance_pass(client, queues, guard)
        click.echo(json.dumps(report.as_dict()) if state.json else _summary(report))
        if report.failures:
            names = ", ".join(q.queue for q in report.failures)
            raise UserError(f"the pass failed on queue(s) {names} (logged above)")
        return
    stop = _Stop()
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    log.info("scheduler on %s, every %ss", ", ".join(queues) or "every queue", interval)
    try:
        while not stop.event.is_set():
            wait_s = interval
            try:
                report = maintenance_pass(client, queues, guard)
                if report.next_due_in_s is not None:
                    wait_s = min(interval, report.next_due_in_s)
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


def _summary(report: PassReport) -> str:
    lines = [
        f"{q.queue}: promoted {q.promoted}, "
        + (
            f"reaping held back: {q.reap_held_back}"
            if q.reap_held_back
            else f"reaped {q.reaped_workers} worker(s) ({q.requeued} requeued, {q.failed} failed)"
        )
        + (f"; failed: {q.error}" if q.error else "")
        for q in report.queues
    ]
    return "\n".join(lines) or "no queues"


COMMANDS = (worker, scheduler)
