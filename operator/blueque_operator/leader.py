"""Leader election on a `coordination.k8s.io/v1` Lease: of the operator's replicas, one acts.

Kopf's peering cannot do this (it pauses replicas of equal priority, and one Deployment gives
them all the same one), so the operator runs Kopf standalone and gates every write on
`LeaderElector.check()`.

The rules are client-go's. The holder rewrites `renewTime` every `renew_every_s`; every write
carries the `resourceVersion` it read, so of two replicas writing at once the API server accepts
one and answers 409 to the other. A follower takes the Lease over when it is free (no holder: a
clean release) or when it has not changed for `leaseDurationSeconds` as measured on the
follower's own monotonic clock from the moment the follower saw it change: the replicas' wall
clocks are never compared, so skew between nodes does not matter (only their rates).

The holder counts itself leader until `sent + lease_duration_s - margin_s`, where `sent` is when
it sent its last successful write. The follower's clock starts no earlier than the server's write,
which came after `sent`, so a holder cut off from the API server stops acting at least `margin_s`
before anyone can take over; the margin covers writes already in flight when the holder stops and
the difference of the clocks' rates.

`run(stop)` releases the Lease when `stop` is set (the next replica takes over within one
`renew_every_s`). Cancelling the task instead is a crash: nothing is released and the others wait
for the Lease to expire. API errors (network, 5xx, 403) are logged and retried with back-off;
the elector never raises them.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import math
import secrets
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import kubernetes
import urllib3

from blueque.aio.waiting import wait_event
from blueque.errors import ConfigError
from blueque_operator.errors import NotLeaderError

log = logging.getLogger("blueque_operator.leader")

Json = dict[str, Any]

LEASE_NAME = "blueque-operator"
LEASES_PATH = "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"


def default_identity() -> str:
    """This process's holder identity: the host name (the pod's name in Kubernetes) and a random
    suffix, so a restarted container never mistakes its predecessor's Lease for its own."""
    return f"{socket.gethostname()}-{secrets.token_hex(4)}"


@dataclass(frozen=True)
class LeaseRecord:
    """The part of a Lease's spec that election reads; two equal records mean "no change"."""

    holder: str | None
    duration_s: float
    transitions: int
    acquire_time: str | None
    renew_time: str | None
    exists: bool = True
    """False once the Lease was deleted: its last holder is remembered until it expires."""

    @classmethod
    def from_lease(cls, lease: Json, default_duration_s: float) -> LeaseRecord:
        spec = lease.get("spec") or {}
        duration = spec.get("leaseDurationSeconds")
        return cls(
            holder=spec.get("holderIdentity") or None,
            duration_s=float(duration) if duration and duration > 0 else default_duration_s,
            transitions=int(spec.get("leaseTransitions") or 0),
            acquire_time=spec.get("acquireTime"),
            renew_time=spec.get("renewTime"),
        )


class Action(enum.Enum):
    CREATE = "create"
    """No Lease yet: create it, holding it."""
    TAKE = "take"
    """Free or expired: take it over (a new transition)."""
    RENEW = "renew"
    """Ours: renew it."""
    WAIT = "wait"
    """Another replica holds it and it has not expired."""


def decide(record: LeaseRecord | None, identity: str, observed_at: float, now: float) -> Action:
    """What a replica named `identity` does at `now` with the Lease `record` (None: it has seen
    none), which it saw change at `observed_at` (both on its own clock)."""
    if record is None:
        return Action.CREATE
    free = record.holder in (None, identity) or now >= observed_at + record.duration_s
    if not free:
        return Action.WAIT
    if not record.exists:
        return Action.CREATE
    return Action.RENEW if record.holder == identity else Action.TAKE


def leader_until(sent_at: float, lease_duration_s: float, margin_s: float) -> float:
    """Until when a holder whose last successful write was sent at `sent_at` may act."""
    return sent_at + lease_duration_s - margin_s


