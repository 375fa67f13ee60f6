"""Commands on queues and their workers: info (also live), workers, config, requeue."""

from __future__ import annotations

import json
import sys
import textwrap
import time
from typing import Any

import click

from blueque.cli.app import (
    DURATION,
    State,
    UserError,
    json_option,
    parse_assignments,
    pass_state,
)
from blueque.cli.output import echo_json, format_age, worker_dict
from blueque.client import Client
from blueque.config import SCHEMA
from blueque.maintenance import QueueSnapshot, snapshot, worker_rows
from blueque.reaping import ReapGuard


def snapshot_dict(snap: QueueSnapshot) -> dict[str, Any]:
    return {
        "queues": [s.as_dict() for s in snap.stats],
        "running": [worker_dict(row) for row in snap.running],
        "errors": dict(snap.errors),
    }


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
        snap = snapshot(client, queues)
        if state.json:
            echo_json(snapshot_dict(snap))
        else:
            from blueque.cli import tables  # rich: only where a table is printed

            tables.console().print(tables.render_snapshot(snap))
        return
    try:
        if state.json:
            _watch_json(client, queues, interval)
        else:
            from blueque.cli import tables

            tables.watch_live(lambda: snapshot(client, queues), interval)
    except KeyboardInterrupt:
        pass


def _watch_json(client: Client, queues: tuple[str, ...], interval: float) -> None:
    while True:
        click.echo(json.dumps(snapshot_dict(snapshot(client, queues)), default=str))
        sys.stdout.flush()
        time.sleep(interval)


@click.command()
@click.argument("queue")
@json_option
@pass_state
def workers(state: State, queue: str) -> None:
    """The workers of QUEUE: what each one is doing, for how long, and its progress."""
    rows = worker_rows(state.client().get_queue(queue))
    if state.json:
        echo_json([worker_dict(row) for row in rows])
    else:
        from blueque.cli import tables

        tables.console().print(tables.workers_table(rows, f"Workers of {queue}"))


def _config_help() -> str:
    lines = []
    for s in SCHEMA:
        lines.append(f"{s.name}: {s.json_type} >= {s.minimum:g}, default {s.default:g}")
        lines += textwrap.wrap(s.description, 72, initial_indent="    ", subsequent_indent="    ")
    # "\b" keeps click from rewrapping the block.
    return (
        "Show the settings of QUEUE, or set some: `config QUEUE retry_max=3 retry_delay_s=30`."
        "\n\n\b\n" + "\n".join(lines)
    )


@click.command(help=_config_help())
@click.argument("queue")
@click.argument("settings", nargs=-1)
@json_option
@pass_state
def config(state: State, queue: str, settings: tuple[str, ...]) -> None:
    q = state.client().get_queue(queue)
    values = parse_assignments(settings)
    current = q.set_config(**values) if values else q.config()
    if state.json:
        echo_json(current.as_dict())
        return
    for name, value in current.as_dict().items():
        click.echo(f"{name} = {value:g}" if isinstance(value, float) else f"{name} = {value}")


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
