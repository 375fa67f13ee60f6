"""Leader election between operator replicas, on a real Lease of the real API server.

Short settings: a 3 s Lease renewed every 0.5 s, and a holder that stops acting 1 s before its
Lease can expire. Each replica has its own `kubernetes` ApiClient, as separate processes would.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from blueque_operator.errors import NotLeaderError
from blueque_operator.leader import LeaderElector
from devtools.localkube import ApiClient

pytestmark = pytest.mark.kube

DURATION_S = 3.0
RENEW_S = 0.5
MARGIN_S = 1.0


class RecordingApi(kubernetes.client.ApiClient):
    """An ApiClient that remembers the spec of every Lease write the server accepted."""

    def __init__(self, configuration: Any) -> None:
        super().__init__(configuration)
        self.written: list[dict[str, Any]] = []

    def call_api(self, *args: Any, **kwargs: Any) -> Any:
        method: str = args[0]
        body: Any = args[3] if len(args) > 3 else kwargs.get("body")
        response = super().call_api(*args, **kwargs)
        if method in ("POST", "PUT") and response.status in (200, 201):
            self.written.append(body["spec"])
        return response


@pytest.fixture
def apis(kubeconfig: Path) -> Iterator[list[RecordingApi]]:
    """A fresh client per replica (two of them), closed afterwards."""
    made: list[RecordingApi] = []
    try:
        for _ in range(2):
            config = kubernetes.client.Configuration()
            kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=str(kubeconfig), client_configuration=config
            )
            made.append(RecordingApi(config))
        yield made
    finally:
        for api in made:
            api.close()  # type: ignore[no-untyped-call]


class Replica:
    """One elector running in a task, with the moments (time.monotonic) it gained and lost."""

    def __init__(self, api: RecordingApi, namespace: str, identity: str) -> None:
        self.changes: list[tuple[bool, float]] = []
        self.peer: Replica | None = None
        self.peer_leading: list[bool] = []  # whether the peer led at each change of ours
        self.elector = LeaderElector(
            api,
            namespace,
            identity=identity,
            lease_duration_s=DURATION_S,
            renew_every_s=RENEW_S,
            margin_s=MARGIN_S,
            on_change=self._changed,
        )
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(self.elector.run(self.stop))

    def _changed(self, leading: bool) -> None:
        self.changes.append((leading, time.monotonic()))
        if self.peer is not None:
            self.peer_leading.append(self.peer.elector.is_leader)

    async def close(self) -> None:
        self.stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(self.task, timeout=10)


@contextlib.asynccontextmanager
async def replicas(apis: list[RecordingApi], namespace: str) -> AsyncIterator[list[Replica]]:
    started = [Replica(api, namespace, f"replica-{i}") for i, api in enumerate(apis)]
    started[0].peer, started[1].peer = started[1], started[0]
    try:
        yield started
    finally:
        for replica in started:
            await replica.close()


async def first_leader(group: list[Replica], timeout_s: float = 10) -> Replica:
    waits = {asyncio.create_task(r.elector.wait_leader()): r for r in group}
    done, pending = await asyncio.wait(
        waits, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
    )
    for task in pending:
        task.cancel()
    assert done, "no replica became leader"
    return waits[done.pop()]


def lease(kube: ApiClient, namespace: str) -> dict[str, Any]:
    spec: dict[str, Any] = kube.get(
        f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/blueque-operator"
    )["spec"]
    return spec


def wall(micro_time: str) -> float:
    return datetime.strptime(micro_time, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()


def test_exactly_one_of_two_leads(
    apis: list[RecordingApi], kube_namespace: str, kube_admin: ApiClient
) -> None:
    async def scenario() -> None:
        async with replicas(apis, kube_namespace) as (a, b):
            leader = await first_leader([a, b])
            other = b if leader is a else a
            leader.elector.check()
            # The other keeps polling (several rounds, one Lease duration) and never leads.
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(other.elector.wait_leader(), timeout=DURATION_S + 1)
            assert leader.elector.is_leader and not other.elector.is_leader
            with pytest.raises(NotLeaderError):
                other.elector.check()
            assert other.elector.holder == leader.elector.identity
            spec = lease(kube_admin, kube_namespace)
            assert spec["holderIdentity"] == leader.elector.identity
            assert spec["leaseDurationSeconds"] == 3
            assert spec["leaseTransitions"] == 0
            assert [leading for leading, _ in other.changes] == []
            assert [leading for leading, _ in leader.changes] == [True]

    asyncio.run(scenario())


def test_a_clean_stop_hands_over_at_once(
    apis: list[RecordingApi], kube_namespace: str, kube_admin: ApiClient
) -> None:
    async def scenario() -> float:
        async with replicas(apis, kube_namespace) as group:
            leader = await first_leader(group)
            other = next(r for r in group if r is not leader)
            stopped = time.monotonic()
            await leader.close()
            assert not leader.elector.is_leader
            api = leader.elector.api
            assert isinstance(api, RecordingApi)
            assert "holderIdentity" not in api.written[-1]  # released, not left to expire
            assert [leading for leading, _ in leader.changes] == [True, False]
            await asyncio.wait_for(other.elector.wait_leader(), timeout=DURATION_S)
            took_over = other.changes[0][1] - stopped
            spec = lease(kube_admin, kube_namespace)
            assert spec["holderIdentity"] == other.elector.identity
            assert spec["leaseTransitions"] == 1
            return took_over

    took_over = asyncio.run(scenario())
    # Well before the Lease could have expired: the release cleared its holder.
    assert took_over < 2 * RENEW_S + 1.0, took_over


def test_a_crashed_leader_is_replaced_once_its_lease_expires(
    apis: list[RecordingApi], kube_namespace: str, kube_admin: ApiClient
) -> None:
    async def scenario() -> None:
        async with replicas(apis, kube_namespace) as group:
            leader = await first_leader(group)
            other = next(r for r in group if r is not leader)
            crashed_wall = time.time()
            leader.task.cancel()  # no release: what a killed process leaves behind
            with contextlib.suppress(asyncio.CancelledError):
                await leader.task
            assert not leader.elector.is_leader
            await asyncio.wait_for(other.elector.wait_leader(), timeout=DURATION_S + 3)
            took_over_wall = time.time()
            api = leader.elector.api
            assert isinstance(api, RecordingApi)
            last_renewal = wall(api.written[-1]["renewTime"])
            # Not before the Lease expired (one duration after the crashed leader's last
            # renewal), and not much after.
            assert took_over_wall >= last_renewal + DURATION_S
            assert took_over_wall - crashed_wall < DURATION_S + 2 * RENEW_S + 1.0
            spec = lease(kube_admin, kube_namespace)
            assert spec["holderIdentity"] == other.elector.identity
            assert spec["leaseTransitions"] == 1

    asyncio.run(scenario())


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_a_cut_off_leader_stops_acting_before_another_takes_over(
    apis: list[RecordingApi], kube_namespace: str, kube_admin: ApiClient
) -> None:
    async def scenario() -> None:
        async with replicas(apis, kube_namespace) as group:
            leader = await first_leader(group)
            other = next(r for r in group if r is not leader)
            # The leader's API server becomes unreachable (connections refused).
            api = leader.elector.api
            real_host = api.configuration.host
            api.configuration.host = f"https://127.0.0.1:{_closed_port()}"
            cut = time.monotonic()
            await asyncio.wait_for(leader.elector.wait_not_leader(), timeout=DURATION_S)
            lost = time.monotonic()
            with pytest.raises(NotLeaderError):
                leader.elector.check()
            await asyncio.wait_for(other.elector.wait_leader(), timeout=DURATION_S + 3)
            # The old leader had stepped down when the new one took over.
            assert other.peer_leading == [False]
            assert lost - cut <= DURATION_S - MARGIN_S + 0.5
            # Reconnected, it finds the Lease taken and stays a follower.
            api.configuration.host = real_host
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(leader.elector.wait_leader(), timeout=DURATION_S)
            assert leader.elector.holder == other.elector.identity
            assert lease(kube_admin, kube_namespace)["holderIdentity"] == other.elector.identity

    asyncio.run(scenario())
