"""Leader election rules on a fake clock, against an in-memory Lease endpoint.

The fake answers the elector's raw calls (`param_serialize` / `call_api`) as the API server
would: GET, POST and PUT on one Lease, with a resourceVersion checked on every PUT (409 on a
stale one). tests/kube/test_kube_leader.py runs the same elector on the real API server.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import json
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import Any, cast

import kubernetes
import pytest
import urllib3

from blueque.errors import ConfigError
from blueque_operator.errors import NotLeaderError, OperatorError
from blueque_operator.leader import (
    Action,
    LeaderElector,
    LeaseRecord,
    decide,
    default_identity,
    leader_until,
)

NS = "ops"
PATH = f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases"
DURATION_S = 15.0
RENEW_S = 2.0
MARGIN_S = 5.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Response:
    def __init__(self, status: int, body: Any) -> None:
        self.status = status
        self._data = json.dumps(body).encode()

    def read(self) -> bytes:
        return self._data


class LeaseServer:
    """One namespace's Leases endpoint; `fail` makes the next calls of every client fail."""

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.version = 0
        self.fail: Callable[[], Response] | None = None
        self.calls: list[str] = []

    def handle(self, method: str, path: str, body: Any) -> Response:
        self.calls.append(method)
        if self.fail is not None:
            return self.fail()
        if method == "GET":
            if self.lease is None:
                return Response(404, {"kind": "Status", "reason": "NotFound"})
            return Response(200, self.lease)
        if method == "POST":
            assert path == PATH
            if self.lease is not None:
                return Response(409, {"reason": "AlreadyExists"})
            return self._store(body)
        assert method == "PUT" and path == f"{PATH}/blueque-operator"
        if self.lease is None:
            return Response(404, {"reason": "NotFound"})
        if body["metadata"].get("resourceVersion") != self.lease["metadata"]["resourceVersion"]:
            return Response(409, {"reason": "Conflict"})
        return self._store(body)

    def _store(self, body: Any) -> Response:
        self.version += 1
        self.lease = copy.deepcopy(body)
        self.lease["metadata"]["resourceVersion"] = str(self.version)
        return Response(200, self.lease)

    @property
    def spec(self) -> dict[str, Any]:
        assert self.lease is not None
        spec: dict[str, Any] = self.lease["spec"]
        return spec


class FakeApi:
    """What the elector uses of `kubernetes.client.ApiClient`."""

    def __init__(self, server: LeaseServer) -> None:
        self.server = server

    def param_serialize(self, **kwargs: Any) -> tuple[Any, ...]:
        return (kwargs["method"], kwargs["resource_path"], {}, kwargs["body"], [])

    def call_api(self, method: str, path: str, headers: Any, body: Any, post: Any, **_: Any) -> Any:
        return self.server.handle(method, path, copy.deepcopy(body))


def elector(server: LeaseServer, identity: str, clock: FakeClock, **kwargs: Any) -> LeaderElector:
    api = cast(kubernetes.client.ApiClient, FakeApi(server))
    settings: dict[str, Any] = {
        "lease_duration_s": DURATION_S,
        "renew_every_s": RENEW_S,
        "margin_s": MARGIN_S,
        "clock": clock,
    }
    return LeaderElector(api, NS, identity=identity, **(settings | kwargs))


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(scenario())


# -- the rules --------------------------------------------------------------------------------


def record(holder: str | None, exists: bool = True) -> LeaseRecord:
    return LeaseRecord(holder, DURATION_S, 0, None, None, exists=exists)


def test_decide() -> None:
    assert decide(None, "me", 0, 0) is Action.CREATE
    assert decide(record("me"), "me", 0, 0) is Action.RENEW
    assert decide(record(None), "me", 0, 0) is Action.TAKE  # released
    assert decide(record("them"), "me", 100, 114.9) is Action.WAIT
    assert decide(record("them"), "me", 100, 115) is Action.TAKE
    # A deleted Lease: its holder re-creates it; anyone else waits for it to expire.
    assert decide(record("me", exists=False), "me", 100, 100) is Action.CREATE
    assert decide(record("them", exists=False), "me", 100, 114.9) is Action.WAIT
    assert decide(record("them", exists=False), "me", 100, 115) is Action.CREATE


