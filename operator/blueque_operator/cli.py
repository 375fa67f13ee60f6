"""`blueque-operator`: the command line of the operator process.

Which namespaces to watch is an explicit choice (`--namespace`, repeatable, or
`--all-namespaces`): an operator installed with namespaced RBAC must not try cluster-wide
watches by default. The kubeconfig is resolved as kubectl does ($KUBECONFIG, then the in-cluster
service account), by Kopf's login. `BLUEQUE_NAMESPACE` is never read here: that is the Redis key
prefix of the library, set per BlueQueue by `spec.redis.keyPrefix`.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import click

DEFAULT_METRICS_PORT = 8000

_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


@dataclass(frozen=True)
class OperatorOptions:
    namespaces: tuple[str, ...]
    """Namespaces to watch; empty means every namespace (`--all-namespaces`)."""
    metrics_port: int
    """Port of the Prometheus endpoint; 0 turns it off."""

    @property
    def all_namespaces(self) -> bool:
        return not self.namespaces


def _check_namespaces(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> tuple[str, ...]:
    for value in values:
        if not _NAMESPACE.fullmatch(value):
            raise click.BadParameter(f"{value!r} is not a Kubernetes namespace name")
    return tuple(dict.fromkeys(values))  # repeated names once, in the given order


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--namespace",
    "-n",
    "namespaces",
    multiple=True,
    callback=_check_namespaces,
    metavar="NS",
    help="Watch BlueQueues in this namespace (repeatable).",
)
@click.option(
    "--all-namespaces",
    "-A",
    is_flag=True,
    help="Watch BlueQueues in every namespace (needs cluster-wide RBAC).",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=DEFAULT_METRICS_PORT,
    show_default=True,
    help="Port of the Prometheus metrics endpoint (0: off).",
)
def command(namespaces: tuple[str, ...], all_namespaces: bool, metrics_port: int) -> None:
    """Run the Blueque operator: scale a worker Deployment per BlueQueue from its queue."""
    run(_options(namespaces, all_namespaces, metrics_port))


def _options(
    namespaces: tuple[str, ...], all_namespaces: bool, metrics_port: int
) -> OperatorOptions:
    if all_namespaces and namespaces:
        raise click.UsageError("give --namespace or --all-namespaces, not both")
    if not all_namespaces and not namespaces:
        raise click.UsageError("give --namespace NS (repeatable) or --all-namespaces")
    return OperatorOptions(namespaces=namespaces, metrics_port=metrics_port)


def run(options: OperatorOptions) -> None:
    # The Kopf handlers come in the next slice of the operator; until then, say so plainly.
    scope = "every namespace" if options.all_namespaces else ", ".join(options.namespaces)
    click.echo(
        f"blueque-operator: would watch {scope}, metrics on port {options.metrics_port};"
        " the operator's handlers are not implemented yet",
        err=True,
    )
    sys.exit(2)


def parse_options(args: Sequence[str]) -> OperatorOptions:
    """The options `args` stand for, without running anything (click's errors propagate)."""
    with command.make_context("blueque-operator", list(args)) as ctx:
        return _options(**ctx.params)


def main(argv: Sequence[str] | None = None) -> None:
    command.main(args=None if argv is None else list(argv), prog_name="blueque-operator")
