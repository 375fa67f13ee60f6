"""Assembly: the Kubernetes client, the Lease, the metrics endpoint, Kopf and the fleet."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket

from blueque_operator.controller import Services
from blueque_operator.kube import Kube, load_api_client
from blueque_operator.leader import LeaderElector
from blueque_operator.metrics import Metrics
from blueque_operator.options import OperatorOptions
from blueque_operator.redis_link import RedisLinks
from blueque_operator.runtime import Fleet, configure_kopf, registry_for, run_kopf
from blueque_operator.world import World

log = logging.getLogger("blueque_operator")

RELEASE_WITHIN_S = 2.0
"""How long a stopping operator tries to hand the Lease over (an answer takes milliseconds);
then it leaves the Lease to expire, as a crash would."""


def identity() -> str:
    """This replica's name in the Lease: the pod's name (its hostname) and a random suffix,
    so that a restarted container never inherits its predecessor's leadership."""
    return f"{os.environ.get('POD_NAME') or socket.gethostname()}-{secrets.token_hex(3)}"


async def serve(options: OperatorOptions, stop: asyncio.Event | None = None) -> None:
    """Runs the operator until SIGTERM/SIGINT or `stop` is set. Then it stops acting at once:
    the fleet's loops end, the Lease is released (a successor takes over at once) or, if the
    API server does not answer within RELEASE_WITHIN_S, left to expire; Kopf's watches end
    after that (`run_kopf`)."""
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
    elector_stop = asyncio.Event()
    elector_task = asyncio.create_task(elector.run(elector_stop), name="leader election")

    async def stop_acting() -> None:
        await fleet.close()
        elector_stop.set()  # it steps down, then releases the Lease
        if not (await asyncio.wait({elector_task}, timeout=RELEASE_WITHIN_S))[0]:
            log.warning("the Lease was not released within %g s: it will expire", RELEASE_WITHIN_S)
            elector_task.cancel()
            await asyncio.gather(elector_task, return_exceptions=True)

    try:
        await run_kopf(
            registry_for(fleet, configure_kopf),
            clusterwide=options.all_namespaces,
            namespaces=options.namespaces,
            stop=stop if stop is not None else asyncio.Event(),
            on_stop=stop_acting,
        )
    finally:
        await stop_acting()  # done already, unless Kopf failed to start
        await services.links.close()
        api.close()
        if server is not None:
            server.close()
