"""Assembly: the Kubernetes client, the Lease, the metrics endpoint, Kopf and the fleet."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket

import kopf

from blueque_operator.controller import Services
from blueque_operator.kube import Kube, load_api_client
from blueque_operator.leader import LeaderElector
from blueque_operator.metrics import Metrics
from blueque_operator.options import OperatorOptions
from blueque_operator.redis_link import RedisLinks
from blueque_operator.runtime import Fleet, configure_kopf, registry_for
from blueque_operator.world import World

log = logging.getLogger("blueque_operator")


def identity() -> str:
    """This replica's name in the Lease: the pod's name (its hostname) and a random suffix,
    so that a restarted container never inherits its predecessor's leadership."""
    return f"{os.environ.get('POD_NAME') or socket.gethostname()}-{secrets.token_hex(3)}"


async def serve(options: OperatorOptions, stop: asyncio.Event | None = None) -> None:
    """Runs the operator until SIGTERM/SIGINT (Kopf's handlers) or `stop` is set."""
    api = load_api_client()
    metrics = Metrics()
    elector = LeaderElector(
        api,
        options.lease_namespace,
        options.lease_name,
        identity(),
        on_change=metrics.set_leader,
    )
    server = metrics.serve(options.metrics_port) if options.metrics_port else None
    services = Services(
        kube=Kube(api, gate=elector.check),
        world=World(),
        links=RedisLinks(),
        metrics=metrics,
        is_leader=lambda: elector.is_leader,
    )
    fleet = Fleet(services)
    stop_flag = stop if stop is not None else asyncio.Event()
    elector_stop = asyncio.Event()
    elector_task = asyncio.create_task(elector.run(elector_stop), name="leader election")

    async def step_down() -> None:  # the Lease goes to a successor at once, not in 15 s
        elector_stop.set()
        await asyncio.gather(elector_task, return_exceptions=True)

    try:
        await kopf.operator(
            registry=registry_for(fleet, configure_kopf, step_down),
            clusterwide=options.all_namespaces,
            namespaces=list(options.namespaces),
            standalone=True,
            stop_flag=stop_flag,
        )
    finally:
        await fleet.close()
        await step_down()
        await services.links.close()
        api.close()
        if server is not None:
            server.close()
