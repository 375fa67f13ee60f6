"""One BlueQueue's control loop: ensure, claim, observe, decide, act, report; every tick.

A `QueueController` runs while its BlueQueue exists and this replica holds the Lease. It owns
no state the cluster or Redis does not also hold: the scale-down in flight is in the status,
the drains in Redis, the pods in the watch. Each tick:

1. claim the queue in Redis (two BlueQueues on one queue: the second gets Conflict, and
   creates nothing);
2. ensure the worker Deployment matches the spec (hand edits reconciled; replicas untouched)
   and the queue's config in Redis matches `spec.tasks` (once per generation, and after Redis
   comes back);
3. observe the queue in one round trip, decide (`policy.decide`), and act: undrain, scale up,
   drain, deletion costs, scale down, disruption annotations; promote due scheduled tasks;
4. reap the workers of pods that are gone (the sweep; DELETED events reap at once, see
   `reaper.py`);
5. patch the status if it changed.

Errors never end the loop: a spec the operator cannot act on, Redis down or refusing the
password, an API call refused: each becomes a condition and an Event, and the loop backs off.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import redis.exceptions

from blueque.aio import AsyncQueue
from blueque.aio.waiting import wait_event
from blueque.errors import BluequeError
from blueque.records import QueueObservation
from blueque_operator import world as w
from blueque_operator.builders import (
    build_deployment,
    deployment_name,
    reconcile_patch,
    selector_changed,
)
from blueque_operator.crd import GROUP, KIND, VERSION
from blueque_operator.errors import KubeError, NotLeaderError, SpecError
from blueque_operator.kube import Kube
from blueque_operator.metrics import Direction, Metrics, QueueKey
from blueque_operator.policy import (
    DELETION_COST_ANNOTATION,
    LOWEST_DELETION_COST,
    PROTECTION_ANNOTATIONS,
    Counts,
    Decision,
    Observation,
    ScaleDownState,
    Worker,
    decide,
    protection_changes,
)
from blueque_operator.reaper import Reaped, Reaper
from blueque_operator.redis_link import Endpoint, RedisLinks
from blueque_operator.spec import BlueQueueSpec, parse_bluequeue
from blueque_operator.status import (
    Condition,
    changed,
    conditions,
    rfc3339,
    scale_down_state,
    scale_down_status,
)

log = logging.getLogger("blueque_operator")

Json = dict[str, Any]
COMPONENT = "blueque-operator"
CLAIM_TTL_MIN_S = 10.0
"""The queue claim outlives at least this long (and five ticks) without renewal."""
MAX_BACKOFF_S = 30.0
CONFIG_REFRESH_S = 300.0
"""The queue's config is written again this often (a flushed or replaced Redis)."""

REDIS_FAILURES: tuple[type[BaseException], ...] = (
    BluequeError,
    redis.exceptions.RedisError,
    OSError,
)


@dataclass
class Services:
    """What every controller shares."""

    kube: Kube
    world: w.World
    links: RedisLinks
    metrics: Metrics
    is_leader: Callable[[], bool]
    clock: Callable[[], float] = time.time


class RedisUnavailable(Exception):  # noqa: N818 (control flow inside a tick)
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class _Report:
    """What this tick learned, for the status."""

    queue: QueueObservation | None = None
    decision: Decision | None = None
    replicas: int | None = None
    conditions: dict[str, Condition] = field(default_factory=dict)