def test_a_holder_stops_a_margin_before_its_lease_can_expire() -> None:
    assert leader_until(sent_at=100, lease_duration_s=15, margin_s=5) == 110


def test_lease_record_from_the_api_object() -> None:
    lease = {"spec": {"holderIdentity": "", "leaseTransitions": 3}}
    assert LeaseRecord.from_lease(lease, 15) == LeaseRecord(None, 15, 3, None, None)
    lease = {"spec": {"holderIdentity": "x", "leaseDurationSeconds": 7, "renewTime": "t"}}
    assert LeaseRecord.from_lease(lease, 15) == LeaseRecord("x", 7, 0, None, "t")


def test_settings_are_checked() -> None:
    server, clock = LeaseServer(), FakeClock()
    with pytest.raises(ConfigError):  # renewing no faster than the leader's window closes
        elector(server, "a", clock, renew_every_s=10)
    with pytest.raises(ConfigError):
        elector(server, "a", clock, margin_s=-1)
    assert elector(server, "a", clock, margin_s=None).margin_s == DURATION_S / 3
    assert default_identity() != default_identity()


def test_not_leader_error_is_an_operator_error_and_a_runtime_error() -> None:
    assert issubclass(NotLeaderError, OperatorError)
    assert issubclass(NotLeaderError, RuntimeError)


# -- two replicas on a fake clock --------------------------------------------------------------


def test_takeover_only_after_the_lease_expired_on_the_followers_clock() -> None:
    server, clock = LeaseServer(), FakeClock()
    changes: list[tuple[str, bool]] = []
    a = elector(server, "a", clock, on_change=lambda leading: changes.append(("a", leading)))
    b = elector(server, "b", clock, on_change=lambda leading: changes.append(("b", leading)))

    async def scenario() -> None:
        with pytest.raises(NotLeaderError):
            a.check()
        assert await a.attempt() == RENEW_S
        a.check()
        await asyncio.wait_for(a.wait_leader(), 1)
        assert server.spec["holderIdentity"] == "a"
        assert server.spec["leaseTransitions"] == 0
        await b.attempt()  # b sees a's Lease now (t = 1000) and starts counting
        assert not b.is_leader and b.holder == "a"
        # a renews for a while: each renewal is a change b sees, restarting its count.
        for _ in range(3):
            clock.now += RENEW_S
            await a.attempt()
            await b.attempt()
            assert a.is_leader and not b.is_leader
        assert server.calls.count("GET") == 1 + 4  # a's first round, then b's rounds only
        # a goes silent at t = 1006 (last renewal sent then; b saw it then too).
        clock.now += DURATION_S - MARGIN_S - 0.5
        assert a.is_leader
        clock.now += 0.5
        assert not a.is_leader  # stopped acting: nobody may take over for 5 s more
        with pytest.raises(NotLeaderError):
            a.check()
        clock.now += MARGIN_S - 0.5
        await b.attempt()
        assert not b.is_leader and server.spec["holderIdentity"] == "a"
        clock.now += 0.5
        await b.attempt()
        assert b.is_leader and server.spec["holderIdentity"] == "b"
        assert server.spec["leaseTransitions"] == 1
        # a comes back: its renewal is refused (409), it re-reads and follows.
        await a.attempt()
        assert not a.is_leader and a.holder == "b"
        await asyncio.wait_for(a.wait_not_leader(), 1)

    run(scenario)
    assert changes == [("a", True), ("b", True), ("a", False)]


def test_the_holders_wall_clock_does_not_matter() -> None:
    """A Lease stamped by a holder whose clock is far off (years ahead, or behind) expires
    after one duration of the follower's own time, neither sooner nor later."""
    for stamp in ("2001-01-01T00:00:00.000000Z", "2099-01-01T00:00:00.000000Z"):
        server, clock = LeaseServer(), FakeClock()
        spec = {"holderIdentity": "ghost", "leaseDurationSeconds": 15, "renewTime": stamp}
        server.lease = {"metadata": {"name": "blueque-operator", "resourceVersion": "7"}}
        server.lease["spec"] = spec
        b = elector(server, "b", clock)

        async def scenario(b: LeaderElector = b, clock: FakeClock = clock) -> None:
            await b.attempt()
            clock.now += DURATION_S - 0.5
            await b.attempt()
            assert not b.is_leader
            clock.now += 0.5
            await b.attempt()
            assert b.is_leader

        run(scenario)
        assert server.spec["holderIdentity"] == "b"


