"""`blueque-operator`: the command line of the operator process.

Which namespaces to watch is an explicit choice (`--namespace`, repeatable, or
`--all-namespaces`): an operator installed with namespaced RBAC must not try cluster-wide
watches by default. The kubeconfig is resolved as kubectl does ($KUBECONFIG, then the in-cluster
service account), by Kopf's login. `BLUEQUE_NAMESPACE` is never read here: that is the Redis key
prefix of the library, set per BlueQueue by `spec.redis.keyPrefix`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sys
from collections.abc import Sequence

import click

from blueque_operator.options import (
    DEFAULT_LEASE_NAME,
    DEFAULT_METRICS_PORT,
    POD_NAMESPACE_ENV,
    OperatorOptions,
)

_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


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
@click.option(
    "--lease-namespace",
    envvar=POD_NAMESPACE_ENV,
    default="default",
    show_default=True,
    callback=lambda ctx, param, value: _check_namespaces(ctx, param, (value,))[0],
    help=f"Namespace of the leader-election Lease (default: ${POD_NAMESPACE_ENV}).",
)
@click.option(
    "--lease-name",
    default=DEFAULT_LEASE_NAME,
    show_default=True,
    help="Name of the leader-election Lease: replicas sharing it elect one leader.",
)
def command(
    namespaces: tuple[str, ...],
    all_namespaces: bool,
    metrics_port: int,
    lease_namespace: str,
    lease_name: str,
) -> None:
    """Run the Blueque operator: scale a worker Deployment per BlueQueue from its queue."""
    run(_options(namespaces, all_namespaces, metrics_port, lease_namespace, lease_name))


def _options(
    namespaces: tuple[str, ...],
    all_namespaces: bool,
    metrics_port: int,
    lease_namespace: str = "default",
    lease_name: str = DEFAULT_LEASE_NAME,
) -> OperatorOptions:
    if all_namespaces and namespaces:
        raise click.UsageError("give --namespace or --all-namespaces, not both")
    if not all_namespaces and not namespaces:
        raise click.UsageError("give --namespace NS (repeatable) or --all-namespaces")
    return OperatorOptions(
        namespaces=namespaces,
        metrics_port=metrics_port,
        lease_namespace=lease_namespace,
        lease_name=lease_name,
    )


def run(options: OperatorOptions) -> None:
    from blueque_operator.app import serve  # Kopf and the clients load only to run

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Kopf says "Handler ... succeeded" for every watch event: thousands of lines an hour that
    # say nothing (the operator logs what it does itself); its failures still show.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    code = 1
    try:
        asyncio.new_event_loop().run_until_complete(serve(options))
        logging.getLogger("blueque_operator").info("stopped")
        code = 0
    except KeyboardInterrupt:  # before serve() handles SIGINT itself
        code = 130
    except Exception:
        logging.getLogger("blueque_operator").exception("the operator failed")
    finally:
        # serve() closed all the operator owns. What may be left are Kubernetes calls in worker
        # threads (the client is synchronous): nobody awaits them, yet Python would wait for
        # each at exit (asyncio.run too), up to its timeout and retries: 40 s for a GET to an
        # API server that answers nothing, past the pod's grace period.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def parse_options(args: Sequence[str]) -> OperatorOptions:
    """The options `args` stand for, without running anything (click's errors propagate)."""
    with command.make_context("blueque-operator", list(args)) as ctx:
        return _options(**ctx.params)


def main(argv: Sequence[str] | None = None) -> None:
    command.main(args=None if argv is None else list(argv), prog_name="blueque-operator")
