"""Commands on queues and their workers: info (also live), workers, config, requeue."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from typing import Any

import click
from rich.console import Group, RenderableType
from rich.live import Live
from rich.text import Text

from blueque.cli.app import (
    DURATION,
    State,
    UserError,
    describe,
    json_option,
    parse_assignments,
    pass_state,
)
from blueque.cli.output import (
    console,
    echo_json,
    format_age,
    queues_table,
    worker_dict,
    workers_table,
)
from blueque.client import Client
from blueque.errors import CorruptKeyError, InvalidNameError
from blueque.keys import validate_queue_name
from blueque.queue import Queue
from blueque.reaping import ReapGuard
from blueque.records import QueueStats, WorkerInfo
from blueque.task import Task

WorkerRows = list[tuple[WorkerInfo, Task | None]]


def valid_queue_name(name: str) -> bool:
    try:
        validate_queue_name(name)
    except InvalidNameError:
        return False
    return True


def worker_rows(queue: Queue) -> WorkerRows:
    """Each worker of a queue with the task it runs (for its progress): two round trips."""
    workers = queue.workers()
    running = {t.id: t for t in queue.get_tasks(w.task for w in workers if w.task)}
    return [(w, running.get(w.task) if w.task else None) for w in workers]


@dataclass
class Snapshot:
    """What `info` shows: stats of the queues, their busy workers, and the queues whose keys
    could not be read (each with the message naming the key): those never hide the others."""

    stats: list[QueueStats]
    busy: WorkerRows
    errors: dict[str, str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "queues": [s.as_dict() for s in self.stats],
            "running": [worker_dict(w, t) for w, t in self.busy],
            "errors": dict(self.errors),
        }

    def render(self) -> RenderableType:
        parts: list[RenderableType] = [queues_table(self.stats)]
        parts += [Text(f"{name}: {error}", style="red") for name, error in self.errors.items()]
        if self.busy:
            parts += [Text(""), workers_table(self.busy, "Running tasks", show_queue=True)]
        return Group(*parts)


def snapshot(client: Client, names: tuple[str, ...]) -> Snapshot:
    """Stats of the queues (all registered ones by default) and their busy workers."""
    if names:
        queues = [client.get_queue(n) for n in names]
    else:  # the registry is not validated by Redis: a stray entry is left out, not fatal
        queues = [client.get_queue(n) for n in client.queues() if valid_queue_name(n)]
    shot = Snapshot([], [], {})
    for q in queues:
        try:
            stats = q.stats()
            busy = [(w, t) for w, t in worker_rows(q) if w.task] if stats.workers else []
        except CorruptKeyError as exc:
            shot.errors[q.name] = str(exc)
            continue
        shot.stats.append(stats)
        shot.busy += busy
    return shot


@click.command()
@click.argument("queues", nargs=-1)
@click.option("--watch", is_flag=True, help="Keep refreshing until interrupted.")
@click.option("--interval", **DURATION, default=1.0, show_default=True, help="Refresh period.")
@json_option
@pass_state
def info(state: State, queues: tuple[str, ...], watch: bool, interval: float) -> None:
    """Every queue (or the QUEUES named): pending, reserved, running, scheduled, complete,
    failed, cancelled, workers, draining, oldest pending age; and what runs where, with
    progress. With --watch the view refreshes live (with --json: one JSON line each time)."""
    client = state.client()
    if not watch:
        shot = snapshot(client, queues)
        if state.json:
            echo_json(shot.as_dict())
        else:
            console().print(shot.render())
        return
    try:
        if state.json:
            _watch_json(client, queues, interval)
        else:
            _watch_live(client, queues, interval)
    except KeyboardInterrupt:
        pass


def _watch_json(client: Client, queues: tuple[str, ...], interval: float) -> None:
    while True:
        click.echo(json.dumps(snapshot(client, queues).as_dict(), default=str))
        sys.stdout.flush()
        time.sleep(interval)


def _watch_live(client: Client, queues: tuple[str, ...], interval: float) -> None:
    """Redraws every `interval`; while Redis is unreachable it says so and keeps trying."""
    with Live(Text("connecting…"), console=console(), auto_refresh=False) as live:
        last: RenderableType | None = None
        while True:
            try:
                last = snapshot(client, queues).render()
                live.update(last, refresh=True)
            except Exception as exc:
                message = describe(exc)
                if message is None:
                    raise
                note = Text(f"{message} (retrying)", style="red")
                live.update(Group(last, note) if last else note, refresh=True)
            time.sleep(interval)


@click.command()
@click.argument("queue")
@json_option
@pass_state
def workers(state: State, queue: str) -> None:
    """The workers of QUEUE: what each one is doing, for how long, and its progress."""
    rows = worker_rows(state.client().get_queue(queue))
    if state.json:
        echo_json([worker_dict(w, t) for w, t in rows])
    else:
        console().print(workers_table(rows, f"Workers of {queue}"))


@click.command()
@click.argument("queue")
@click.argument("settings", nargs=-1)
@json_option
@pass_state
def config(state: State, queue: str, settings: tuple[str, ...]) -> None:
    """Show the settings of QUEUE, or set some: `config QUEUE retry_max=3 retry_delay_s=30`.

    max_attempts (times a task may lose its worker; the last loss fails it), keep_finished,
    finished_ttl_s,
    retry_max (automatic retries of a task that raised; 0: off), retry_delay_s,
    retry_backoff (factor by which each further retry's delay grows)."""
    q = state.client().get_queue(queue)
    values = parse_assignments(settings)
    current = q.set_config(**values) if values else q.config()
    if state.json:
        echo_json(current.as_dict())
        return
    table = console()
    for name, value in current.as_dict().items():
        table.print(f"{name} = {value:g}" if isinstance(value, float) else f"{name} = {value}")


@click.command()
@click.argument("queue")
@click.argument("worker_id", required=False)
@click.option(
    "--all-dead", is_flag=True, help="Every worker of QUEUE whose heartbeat expired (reap)."
)
@click.option(
    "--force",
    is_flag=True,
    help="Even if the worker still heartbeats (--all-dead: even within a TTL of a restart).",
)
@json_option
@pass_state
def requeue(state: State, queue: str, worker_id: str | None, all_dead: bool, force: bool) -> None:
    """Give back the tasks of a dead worker (WORKER_ID) or of every dead one (--all-dead).
    A task that was begun counts one loss; at the queue's max_attempts losses it fails."""
    if (worker_id is None) == (not all_dead):
        raise click.UsageError("give a WORKER_ID or --all-dead (not both)")
    q = state.client().get_queue(queue)
    if all_dead:
        reason = "requeued by blueque requeue --all-dead"
        if force:
            reaped, requeued, failed = q.reap(reason)
        else:
            reap = ReapGuard().reap(q, reason)
            if reap.held_back:
                raise UserError(f"nothing requeued: {reap.held_back} (--force to reap now)")
            reaped, requeued, failed = reap.workers, reap.requeued, reap.failed
        result = {"queue": q.name, "workers": reaped, "requeued": requeued, "failed": failed}
    else:
        assert worker_id is not None
        known = {w.id: w for w in q.workers()}
        worker = known.get(worker_id)
        if worker is None and not force:
            raise UserError(f"no worker {worker_id} on queue {q.name} (--force to requeue anyway)")
        if worker is not None and worker.alive and not force:
            raise UserError(
                f"worker {worker_id} is alive (heartbeat {format_age(worker.heartbeat_at)});"
                " stop it first, or use --force"
            )
        requeued, failed = q.requeue_worker(worker_id, "requeued by blueque requeue")
        result = {"queue": q.name, "workers": 1, "requeued": requeued, "failed": failed}
    if state.json:
        echo_json(result)
    else:
        click.echo(f"{result['workers']} worker(s): {requeued} task(s) requeued, {failed} failed")


@click.command()
@click.argument("queue")
@click.argument("worker_id")
@json_option
@pass_state
def drain(state: State, queue: str, worker_id: str) -> None:
    """Stop WORKER_ID from taking tasks, once it is idle (the scale-down handshake).

    Succeeds only while the worker holds no task (exit 1 otherwise: try again when it is
    idle); from then on the worker begins nothing until `undrain`, so it can be stopped or
    removed without cutting a task off."""
    q = state.client().get_queue(queue)
    drained = q.drain(worker_id)
    if state.json:
        echo_json({"queue": q.name, "worker": worker_id, "draining": drained})
    if not drained:
        raise UserError(f"worker {worker_id} holds a task: not drained (try again when idle)")
    if not state.json:
        click.echo(f"worker {worker_id} is draining: it takes no more tasks")


@click.command()
@click.argument("queue")
@click.argument("worker_id")
@json_option
@pass_state
def undrain(state: State, queue: str, worker_id: str) -> None:
    """Let a drained WORKER_ID take tasks again."""
    q = state.client().get_queue(queue)
    was = q.undrain(worker_id)
    if state.json:
        echo_json({"queue": q.name, "worker": worker_id, "was_draining": was})
    else:
        click.echo(f"worker {worker_id} {'undrained' if was else 'was not draining'}")


COMMANDS = (info, workers, config, requeue, drain, undrain)
