"""Commands on tasks: enqueue, status, wait, tasks, cancel, retry, purge."""

from __future__ import annotations

import json
from datetime import datetime

import click

from blueque.cli.app import (
    DURATION,
    MOMENT,
    State,
    UserError,
    json_option,
    parse_params,
    pass_state,
    read_stdin,
)
from blueque.cli.output import echo_json, error_line, task_dict
from blueque.client import Client
from blueque.errors import TaskNotFoundError
from blueque.keys import queue_of_task
from blueque.states import HELD, LISTABLE, TaskState
from blueque.task import Task

# click.Choice takes words (given Enum members it would match their names).
LISTABLE_WORDS = [s.value for s in LISTABLE]
HELD_WORDS = [s.value for s in HELD]


@click.command()
@click.argument("queue")
@click.argument("params")
@click.option("--delay", **DURATION, help="Schedule it this long from now (30, 5m, 1h30m).")
@click.option("--at", "at", **MOMENT, help="Schedule it at this ISO 8601 time (local).")
@click.option("--wait", "wait_", is_flag=True, help="Wait for the task and print its result.")
@click.option("--timeout", **DURATION, help="With --wait: give up after this long.")
@json_option
@pass_state
def enqueue(
    state: State,
    queue: str,
    params: str,
    delay: float | None,
    at: datetime | None,
    wait_: bool,
    timeout: float | None,
) -> None:
    """Add a task to QUEUE. PARAMS is parsed as JSON when it is valid JSON, else it is kept as
    a string (quote a number as '"42"' to send it as a string); `-` reads it from stdin.
    Prints the task id."""
    if delay is not None and at is not None:
        raise click.UsageError("use --delay or --at, not both")
    q = state.client().get_queue(queue)
    parameters = parse_params(read_stdin() if params == "-" else params)
    if delay is not None or at is not None:
        task_id = q.schedule(parameters, eta=at, delay=delay)
    else:
        task_id = q.enqueue(parameters)
    if wait_:
        _report_finished(state, q.get_task(task_id).wait(timeout))
    elif state.json:
        echo_json(task_dict(q.get_task(task_id)))
    else:
        click.echo(task_id)


@click.command()
@click.argument("task_id")
@json_option
@pass_state
def status(state: State, task_id: str) -> None:
    """Show one task: state, attempts, worker, progress, timings, error with traceback. A
    task whose hash cannot be read in full shows what can be, and why the rest cannot."""
    found = state.client().get_queue(queue_of_task(task_id)).get_tasks([task_id])
    if not found:
        raise TaskNotFoundError(f"no task {task_id}")
    task = found[0]
    if state.json:
        echo_json(task_dict(task))
    else:
        from blueque.cli import tables  # rich: only where a table is printed

        tables.console().print(tables.task_view(task))


@click.command()
@click.argument("task_id")
@click.option("--timeout", **DURATION, help="Give up after this long (exit 1).")
@json_option
@pass_state
def wait(state: State, task_id: str, timeout: float | None) -> None:
    """Wait until a task finishes. Prints its result and exits 0 when it completed; exits 1
    with its error when it failed or was cancelled."""
    _report_finished(state, state.client().get_task(task_id).wait(timeout))


def _report_finished(state: State, task: Task) -> None:
    if state.json:
        echo_json(task_dict(task))
    elif task.status == TaskState.COMPLETE:
        # A string as it is (a script can use it directly), anything else as JSON.
        result = task.result
        click.echo(result if isinstance(result, str) else json.dumps(result, ensure_ascii=False))
    if task.status != TaskState.COMPLETE:
        raise UserError(f"task {task.id} {task.status}: {error_line(task.error)}")


@click.command()
@click.argument("queue")
@click.option(
    "--state",
    "task_state",
    type=click.Choice([*LISTABLE_WORDS, *HELD_WORDS]),
    default="pending",
    show_default=True,
)
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@json_option
@pass_state
def tasks(state: State, queue: str, task_state: str, limit: int) -> None:
    """List tasks of QUEUE in one state: pending in queue order, scheduled by due time,
    finished newest first, reserved and running as the workers hold them."""
    q = state.client().get_queue(queue)
    if task_state in HELD_WORDS:
        ids: list[str] = []
        for worker in q.workers():
            if task_state == TaskState.RUNNING:
                ids += [worker.task] if worker.task else []
            else:
                ids += [t for t in worker.holding if t != worker.task]
        found = q.get_tasks(ids[:limit])
    else:
        found = q.tasks(task_state, limit)
    if state.json:
        echo_json([task_dict(t) for t in found])
    else:
        from blueque.cli import tables

        tables.console().print(
            tables.tasks_table(found, f"{task_state.capitalize()} tasks of {q.name}")
        )


@click.command()
@click.argument("task_id")
@click.option("--wait", "wait_", is_flag=True, help="Wait until the task has ended.")
@click.option("--timeout", **DURATION, help="With --wait: give up after this long.")
@json_option
@pass_state
def cancel(state: State, task_id: str, wait_: bool, timeout: float | None) -> None:
    """Cancel a task. A waiting one ends at once; a running one is stopped by its worker
    (SIGTERM to the task's process, SIGKILL after the worker's cancel grace)."""
    task = state.client().get_task(task_id)
    outcome = task.cancel()
    if wait_:
        task = task.wait(timeout)
        outcome = task.status
    if state.json:
        echo_json({"id": task_id, "outcome": outcome, "state": task.refresh().status})
    elif outcome == "requested":
        click.echo(f"cancel requested: {_who_stops(state.client(), task.refresh())}")
    else:
        click.echo(f"{task_id} {outcome}")


def _who_stops(client: Client, task: Task) -> str:
    if task.status != TaskState.RUNNING:  # claimed, not begun: `begin` will cancel it
        return f"{task.id} is reserved by a worker and ends cancelled before it starts"
    workers = client.get_queue(task.queue).workers()
    runner = next((w.runner for w in workers if w.id == task.worker), None)
    if runner == "inprocess":
        return (
            f"worker {task.worker} runs tasks in its own process and cannot stop {task.id};"
            " it ends when the task returns"
        )
    return f"worker {task.worker} will stop {task.id}"


@click.command()
@click.argument("task_id")
@json_option
@pass_state
def retry(state: State, task_id: str) -> None:
    """Put a failed or cancelled task back at the end of its queue."""
    task = state.client().get_task(task_id)
    if task.status not in (TaskState.FAILED, TaskState.CANCELLED):
        # The retry script answers 'pending' both for "requeued" and for "was pending".
        raise UserError(
            f"task {task_id} is {task.status}: only failed or cancelled tasks can be retried"
        )
    task.retry()
    if state.json:
        echo_json({"id": task_id, "state": "pending"})
    else:
        click.echo(f"{task_id} pending")


@click.command()
@click.argument("queue")
@click.option("--state", "task_state", type=click.Choice(LISTABLE_WORDS), required=True)
@json_option
@pass_state
def purge(state: State, queue: str, task_state: str) -> None:
    """Delete every task of QUEUE in one waiting or finished state."""
    deleted = state.client().get_queue(queue).purge(task_state)
    if state.json:
        echo_json({"queue": queue, "state": task_state, "deleted": deleted})
    else:
        click.echo(f"deleted {deleted} {task_state} task(s) of {queue}")


COMMANDS = (enqueue, status, wait, tasks, cancel, retry, purge)