class QueueController:
    def __init__(self, services: Services, body: Json) -> None:
        self.services = services
        self.body = body
        meta = body["metadata"]
        self.namespace: str = meta["namespace"]
        self.name: str = meta["name"]
        self.uid: str = meta["uid"]
        self.key: w.Key = (self.namespace, self.name)
        self.spec: BlueQueueSpec | None = None
        self.spec_error: str | None = None
        self.generation = -1
        self.endpoint: Endpoint | None = None
        self.password_error: str | None = None
        self.state: ScaleDownState = scale_down_state(body.get("status"))
        self.status: Json = dict(body.get("status") or {})
        self.last_scale: tuple[str, str] | None = None
        self.configured: tuple[int, float] | None = None
        """(generation, when) the queue config was last written."""
        self.deployment_version: str | None = None
        """resourceVersion our last Deployment write returned: the watch may lag behind it."""
        self.redis_ok: bool | None = None
        self.redis_message = ""
        self.conflict_with: str | None = None
        self.held_claim = False
        """This BlueQueue held the queue's claim at least once (so its Deployment is ours)."""
        self.blocked: str | None = None
        self.failing: str | None = None
        self.backoff_s = 0.0
        self.last_observation: QueueObservation | None = None
        self.metrics_key: QueueKey | None = None
        self.reaper = Reaper(self.uid, self.key, services.world, services.kube, services.clock)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"bluequeue {self.key}")

    def update(self, body: Json) -> None:
        """A newer version of the BlueQueue from the watch."""
        old_generation = self.body["metadata"].get("generation")
        self.body = body
        if body["metadata"].get("generation") != old_generation:
            self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    async def stop(self, deleted: bool) -> None:
        """Ends the loop; on deletion also gives up the queue claim."""
        # The loop checks this too: a cancellation can be dropped on its way, and the loop
        # would then go on for ever. redis-py's asyncio client drops most of those that come
        # during a command (it returns the reply). (The loop's own wait never drops one:
        # blueque.aio.waiting.)
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.endpoint is not None:
            if deleted and self.spec is not None and self.services.is_leader():
                try:
                    await self._queue().release_owner(self.uid)
                except REDIS_FAILURES as exc:
                    log.warning("%s: could not release the queue claim: %s", self.key, exc)
            await self.services.links.release(self.endpoint, self.uid)
        if deleted and self.metrics_key is not None:
            self.services.metrics.forget(self.metrics_key)

    async def _run(self) -> None:
        first = True
        while not self._stopping:
            interval = self.spec.scaling.poll_interval_s if self.spec else 1.0
            try:
                if self.services.is_leader():
                    await self.tick()
            except asyncio.CancelledError:
                raise
            except NotLeaderError:
                log.info("%s: lost the Lease during a tick", self.key)
            except Exception:  # a bug must not end the loop: log it, back off, go on
                log.exception("%s: tick failed", self.key)
                self._back_off()
            delay = max(interval, self.backoff_s)
            if first:
                # Loops started together (an operator starting, BlueQueues applied at once)
                # would tick together for ever, each behind all the others: a random phase
                # spreads them over the interval.
                delay *= random.random()
            first = False
            self._wake.clear()
            if self._stopping:  # the tick went on after a dropped cancellation
                break
            await wait_event(self._wake, delay)

    # -- one tick ------------------------------------------------------------------------------

    async def tick(self) -> None:
        started = time.monotonic()
        report = _Report()
        if not self._parse(report):
            await self._report(report)
            return
        assert self.spec is not None
        try:
            try:
                queue = await self._connect()
                await self._claim(queue, report)
            except RedisUnavailable:
                if self.held_claim:  # keep the Deployment reconciled through an outage
                    await self._ensure_deployment()
                raise
            if self.conflict_with is None:
                # Only the BlueQueue holding the queue creates workers for it.
                self.held_claim = True
                await self._ensure_deployment()
                await self._configure(queue)
                observed = await self._observe(queue)
                report.queue = observed
                await self._scale(queue, observed, report)
                await self._promote(queue)
                self._reaped(await self._redis(self.reaper.sweep(queue, observed), "requeue"))
            self._redis_state(True, "")
            self.backoff_s = 0.0
        except RedisUnavailable as exc:
            self._redis_state(False, exc.message)
            self._back_off()
        except KubeError as exc:
            log.warning("%s: Kubernetes API: %s", self.key, exc)
            self._back_off()
        await self._report(report)
        self._measure(report, time.monotonic() - started)

    def _back_off(self) -> None:
        """Doubles the wait between failing ticks, from 1 s up to `MAX_BACKOFF_S`."""
        self.backoff_s = min(MAX_BACKOFF_S, max(1.0, self.backoff_s * 2))

    def _parse(self, report: _Report) -> bool:
        generation = int(self.body["metadata"].get("generation", 0))
        if generation != self.generation:
            self.generation = generation
            try:
                spec = parse_bluequeue(self.body)
                build_deployment(spec, namespace=self.namespace, uid=self.uid)  # env, labels
            except SpecError as exc:
                self.spec, self.spec_error = None, str(exc)
                self._event("Warning", "InvalidSpec", str(exc))
            else:
                self.spec, self.spec_error = spec, None
                self.configured = None
        return self.spec is not None

    async def _ensure_deployment(self) -> None:
        assert self.spec is not None
        kube, name = self.services.kube, deployment_name(self.name)
        live = self.services.world.deployment(self.key, name)
        if live is None or (
            self.deployment_version is not None
            and int(live["metadata"]["resourceVersion"]) < int(self.deployment_version)
        ):
            live = await kube.get_deployment(self.namespace, name)
        if live is None:
            built = build_deployment(self.spec, namespace=self.namespace, uid=self.uid)
            created = await kube.create_deployment(self.namespace, built)
            self.deployment_version = created["metadata"]["resourceVersion"]
            self._event("Normal", "DeploymentCreated", f"created Deployment {name}")
            return
        replicas = int((live.get("spec") or {}).get("replicas", 0))
        built = build_deployment(
            self.spec, namespace=self.namespace, uid=self.uid, replicas=replicas
        )
        if not _owned_by(live, self.uid):
            raise KubeError(409, f"Deployment {name} exists and is not owned by this BlueQueue")
        if selector_changed(built, live):
            await kube.delete_deployment(self.namespace, name)
            self._event("Normal", "DeploymentReplaced", f"{name}: its selector changed")
            self.deployment_version = None
            return
        patch = reconcile_patch(built, live)
        if patch is not None:
            patched = await kube.patch_deployment(self.namespace, name, patch)
            self.deployment_version = patched["metadata"]["resourceVersion"]
            self._event("Normal", "DeploymentUpdated", f"reconciled Deployment {name}")

    async def _connect(self) -> AsyncQueue:
        assert self.spec is not None
        redis_spec = self.spec.redis
        password: str | None = None
        ref = redis_spec.password_secret_ref
        if ref is not None:
            value = await self.services.kube.read_secret_key(self.namespace, ref.name, ref.key)
            if value is None:
                raise RedisUnavailable(f"Secret {ref.name} has no key {ref.key!r} (or is missing)")
            password = value
        endpoint = Endpoint(redis_spec.url, password, redis_spec.key_prefix)
        if endpoint != self.endpoint:
            if self.endpoint is not None:
                await self.services.links.release(self.endpoint, self.uid)
            self.endpoint = endpoint
        try:
            return self._queue()
        except REDIS_FAILURES as exc:
            raise RedisUnavailable(f"cannot use spec.redis.url: {exc}") from exc

    def _queue(self) -> AsyncQueue:
        assert self.endpoint is not None and self.spec is not None
        return self.services.links.queue(self.endpoint, self.spec.queue, self.uid)

    async def _redis(self, call: Awaitable[Any], what: str) -> Any:
        try:
            return await call
        except REDIS_FAILURES as exc:
            self.services.metrics.redis_error(self._labels())
            raise RedisUnavailable(f"{what}: {exc}") from exc

    async def _claim(self, queue: AsyncQueue, report: _Report) -> None:
        assert self.spec is not None
        ttl = max(CLAIM_TTL_MIN_S, 5 * self.spec.scaling.poll_interval_s)
        claim = await self._redis(queue.claim_owner(self.uid, ttl), "claim the queue")
        holder = None if claim.acquired else claim.holder
        if holder != self.conflict_with and holder is not None:
            self._event(
                "Warning",
                "Conflict",
                f"queue {self.spec.queue!r} on {self.spec.redis.url} is claimed by"
                f" BlueQueue UID {holder}: this BlueQueue does nothing until it is released",
            )
        self.conflict_with = holder

    async def _configure(self, queue: AsyncQueue) -> None:
        assert self.spec is not None
        now = self.services.clock()
        if self.configured is not None and (
            self.configured[0] == self.generation and now - self.configured[1] < CONFIG_REFRESH_S
        ):
            return
        await self._redis(queue.set_config(**self.spec.tasks.as_config()), "write the config")
        self.configured = (self.generation, now)

    async def _observe(self, queue: AsyncQueue) -> QueueObservation:
        observed: QueueObservation = await self._redis(queue.observe(), "read the queue")
        self.last_observation = observed
        return observed

    async def _promote(self, queue: AsyncQueue) -> None:
        await self._redis(queue.promote_due(), "promote due tasks")

    # -- reaping -------------------------------------------------------------------------------

    async def pod_deleted(self, pod: str) -> None:
        """A worker pod of this BlueQueue is gone (a DELETED event): requeue its tasks now."""
        if not self.services.is_leader() or self.spec is None or self.endpoint is None:
            return
        if self.conflict_with is not None:
            return
        try:
            reaped = await self.reaper.pod_deleted(self._queue(), self.last_observation, pod)
        except REDIS_FAILURES as exc:  # the sweep requeues it once Redis answers
            log.warning("%s: cannot reap %s now: %s", self.key, pod, exc)
            return
        self._reaped([] if reaped is None else [reaped])

    def _reaped(self, reaped: list[Reaped]) -> None:
        for r in reaped:
            self.services.metrics.reaped(self._labels(), r.requeued + r.failed)
            if r.requeued or r.failed:
                self._event(
                    "Normal",
                    "WorkerReaped",
                    f"{r.worker} ({r.reason}): {r.requeued} task(s) requeued, {r.failed} failed"
                    " at max attempts",
                )
            else:
                log.info("%s: forgot worker %s (%s): it held no task", self.key, r.worker, r.reason)

    # -- scaling -------------------------------------------------------------------------------

    def policy_workers(self, observed: QueueObservation) -> list[Worker]:
        return [
            Worker(
                id=obs.id,
                owner=obs.owner,
                task=obs.task,
                draining=obs.draining,
                alive=obs.alive,
                busy_since=None if obs.task_started_at is None else obs.task_started_at.timestamp(),
            )
            for obs in observed.workers
        ]

    def observation(self, observed: QueueObservation) -> Observation:
        assert self.spec is not None
        world = self.services.world
        deployment = world.deployment(self.key, deployment_name(self.name))
        replicasets = world.replicasets(self.key)
        workload = (
            w.workload(deployment, replicasets)
            if deployment is not None
            else w.Workload(replicas=0, settled=False)
        )
        current = w.pod_template_hash(
            None if deployment is None else w.current_replicaset(deployment, replicasets)
        )
        pods = [w.policy_pod(p, current) for p in world.pods(self.key)]
        ours = [o for o in observed.workers if o.owner == self.uid and o.task is not None]
        counts = Counts(
            pending=observed.pending,
            reserved=sum(1 for o in ours if not o.begun),
            running=sum(1 for o in ours if o.begun),
        )
        return Observation(
            counts=counts,
            workload=workload,
            pods=pods,
            workers=self.policy_workers(observed),
            scaling=self.spec.scaling,
            owner=self.uid,
            now=self.services.clock(),
            state=self.state,
        )

    async def _scale(self, queue: AsyncQueue, observed: QueueObservation, report: _Report) -> None:
        assert self.spec is not None
        if self.services.world.deployment(self.key, deployment_name(self.name)) is None:
            return  # just created: the watch has not shown it yet
        obs = self.observation(observed)
        decision = decide(obs)
        report.decision = decision
        report.replicas = obs.workload.replicas
        kube, name = self.services.kube, deployment_name(self.name)
        for worker in decision.undrain:
            await self._redis(queue.undrain(worker), "undrain")
        if decision.replicas is not None and decision.replicas > obs.workload.replicas:
            await kube.scale(self.namespace, name, decision.replicas)
            self._scaled(obs.workload.replicas, decision.replicas, decision.reason)
            report.replicas = decision.replicas
        for worker in decision.drain:
            if not await self._redis(queue.drain(worker), "drain"):
                log.info("%s: %s took a task before its drain", self.key, worker)
        for pod in decision.lowest_cost:
            await kube.annotate_pod(
                self.namespace, pod, {DELETION_COST_ANNOTATION: str(LOWEST_DELETION_COST)}
            )
        for pod in decision.restore_cost:
            await kube.annotate_pod(self.namespace, pod, {DELETION_COST_ANNOTATION: None})
        if decision.replicas is not None and decision.replicas < obs.workload.replicas:
            await kube.scale(self.namespace, name, decision.replicas)
            self._scaled(obs.workload.replicas, decision.replicas, decision.reason)
            report.replicas = decision.replicas
        self.state = decision.state
        if decision.hold != self.blocked and decision.hold is not None:
            self._event("Warning", "ScaleDownBlocked", decision.hold)
        self.blocked = decision.hold
        for pod, protect in protection_changes(obs.pods, obs.workers, obs.now).items():
            value = dict.fromkeys(PROTECTION_ANNOTATIONS, None)
            if protect:
                value.update(PROTECTION_ANNOTATIONS)
            await kube.annotate_pod(self.namespace, pod, value)
        failing = w.failing_reason(
            self.services.world.pods(self.key), self.services.world.replicasets(self.key)
        )
        if failing != self.failing and failing is not None:
            self._event("Warning", "WorkersFailing", failing)
        self.failing = failing

    def _scaled(self, before: int, after: int, reason: str) -> None:
        direction: Direction = "up" if after > before else "down"
        self.last_scale = (rfc3339(self.services.clock()), reason)
        self.services.metrics.scaled(self._labels(), direction)
        self._event("Normal", f"Scaled{direction.capitalize()}", f"{before} -> {after}: {reason}")

    # -- reporting -----------------------------------------------------------------------------

    def _redis_state(self, ok: bool, message: str) -> None:
        if ok != self.redis_ok:
            if not ok:
                self._event("Warning", "RedisUnreachable", message)
            elif self.redis_ok is False:
                self._event("Normal", "RedisReachable", "Redis answers again")
                self.configured = None  # it may have restarted empty
        self.redis_ok = ok
        self.redis_message = message

    def _conditions(self, report: _Report) -> list[Condition]:
        if self.spec_error is not None:
            return [Condition("Ready", False, "InvalidSpec", self.spec_error)]
        redis_ok = bool(self.redis_ok)
        result = [
            Condition(
                "RedisReachable",
                redis_ok,
                "Reachable" if redis_ok else "Unreachable",
                "" if redis_ok else self.redis_message,
            ),
            Condition(
                "Conflict",
                self.conflict_with is not None,
                "QueueClaimed" if self.conflict_with else "NoConflict",
                ""
                if self.conflict_with is None
                else f"the queue is claimed by BlueQueue UID {self.conflict_with}",
            ),
            Condition(
                "ScaleDownBlocked",
                self.blocked is not None,
                "BusyPodFirst" if self.blocked else "NotBlocked",
                self.blocked or "",
            ),
            Condition(
                "WorkersFailing",
                self.failing is not None,
                "WorkersFailing" if self.failing else "WorkersRunning",
                self.failing or "",
            ),
        ]
        ready = redis_ok and self.conflict_with is None
        result.insert(
            0,
            Condition(
                "Ready",
                ready,
                "Scaling" if ready else ("Conflict" if self.conflict_with else "RedisUnreachable"),
                "" if ready else "see the other conditions",
            ),
        )
        return result

    async def _report(self, report: _Report) -> None:
        status: Json = dict(self.status)
        status["observedGeneration"] = self.generation
        if self.spec is not None:
            status["queue"] = self.spec.queue
        if report.queue is not None:
            ours = [o for o in report.queue.workers if o.owner == self.uid]
            status.update(
                pending=report.queue.pending,
                running=sum(1 for o in ours if o.task is not None),
                scheduled=report.queue.scheduled,
                workers=sum(1 for o in ours if o.registered),
            )
        if report.decision is not None:
            status["desiredReplicas"] = report.decision.desired
            status["scaleDown"] = scale_down_status(self.state)
        if report.replicas is not None:
            status["replicas"] = report.replicas
        if self.last_scale is not None:
            status["lastScaleTime"], status["lastScaleReason"] = self.last_scale
        status["conditions"] = conditions(
            self._conditions(report),
            self.status.get("conditions") or [],
            self.services.clock(),
            self.generation,
        )
        if not changed(self.status, status):
            return
        await self.services.kube.patch_status(self.namespace, self.name, status)
        self.status = status

    def _measure(self, report: _Report, duration_s: float) -> None:
        metrics, key = self.services.metrics, self._labels()
        if self.metrics_key is not None and self.metrics_key != key:
            metrics.forget(self.metrics_key)  # the queue was renamed
        self.metrics_key = key
        observed = report.queue
        status = self.status
        metrics.observe_tick(
            key,
            duration_s,
            pending=None if observed is None else observed.pending,
            running=None if observed is None else status.get("running"),
            scheduled=None if observed is None else observed.scheduled,
            desired_replicas=None if report.decision is None else report.decision.desired,
            replicas=report.replicas,
        )

    def _labels(self) -> QueueKey:
        queue = self.spec.queue if self.spec is not None else ""
        return QueueKey(self.namespace, self.name, queue)

    def _event(self, event_type: str, reason: str, message: str) -> None:
        """Posts an Event in the background: a refused Event must not fail the tick."""
        if not self.services.is_leader():
            return
        involved = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": KIND,
            "metadata": {"name": self.name, "namespace": self.namespace, "uid": self.uid},
        }
        log.log(
            logging.WARNING if event_type == "Warning" else logging.INFO,
            "%s/%s: %s: %s",
            self.namespace,
            self.name,
            reason,
            message,
        )

        async def post() -> None:
            try:
                await self.services.kube.post_event(
                    involved, event_type, reason, message, COMPONENT
                )
            except (KubeError, NotLeaderError) as exc:
                log.warning("%s: could not post an Event: %s", self.key, exc)

        _background(asyncio.create_task(post()))


_TASKS: set[asyncio.Task[None]] = set()


def _background(task: asyncio.Task[None]) -> None:
    _TASKS.add(task)
    task.add_done_callback(_TASKS.discard)


def _owned_by(obj: Json, uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in obj["metadata"].get("ownerReferences") or [])