def test_two_replicas_racing_for_a_free_lease_one_wins() -> None:
    server, clock = LeaseServer(), FakeClock()
    a, b = elector(server, "a", clock), elector(server, "b", clock)

    async def scenario() -> None:
        await asyncio.gather(a.attempt(), b.attempt())
        assert [a.is_leader, b.is_leader].count(True) == 1
        leader = a if a.is_leader else b
        assert server.spec["holderIdentity"] == leader.identity

    run(scenario)


def test_release_on_stop_lets_the_follower_take_over_at_once() -> None:
    server, clock = LeaseServer(), FakeClock()
    a, b = elector(server, "a", clock), elector(server, "b", clock)

    async def scenario() -> None:
        await a.attempt()
        await b.attempt()
        stop = asyncio.Event()
        stop.set()
        await a.run(stop)  # already stopped: only the release
        assert not a.is_leader
        assert "holderIdentity" not in server.spec
        await b.attempt()  # no time has passed on b's clock
        assert b.is_leader
        assert server.spec["leaseTransitions"] == 1

    run(scenario)


def test_a_deleted_lease_is_recreated_by_its_holder_and_not_by_the_follower() -> None:
    server, clock = LeaseServer(), FakeClock()
    a, b = elector(server, "a", clock), elector(server, "b", clock)

    async def scenario() -> None:
        await a.attempt()
        await b.attempt()
        server.lease = None  # kubectl delete lease
        await b.attempt()
        assert not b.is_leader and server.lease is None
        clock.now += RENEW_S
        await a.attempt()
        assert a.is_leader and server.spec["holderIdentity"] == "a"
        # Had a died with its Lease, b would create one once a's would have expired.
        server.lease = None
        clock.now += RENEW_S
        await b.attempt()  # sees the deletion now
        assert server.lease is None
        clock.now += DURATION_S
        await b.attempt()
        assert b.is_leader and server.spec["holderIdentity"] == "b"

    run(scenario)


# -- errors -----------------------------------------------------------------------------------


def refused(status: int) -> Callable[[], Response]:
    return lambda: Response(status, {"kind": "Status", "message": f"status {status}"})


def unreachable() -> Response:
    raise urllib3.exceptions.MaxRetryError(
        cast(Any, None), "/leases", urllib3.exceptions.NewConnectionError(cast(Any, None), "no")
    )


@pytest.mark.parametrize(
    ("failure", "logged"),
    [
        (refused(403), "needs get, create and update on leases"),
        (refused(503), "HTTP 503: status 503"),
        (unreachable, "API server unreachable"),
    ],
    ids=["forbidden", "unavailable", "unreachable"],
)
def test_api_errors_are_logged_and_retried_with_backoff(
    failure: Callable[[], Response], logged: str, caplog: pytest.LogCaptureFixture
) -> None:
    server, clock = LeaseServer(), FakeClock()
    server.fail = failure
    b = elector(server, "b", clock)

    async def attempts() -> list[float]:
        return [await b.attempt() for _ in range(6)]

    with caplog.at_level(logging.WARNING, "blueque_operator.leader"):
        delays = asyncio.run(attempts())
    # Doubling from the renewal period, capped at half the Lease duration.
    assert delays == [2.0, 4.0, 7.5, 7.5, 7.5, 7.5]
    assert len(caplog.records) == 6 and not b.is_leader
    assert logged in caplog.records[0].getMessage()
    server.fail = None
    asyncio.run(b.attempt())
    assert b.is_leader


def test_a_leader_that_cannot_renew_keeps_trying_at_its_pace_and_steps_down() -> None:
    server, clock = LeaseServer(), FakeClock()
    changes: list[bool] = []
    a = elector(server, "a", clock, on_change=changes.append)

    async def scenario() -> None:
        await a.attempt()
        server.fail = refused(500)
        for _ in range(4):
            clock.now += RENEW_S
            assert await a.attempt() == RENEW_S  # no back-off while it still leads
        assert a.is_leader
        clock.now += RENEW_S
        assert not a.is_leader  # 10 s after the last renewal was sent
        # The timer (on the loop's clock) reports the loss; here it is run by hand.
        a._check_expiry()
        assert changes == [True, False]
        # Now backing off (the failures while it led count): capped at half the duration.
        assert await a.attempt() == DURATION_S / 2

    run(scenario)


