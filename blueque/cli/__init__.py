"""The `blueque` command line: `blueque --help` lists the commands.

Global options come before the command and fall back to the environment, like python-rq's:
`--url`, `--cluster`, `--namespace` (their variables and defaults are in
`blueque.environment`, as is `BLUEQUE_REDIS_PASSWORD`, which has no flag); `--json` (before
or after the command) prints JSON for scripts. Commands live by concern in `tasks.py`,
`queues.py` and `processes.py`; `output.py` formats.
"""

from __future__ import annotations

import click

from blueque import environment as env
from blueque.cli import dashboard, processes, queues, tasks
from blueque.cli.app import BluequeGroup, State, env_help, flag
from blueque.keys import validate_namespace

_URL = env.variable(env.REDIS_URL)
_CLUSTER = env.variable(env.REDIS_CLUSTER)
_NAMESPACE = env.variable(env.NAMESPACE)


@click.group(cls=BluequeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(flag(_URL), "url", metavar="URL", help=env_help(_URL))
@click.option(flag(_CLUSTER), "cluster", is_flag=True, default=None, help=env_help(_CLUSTER))
@click.option(flag(_NAMESPACE), "namespace", metavar="NS", help=env_help(_NAMESPACE))
@click.option("--json", "json_", is_flag=True, help="Print JSON for scripts instead of tables.")
@click.version_option(package_name="blueque")
@click.pass_context
def cli(
    ctx: click.Context, url: str | None, cluster: bool | None, namespace: str | None, json_: bool
) -> None:
    """Blueque: a Redis task queue for long-running work."""
    state = ctx.ensure_object(State)
    state.redis = env.RedisEnvironment.from_env().with_flags(
        url=url, cluster=cluster, namespace=namespace
    )
    validate_namespace(state.redis.namespace)  # a mistake to report now, before any command
    state.json = state.json or json_
    ctx.call_on_close(state.close)


for command in (*tasks.COMMANDS, *queues.COMMANDS, *processes.COMMANDS, *dashboard.COMMANDS):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="blueque")


__all__ = ["cli", "main"]
