"""The `blueque` command line: `blueque --help` lists the commands.

Global options come before the command and from the environment, like python-rq's:
`--url` ($BLUEQUE_REDIS_URL), `--cluster` ($BLUEQUE_REDIS_CLUSTER), `--namespace`
($BLUEQUE_NAMESPACE); `--json` (before or after the command) prints JSON for scripts.
Commands live by concern in `tasks.py`, `queues.py` and `processes.py`; `output.py` formats.
"""

from __future__ import annotations

import click

from blueque.cli import processes, queues, tasks
from blueque.cli.app import BluequeGroup, State
from blueque.keys import DEFAULT_NAMESPACE, validate_namespace


@click.group(cls=BluequeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--url",
    envvar="BLUEQUE_REDIS_URL",
    default="redis://localhost:6379/0",
    show_default=True,
    help="Redis URL: redis://, rediss://, unix://, redis+cluster://, redis+sentinel://."
    " [env: BLUEQUE_REDIS_URL]",
)
@click.option(
    "--cluster",
    envvar="BLUEQUE_REDIS_CLUSTER",
    is_flag=True,
    help="The URL is a Redis Cluster node. [env: BLUEQUE_REDIS_CLUSTER]",
)
@click.option(
    "--namespace",
    envvar="BLUEQUE_NAMESPACE",
    default=DEFAULT_NAMESPACE,
    show_default=True,
    help="Key prefix. [env: BLUEQUE_NAMESPACE]",
)
@click.option("--json", "json_", is_flag=True, help="Print JSON for scripts instead of tables.")
@click.version_option(package_name="blueque")
@click.pass_context
def cli(ctx: click.Context, url: str, cluster: bool, namespace: str, json_: bool) -> None:
    """Blueque: a Redis task queue for long-running work."""
    state = ctx.ensure_object(State)
    state.url, state.cluster = url, cluster
    state.namespace = validate_namespace(namespace)
    state.json = state.json or json_
    ctx.call_on_close(state.close)


for command in (*tasks.COMMANDS, *queues.COMMANDS, *processes.COMMANDS):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="blueque")


__all__ = ["cli", "main"]