def test_unexpected_errors_and_faulty_callbacks_do_not_stop_the_election(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server, clock = LeaseServer(), FakeClock()

    def faulty(leading: bool) -> None:
        raise ValueError("observer bug")

    a = elector(server, "a", clock, on_change=faulty)
    server.fail = lambda: Response(200, ["not", "a", "lease"])

    async def scenario() -> None:
        await a.attempt()  # a bug in the answer's handling: logged, not raised
        assert not a.is_leader
        server.fail = None
        await a.attempt()
        assert a.is_leader

    with caplog.at_level(logging.ERROR, "blueque_operator.leader"):
        run(scenario)
    messages = [r.getMessage() for r in caplog.records]
    assert any("unexpected error" in m for m in messages)
    assert any("callback failed" in m for m in messages)


def test_renewals_do_not_queue_behind_the_operators_other_api_calls() -> None:
    """The operator's Kubernetes writes run in the default executor (`asyncio.to_thread`); a
    burst of them (200 BlueQueues created at once, 600 pods annotated) must not hold a renewal
    back until the Lease is lost."""
    server, clock = LeaseServer(), FakeClock()
    a = elector(server, "a", clock, request_timeout_s=0.2)

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(max_workers=2))
        release = threading.Event()
        busy = [asyncio.create_task(asyncio.to_thread(release.wait, 10)) for _ in range(4)]
        try:
            await asyncio.sleep(0.05)  # every default worker thread is taken
            await a.attempt()
            assert a.is_leader, "the renewal waited for the default executor"
        finally:
            release.set()
            await asyncio.gather(*busy)
            a.close()

    run(scenario)


# -- cancellation ---------------------------------------------------------------------------


async def _blocked(task: asyncio.Task[Any]) -> None:
    """Lets `task` run until it waits (a few turns: a wait may start a task of its own)."""
    for _ in range(5):
        await asyncio.sleep(0)
    assert not task.done()


def test_a_run_cancelled_in_the_turn_it_is_told_to_stop_leaves_the_lease_to_expire() -> None:
    """Cancelling `run` leaves the Lease to expire, as a crash would, even when its stop event
    is set in the same turn: on Python 3.11 `asyncio.wait_for` returned the set event, dropped
    the cancellation, and the elector released the Lease."""
    server, clock = LeaseServer(), FakeClock()
    a = elector(server, "a", clock)

    async def scenario() -> None:
        stop = asyncio.Event()
        running = asyncio.create_task(a.run(stop))
        await a.wait_leader()
        await _blocked(running)  # waiting for its next renewal
        stop.set()
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
        assert server.spec["holderIdentity"] == "a"
        assert server.calls == ["GET", "POST"]  # no release

    run(scenario)


def test_an_attempt_cancelled_in_the_turn_its_request_is_answered_writes_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A Lease call's answer arrives in the turn the elector is cancelled: the cancellation
    wins. On Python 3.11 `asyncio.wait_for` returned the answer and dropped the cancellation:
    the attempt went on (and `run` with it, renewing a Lease it was told to let expire)."""
    server, clock = LeaseServer(), FakeClock()
    a = elector(server, "a", clock)

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        held: list[tuple[asyncio.Future[Any], Callable[[], Any]]] = []
        asked = asyncio.Event()

        def in_executor(executor: Any, call: Callable[..., Any], *args: Any) -> Any:
            """The first call is held until the test answers it; later ones answer at once."""
            future = loop.create_future()
            if held:
                future.set_result(call(*args))
            else:
                held.append((future, lambda: call(*args)))
                asked.set()
            return future

        monkeypatch.setattr(loop, "run_in_executor", in_executor)
        attempt = asyncio.create_task(a.attempt())
        await asked.wait()
        await _blocked(attempt)
        future, call = held[0]
        future.set_result(call())  # the GET is answered...
        attempt.cancel()  # ...in the turn the elector is cancelled
        with pytest.raises(asyncio.CancelledError):
            await attempt
        assert server.calls == ["GET"]
        assert not a.is_leader
        a.close()

    run(scenario)
