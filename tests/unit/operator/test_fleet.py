"""The fleet of per-BlueQueue controllers: once closed (the operator stopping), the events Kopf
still delivers start nothing."""

from __future__ import annotations

import asyncio

from blueque_operator.controller import Services
from blueque_operator.kube import Kube
from blueque_operator.metrics import Metrics
from blueque_operator.redis_link import RedisLinks
from blueque_operator.runtime import Fleet
from blueque_operator.world import World


def _bluequeue(name: str) -> dict[str, object]:
    meta = {"namespace": "ns", "name": name, "uid": f"uid-{name}", "generation": 1}
    return {"apiVersion": "blueque.io/v1alpha1", "kind": "BlueQueue", "metadata": meta}


def test_a_closed_fleet_starts_no_controller() -> None:
    async def scenario() -> tuple[list[str], list[str]]:
        services = Services(
            kube=Kube(api=None),
            world=World(),
            links=RedisLinks(),
            metrics=Metrics(process_metrics=False),
            is_leader=lambda: False,  # no tick: only the loops' lifecycle matters here
        )
        fleet = Fleet(services)
        fleet.bluequeue_seen("ADDED", _bluequeue("before"))
        started = sorted(fleet.controllers)
        await fleet.close()
        fleet.bluequeue_seen("ADDED", _bluequeue("after"))
        return started, sorted(fleet.controllers)

    assert asyncio.run(scenario()) == (["uid-before"], [])
