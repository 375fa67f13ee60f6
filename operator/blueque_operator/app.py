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

STOP_STEP_S = 2.0
"""How long a stopping operator waits for its loops to end, then for the Lease's release (each
takes milliseconds); past it, it goes on (and the Lease expires, as after a crash)."""


def identity() -> str:
    """This replica's name in the Lease: the pod's name (its hostname) and a random suffix,
    so that a restarted container never inherits its predecessor's leadership."""
    return f"{os.environ.get('POD_NAME') or socket.gethostname()}-{secrets.token_hex(3)}"


async def serve(options: OperatorOptions, stop: asyncio.Event | None = None) -> None:
    """Runs the operator until SIGTERM/SIGINT or `stop` is set. Then it stops acting at once:
    the fleet's loops end, the Lease is released (a successor takes over at once) or, if the
    API server does not answer within STOP_STEP_S, left to expire; Kopf's watches end after
    that (`run_kopf`)."""
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
        if not await _within(asyncio.ensure_future(fleet.close()), STOP_STEP_S):
            log.warning("BlueQueue loops still running after %g s: going on", STOP_STEP_S)
        elector_stop.set()  # it steps down, then releases the Lease
        if not await _within(elector_task, STOP_STEP_S):
            log.warning("the Lease was not released within %g s: it will expire", STOP_STEP_S)

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


async def _within(task: asyncio.Future[None], timeout_s: float) -> bool:
    """Whether `task` ended within `timeout_s`; if not, it is cancelled (not awaited: whatever
    holds it may not let go)."""
    if (await asyncio.wait({task}, timeout=timeout_s))[0]:
        return True
    task.cancel()
    return False