class _RefusedError(Exception):
    """The API server answered with a status election does not handle (403, 5xx...)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


# What a call can raise when the server is unreachable or slow; anything else is a bug.
_TRANSPORT_ERRORS = (
    kubernetes.client.ApiException,
    urllib3.exceptions.HTTPError,
    OSError,
    TimeoutError,
)


class LeaderElector:
    """Elects one leader among the replicas that share a Lease (`namespace`/`name`)."""

    def __init__(
        self,
        api: kubernetes.client.ApiClient,
        namespace: str,
        name: str = LEASE_NAME,
        identity: str | None = None,
        *,
        lease_duration_s: float = 15.0,
        renew_every_s: float = 2.0,
        margin_s: float | None = None,
        request_timeout_s: float | None = None,
        on_change: Callable[[bool], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`margin_s` (default: a third of the lease duration) is how long before the Lease can
        expire a holder that cannot renew stops acting; `request_timeout_s` (default: the
        renewal period, at least 1 s) bounds each API call; `on_change(leading)` is called on
        every gain and loss of leadership."""
        margin = lease_duration_s / 3 if margin_s is None else margin_s
        if not 0 < renew_every_s < lease_duration_s - margin or margin < 0:
            raise ConfigError(
                "leader election needs 0 < renew_every_s < lease_duration_s - margin_s and"
                f" margin_s >= 0 (got {renew_every_s}, {lease_duration_s}, {margin})"
            )
        self.api = api
        self.namespace = namespace
        self.name = name
        self.identity = identity or default_identity()
        self.lease_duration_s = lease_duration_s
        self.renew_every_s = renew_every_s
        self.margin_s = margin
        self.request_timeout_s = request_timeout_s or max(1.0, renew_every_s)
        self._on_change = on_change
        self._clock = clock
        self._lease: Json | None = None  # the last Lease object read or written
        self._record: LeaseRecord | None = None
        self._observed_at = 0.0  # when self._record was first seen, on self._clock
        self._until: float | None = None  # leader until then (self._clock); None: follower
        self._expiry: asyncio.TimerHandle | None = None
        self._leading = asyncio.Event()
        self._following = asyncio.Event()
        self._following.set()
        self._errors = 0  # consecutive failed attempts
        self._running = False
        # A thread of its own for the Lease calls: the operator's other Kubernetes calls run
        # in the default executor, and a burst of them (hundreds of BlueQueues created, pods
        # annotated) would otherwise hold a renewal back until the Lease is lost.
        self._executor: ThreadPoolExecutor | None = None

    # -- state ---------------------------------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        """True while this replica's last successful renewal is recent enough to act on."""
        return self._until is not None and self._clock() < self._until

    @property
    def holder(self) -> str | None:
        """The holder identity last seen on the Lease (None: free or not read yet)."""
        return None if self._record is None else self._record.holder

    def check(self) -> None:
        """Raises `NotLeaderError` unless this replica may write now: call it before every write."""
        if not self.is_leader:
            raise NotLeaderError(
                f"{self.identity} does not hold Lease {self.namespace}/{self.name}"
                f" (holder: {self.holder or 'none'})"
            )

    async def wait_leader(self) -> None:
        """Returns once this replica leads (at once if it does)."""
        await self._leading.wait()

    async def wait_not_leader(self) -> None:
        """Returns once this replica no longer leads (at once if it does not)."""
        await self._following.wait()

    # -- the loop ------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Acquire, renew and, once `stop` is set, release the Lease. Cancelling this task instead
        leaves the Lease to expire (what a crash would do)."""
        if self._running:
            raise RuntimeError("LeaderElector.run() is already running")
        self._running = True
        try:
            while not stop.is_set():
                delay = await self.attempt()
                await wait_event(stop, delay)  # a cancellation in the turn stop is set wins
            await self._release()
        finally:
            self._step_down("the elector stopped", level=logging.INFO)
            self._running = False
            self.close()

    def close(self) -> None:
        """Ends the thread the Lease calls run in (`run` does it when it returns)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None

    async def attempt(self) -> float:
        """One acquire-or-renew round of `run` (which calls it in a loop); never raises. Returns
        the delay until the next round: the renewal period, or a back-off after an error."""
        try:
            await self._acquire_or_renew()
        except (*_TRANSPORT_ERRORS, _RefusedError) as exc:
            self._errors += 1
            delay = self._backoff_s()
            hint = ""
            if isinstance(exc, _RefusedError) and exc.status in (401, 403):
                hint = " (the operator needs get, create and update on leases in this namespace)"
            log.warning(
                "Lease %s/%s: %s%s; attempt %d failed, retrying in %.1f s",
                self.namespace,
                self.name,
                _describe(exc),
                hint,
                self._errors,
                delay,
            )
            return delay
        except Exception:  # a bug must not stop the election: log it loudly and go on
            self._errors += 1
            delay = self._backoff_s()
            log.exception("Lease %s/%s: unexpected error", self.namespace, self.name)
            return delay
        if self._errors:
            log.info("Lease %s/%s: API reachable again", self.namespace, self.name)
        self._errors = 0
        return self.renew_every_s

    def _backoff_s(self) -> float:
        if self.is_leader:  # a holder keeps trying to renew at its pace
            return self.renew_every_s
        cap = max(self.renew_every_s, self.lease_duration_s / 2)
        return min(cap, self.renew_every_s * 2.0 ** (self._errors - 1))

    async def _acquire_or_renew(self) -> None:
        # Renew from what we last wrote: one request, not two, while nobody else writes.
        mine = self._lease is not None and self.holder == self.identity
        if mine and await self._write(Action.RENEW, self._lease):
            return
        status, lease = await self._request("GET", self._path(self.name))
        if status == 404:
            lease = None
        elif status != 200:
            raise _RefusedError(status, _message(lease))
        self._observe(lease)
        action = decide(self._record, self.identity, self._observed_at, self._clock())
        if action is Action.WAIT:
            self._step_down(f"the Lease is held by {self.holder}")
            return
        await self._write(action, lease)

    async def _write(self, action: Action, lease: Json | None) -> bool:
        """Creates, takes or renews the Lease; False when another replica won (409 or gone)."""
        now = _micro_time()
        if action is Action.CREATE or lease is None:
            action = Action.CREATE
            body: Json = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": {"leaseTransitions": 0, "acquireTime": now},
            }
        else:
            body = {**lease, "spec": dict(lease.get("spec") or {})}
            if action is Action.TAKE:
                previous = LeaseRecord.from_lease(lease, self.lease_duration_s)
                body["spec"]["leaseTransitions"] = previous.transitions + 1
                body["spec"]["acquireTime"] = now
        body["spec"]["holderIdentity"] = self.identity
        body["spec"]["leaseDurationSeconds"] = math.ceil(self.lease_duration_s)
        body["spec"]["renewTime"] = now
        sent_at = self._clock()
        if action is Action.CREATE:
            status, answer = await self._request("POST", self._path(), body)
        else:
            status, answer = await self._request("PUT", self._path(self.name), body)
        if status in (404, 409):  # deleted, or written by someone else since we read it
            self._lease = None
            if action is not Action.RENEW:  # (a renewal that lost re-reads the Lease at once)
                self._step_down(f"{action.value} refused with HTTP {status}")
            log.info(
                "Lease %s/%s: %s lost a race (HTTP %d)",
                self.namespace,
                self.name,
                action.value,
                status,
            )
            return False
        if status not in (200, 201) or answer is None:
            raise _RefusedError(status, _message(answer))
        self._observe(answer)
        self._lead_until(leader_until(sent_at, self.lease_duration_s, self.margin_s), action)
        return True

    def _observe(self, lease: Json | None) -> None:
        self._lease = lease
        if lease is not None:
            record: LeaseRecord | None = LeaseRecord.from_lease(lease, self.lease_duration_s)
        elif self._record is not None and self._record.holder is not None:
            # Deleted under a holder: that holder may still be acting until it would have
            # expired, so a deletion counts as a change, not as a free Lease.
            record = replace(self._record, exists=False)
        else:
            record = None
        if record != self._record:
            holder = None if record is None else record.holder
            if holder != self.holder and holder != self.identity:
                log.info("Lease %s/%s: held by %s", self.namespace, self.name, holder or "nobody")
            self._record = record
            self._observed_at = self._clock()

    async def _release(self) -> None:
        """Clears the holder so a successor takes over at once (best effort: it may also expire)."""
        lease = self._lease
        if lease is None or self.holder != self.identity:
            return
        self._step_down("releasing the Lease", level=logging.INFO)  # no write may land after it
        spec = dict(lease.get("spec") or {})
        spec.pop("holderIdentity", None)
        spec["leaseDurationSeconds"] = 1
        spec["renewTime"] = spec["acquireTime"] = _micro_time()
        try:
            status, answer = await self._request(
                "PUT", self._path(self.name), {**lease, "spec": spec}
            )
        except _TRANSPORT_ERRORS as exc:
            log.warning(
                "Lease %s/%s: release failed (%s); it will expire",
                self.namespace,
                self.name,
                _describe(exc),
            )
            return
        if status == 200:
            log.info("Lease %s/%s released by %s", self.namespace, self.name, self.identity)
            self._observe(answer)
        else:
            log.info("Lease %s/%s: not released (HTTP %d)", self.namespace, self.name, status)

    # -- leadership transitions ----------------------------------------------------------------

    def _lead_until(self, until: float, action: Action) -> None:
        was_leader = self.is_leader
        self._until = until
        if self._expiry is not None:
            self._expiry.cancel()
        loop = asyncio.get_running_loop()
        self._expiry = loop.call_later(max(0.0, until - self._clock()), self._check_expiry)
        if not was_leader or not self._leading.is_set():
            log.info(
                "Lease %s/%s: %s leads (%s; transitions: %d)",
                self.namespace,
                self.name,
                self.identity,
                action.value,
                self._record.transitions if self._record else 0,
            )
            self._following.clear()
            self._leading.set()
            self._notify(True)

    def _check_expiry(self) -> None:
        self._expiry = None
        if not self.is_leader:
            self._step_down(f"no renewal succeeded in {self.lease_duration_s - self.margin_s:g} s")
        elif self._until is not None:  # renewed meanwhile on a clock the timer does not follow
            loop = asyncio.get_running_loop()
            self._expiry = loop.call_later(self._until - self._clock(), self._check_expiry)

    def _step_down(self, reason: str, level: int = logging.WARNING) -> None:
        """Stops leading; `level`: INFO for a stop asked for, WARNING for a loss."""
        self._until = None
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        if self._leading.is_set():
            log.log(
                level,
                "Lease %s/%s: %s stops leading: %s",
                self.namespace,
                self.name,
                self.identity,
                reason,
            )
            self._leading.clear()
            self._following.set()
            self._notify(False)

    def _notify(self, leading: bool) -> None:
        if self._on_change is None:
            return
        try:
            self._on_change(leading)
        except Exception:  # a faulty observer must not break the election
            log.exception("leader election callback failed")

    # -- transport -----------------------------------------------------------------------------

    def _path(self, name: str | None = None) -> str:
        path = LEASES_PATH.format(namespace=self.namespace)
        return path if name is None else f"{path}/{name}"

    async def _request(self, method: str, path: str, body: Json | None = None) -> tuple[int, Any]:
        # urllib3 may retry a refused connection or a timed-out read: bound the whole call.
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="lease")
        loop = asyncio.get_running_loop()
        call = loop.run_in_executor(self._executor, self._call, method, path, body)
        # Not asyncio.wait_for: on 3.11 it returns an answer that comes in the turn the task
        # is cancelled, and drops the cancellation (blueque.aio.waiting).
        async with asyncio.timeout(self.request_timeout_s * 2):
            return await call

    def _call(self, method: str, path: str, body: Json | None) -> tuple[int, Any]:
        """One request on the API server: its status and decoded body."""
        serialized = self.api.param_serialize(
            method=method,
            resource_path=path,
            header_params={"Accept": "application/json", "Content-Type": "application/json"},
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self.api.call_api(*serialized, _request_timeout=self.request_timeout_s)
        data: bytes = response.read()  # type: ignore[no-untyped-call]  # (not annotated)
        try:
            decoded = json.loads(data) if data else None
        except ValueError:
            decoded = data[:300].decode(errors="replace")
        return int(response.status), decoded


def _micro_time() -> str:
    """Now as a Kubernetes MicroTime (RFC 3339 with microseconds)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _message(body: Any) -> str:
    if isinstance(body, dict):
        return str(body.get("message", body))
    return str(body)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, kubernetes.client.ApiException):
        return f"API error {exc.status or ''} {exc.reason}".strip()
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        return f"API server unreachable: {exc.reason}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
