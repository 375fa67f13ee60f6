"""The scaling policy: what one tick should change, as a pure function of what it observed.

No Redis and no Kubernetes in here: the handlers read the queue's counts and workers (one Redis
round trip), the Deployment and its pods, and the scale-down state recorded in the BlueQueue's
status, call `decide`, and carry the `Decision` out. The policy only proposes. Whether a worker
may be removed is settled inside Redis: the `drain` script refuses a worker that holds a task,
and `begin` refuses any task to a drained worker, so the handlers drain first, and the policy
lowers the replicas only on a later tick, for workers it then sees drained and idle.

Scaling up is immediate (from zero too); drains are undone first. Scaling down waits until the
demand stayed below the replicas for `scaleDownDelaySeconds`, then runs in three ticks or more:

1. plan: pick idle workers whose pods the ReplicaSet will remove first. It removes unscheduled,
   then Pending, then not-Ready pods before it looks at `pod-deletion-cost`, then the lowest
   cost (and then criteria we do not model: node spread, ready time, restarts, age). So the
   policy drains every idle pod of the lower classes that must go, gives the chosen pods the
   lowest cost, and holds (ScaleDownBlocked) when a busy pod would be among the removed, e.g.
   a busy pod that is not Ready. One ReplicaSet only: a rollout's old ReplicaSet ignores costs.
2. lower: once the drains took and the costs are visible, lower the replicas so that every pod
   the ReplicaSet could remove is a drained one.
3. settle: once the Deployment and its ReplicaSet caught up, or at a deadline, undrain the
   drained workers whose pods are still there, and forget the scale-down.

The state between ticks (`ScaleDownState`) is kept in the BlueQueue's status, so an operator
that restarts resumes or undoes it. A drain that no recorded scale-down owns (an operator that
died between draining and recording) is undone by the sweep on every tick.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from blueque_operator.spec import ScalingSpec

DELETION_COST_ANNOTATION = "controller.kubernetes.io/pod-deletion-cost"
LOWEST_DELETION_COST = -(2**31)
"""The annotation is an int32; drained pods get its lowest value, every other pod any other."""

SCALE_DOWN_TIMEOUT_S = 120.0
"""How long a scale-down may wait for its drains to show, then for the ReplicaSet, before the
workers it drained are undrained."""

PROTECT_AFTER_S = 60.0
"""A pod busy this long is protected from voluntary disruptions (node autoscalers)."""

PROTECTION_ANNOTATIONS: Mapping[str, str] = {
    "cluster-autoscaler.kubernetes.io/safe-to-evict": "false",
    "karpenter.sh/do-not-disrupt": "true",
}

PodPhase = Literal["Pending", "Running", "Succeeded", "Failed", "Unknown"]
_PHASE_RANK = {"Pending": 0, "Unknown": 1, "Running": 2}


@dataclass(frozen=True)
class Counts:
    pending: int
    reserved: int
    """Claimed but not begun (between the claim and the worker's begin)."""
    running: int
    """Running on this BlueQueue's workers only."""

    @property
    def demand(self) -> int:
        return self.pending + self.reserved + self.running


@dataclass(frozen=True)
class Pod:
    """A worker pod of this BlueQueue, as the ReplicaSet controller would rank it."""

    name: str
    phase: PodPhase = "Running"
    ready: bool = True
    scheduled: bool = True
    deletion_cost: int = 0
    terminating: bool = False
    """Has a deletionTimestamp: the ReplicaSet no longer counts it."""
    current: bool = True
    """Belongs to the Deployment's current ReplicaSet."""
    protected: bool = False
    """Carries every `PROTECTION_ANNOTATIONS` value."""

    @property
    def active(self) -> bool:
        """Counted by its ReplicaSet (the controller's notion of an active pod)."""
        return not self.terminating and self.phase not in ("Succeeded", "Failed")

    @property
    def rank(self) -> tuple[int, int, int]:
        """The ReplicaSet's removal order before the deletion cost: lower goes first."""
        return (int(self.scheduled), _PHASE_RANK.get(self.phase, 2), int(self.ready))


@dataclass(frozen=True)
class Worker:
    """A worker of the queue, from the registry (or only from the draining set)."""

    id: str
    """The worker id, which is its pod's name."""
    owner: str | None = None
    """UID of the BlueQueue whose pod runs it; None when unknown (not registered yet)."""
    task: str | None = None
    """The task in its in-progress list (begun or only claimed), if any."""
    draining: bool = False
    alive: bool = True
    """Its heartbeat has not expired."""
    busy_since: float | None = None
    """When its current task began (or the operator first saw it busy), epoch seconds."""

    @property
    def busy(self) -> bool:
        return self.task is not None


@dataclass(frozen=True)
class Workload:
    """The worker Deployment and its ReplicaSets."""

    replicas: int
    """The Deployment's spec.replicas."""
    settled: bool = True
    """The controllers caught up: the Deployment's observedGeneration is current and its one
    ReplicaSet wants and has `replicas` pods."""
    rollout: bool = False
    """A rollout is in progress (more than one ReplicaSet has pods)."""


@dataclass(frozen=True)
class ScaleDownState:
    """What the status records between ticks (`status.scaleDown`)."""

    low_demand_since: float | None = None
    drained: tuple[str, ...] = ()
    """Workers drained for the scale-down in progress."""
    target: int | None = None
    """The replicas it set, once it lowered them."""
    deadline: float | None = None

    @property
    def in_flight(self) -> bool:
        return bool(self.drained) or self.target is not None


@dataclass(frozen=True)
class Observation:
    counts: Counts
    workload: Workload
    pods: Sequence[Pod]
    """Every pod of this BlueQueue's Deployment, terminating ones included."""
    workers: Sequence[Worker]
    scaling: ScalingSpec
    owner: str
    """This BlueQueue's UID: workers of other owners are never drained or undrained."""
    now: float
    state: ScaleDownState = field(default_factory=ScaleDownState)


@dataclass(frozen=True)
class Decision:
    desired: int
    replicas: int | None = None
    """Replicas to set now; None leaves them."""
    drain: tuple[str, ...] = ()
    undrain: tuple[str, ...] = ()
    """Done before the replicas are raised."""
    lowest_cost: tuple[str, ...] = ()
    """Pods to annotate with `LOWEST_DELETION_COST`."""
    restore_cost: tuple[str, ...] = ()
    """Pods whose lowest cost goes (back to the template's value, or none)."""
    hold: str | None = None
    """Why a needed scale-down cannot proceed (the ScaleDownBlocked condition)."""
    state: ScaleDownState = field(default_factory=ScaleDownState)
    reason: str = ""


def desired_replicas(counts: Counts, scaling: ScalingSpec) -> int:
    wanted = math.ceil(counts.demand / scaling.tasks_per_worker)
    return max(scaling.min_replicas, min(scaling.max_replicas, wanted))


def decide(obs: Observation) -> Decision:
    desired = desired_replicas(obs.counts, obs.scaling)
    if obs.scaling.paused:
        return Decision(desired=desired, state=obs.state, reason="paused")
    return _Tick(obs, desired).decide()


class _Tick:
    """One decision; a class only to share the indexes built from the observation."""

    def __init__(self, obs: Observation, desired: int) -> None:
        self.obs = obs
        self.desired = desired
        self.replicas = obs.workload.replicas
        self.workers = {w.id: w for w in obs.workers}
        self.pods = {p.name: p for p in obs.pods}
        self.active = sorted(
            (p for p in obs.pods if p.active), key=lambda p: (p.rank, p.deletion_cost, p.name)
        )

    # -- facts -----------------------------------------------------------------------------

    def ours(self, worker: Worker) -> bool:
        if worker.owner is not None:
            return worker.owner == self.obs.owner
        return worker.id in self.pods  # not registered yet, but named like one of our pods

    def idle(self, pod: Pod) -> bool:
        worker = self.workers.get(pod.name)
        return worker is None or (not worker.busy and self.ours(worker))

    def drained_idle(self, name: str) -> bool:
        worker = self.workers.get(name)
        pod = self.pods.get(name)
        return (
            worker is not None
            and worker.draining
            and not worker.busy
            and self.ours(worker)
            and pod is not None
            and pod.active
        )

    @property
    def rolling_out(self) -> bool:
        return self.obs.workload.rollout or any(not p.current for p in self.active)

    def still_here(self, names: Sequence[str]) -> tuple[str, ...]:
        """Those of `names` whose pods the ReplicaSet still counts."""
        return tuple(n for n in names if n in self.pods and self.pods[n].active)

    # -- the decision ----------------------------------------------------------------------

    def decide(self) -> Decision:
        state = self.obs.state
        if state.target is not None:
            return self.settle(state)
        if state.drained:
            return self.lower(state)
        return self.plan(state)

    def plan(self, state: ScaleDownState) -> Decision:
        if self.desired > self.replicas:
            return self.finish(
                replicas=self.desired,
                reason=f"scale up to {self.desired}: demand {self.obs.counts.demand}",
            )
        if self.desired == self.replicas:
            return self.finish(reason="demand matches the replicas")
        since = state.low_demand_since if state.low_demand_since is not None else self.obs.now
        low = ScaleDownState(low_demand_since=since)
        delay = self.obs.scaling.scale_down_delay_s
        if self.obs.now - since < delay:
            return self.finish(
                state=low, reason=f"demand below the replicas; waiting {delay:g}s before"
            )
        if self.rolling_out:
            return self.finish(
                state=low, hold="a rollout is in progress: its old ReplicaSet ignores costs"
            )
        if not self.obs.workload.settled:
            return self.finish(state=low, reason="waiting for the Deployment to settle")
        surplus = len(self.active) - self.desired
        if surplus <= 0:  # only pods not created yet go
            return self.finish(
                replicas=self.desired, reason=f"scale down to {self.desired}: no pod removed"
            )
        for count in range(surplus, 0, -1):
            chosen = self.removable(count)
            if chosen is not None:
                deadline = self.obs.now + SCALE_DOWN_TIMEOUT_S
                return self.finish(
                    drain=chosen,
                    keep_lowest=chosen,
                    state=ScaleDownState(since, chosen, None, deadline),
                    reason=f"draining {', '.join(chosen)} to scale down to"
                    f" {len(self.active) - count}",
                )
        return self.blocked(low)

    def removable(self, count: int) -> tuple[str, ...] | None:
        """Idle pods such that, once drained and given the lowest cost, they are the `count`
        pods the ReplicaSet removes first; None if busy pods stand in the way."""
        boundary = self.active[count - 1].rank
        below = [p for p in self.active if p.rank < boundary]
        tied = [p for p in self.active if p.rank == boundary]
        if not all(self.idle(p) for p in below):
            return None
        candidates = sorted(
            (p for p in tied if self.idle(p)),
            key=lambda p: (p.deletion_cost, self.workers.get(p.name, Worker(p.name)).alive, p.name),
        )
        needed = count - len(below)
        if len(candidates) < needed:
            return None
        return tuple(p.name for p in below + candidates[:needed])

    def blocked(self, low: ScaleDownState) -> Decision:
        """No idle pod can be removed first. A busy pod that the ReplicaSet ranks first (not
        scheduled, Pending, Unknown or not Ready) blocks; busy workers everywhere just wait."""
        first = self.active[0]
        if not self.idle(first) and first.rank != (1, 2, 1):
            why = (
                "not scheduled"
                if not first.scheduled
                else first.phase
                if first.phase != "Running"
                else "not Ready"
            )
            return self.finish(
                state=low,
                hold=f"pod {first.name} holds a task and is {why}: the ReplicaSet would remove"
                " it before any idle pod",
            )
        return self.finish(state=low, reason="demand below the replicas; no idle worker yet")

    def lower(self, state: ScaleDownState) -> Decision:
        drained = tuple(n for n in state.drained if self.drained_idle(n))
        if self.desired >= self.replicas:
            return self.cancel(
                state,
                f"demand ({self.desired}) no longer below the replicas: scale-down cancelled",
                replicas=self.desired,
            )
        since = state.low_demand_since
        if not drained:
            return self.cancel(state, "the workers took tasks before the drain", since=since)
        if self.rolling_out or not self.obs.workload.settled:
            return self.cancel(state, "the Deployment changed while draining", since=since)
        target = max(self.desired, len(self.active) - len(drained))
        if target >= self.replicas:
            return self.cancel(state, "nothing left to remove", since=since)
        removed = len(self.active) - target
        if removed <= 0:  # pods went away meanwhile: lowering removes none, drained or not
            return self.cancel(
                state, f"scale down to {target}: no pod removed", since=since, replicas=target
            )
        exposed = [p for p in self.active if (p.rank, p.deletion_cost) <= self.key(removed)]
        costs_pending = any(self.pods[n].deletion_cost != LOWEST_DELETION_COST for n in drained)
        if all(p.name in drained for p in exposed) and not costs_pending:
            deadline = self.obs.now + SCALE_DOWN_TIMEOUT_S
            return self.finish(
                replicas=target,
                keep_lowest=drained,
                state=ScaleDownState(since, drained, target, deadline),
                reason=f"scale down to {target}: removing drained {', '.join(drained)}",
            )
        stale_cost = any(
            p.deletion_cost == LOWEST_DELETION_COST and p.name not in drained for p in exposed
        )
        waiting = costs_pending or stale_cost
        if waiting and state.deadline is not None and self.obs.now < state.deadline:
            return self.finish(
                keep_lowest=drained,
                state=ScaleDownState(since, drained, None, state.deadline),
                reason="waiting for the deletion costs to show on the pods",
            )
        return self.cancel(
            state,
            "the pods the ReplicaSet would remove are no longer the drained ones",
            since=since,
        )

    def key(self, count: int) -> tuple[tuple[int, int, int], int]:
        """The ReplicaSet's sort key of the `count`-th pod it would remove."""
        pod = self.active[count - 1]
        return pod.rank, pod.deletion_cost

    def settle(self, state: ScaleDownState) -> Decision:
        target = self.replicas if state.target is None else state.target
        if self.desired > target:
            return self.cancel(
                state,
                f"demand rose to {self.desired} during a scale-down",
                replicas=max(self.desired, self.replicas),
            )
        since = state.low_demand_since
        if self.replicas != target:
            return self.cancel(state, "the replicas were changed by someone else", since=since)
        if self.obs.workload.settled and len(self.active) <= target:
            return self.cancel(state, f"scaled down to {target}", since=since)
        if state.deadline is not None and self.obs.now >= state.deadline:
            return self.cancel(
                state,
                "the ReplicaSet did not remove the drained pods in time",
                since=since,
            )
        return self.finish(
            keep_lowest=tuple(n for n in state.drained if self.drained_idle(n)),
            state=state,
            reason=f"waiting for the ReplicaSet to remove {', '.join(state.drained)}",
        )

    def cancel(
        self,
        state: ScaleDownState,
        reason: str,
        *,
        since: float | None = None,
        replicas: int | None = None,
    ) -> Decision:
        """Ends the scale-down in flight: undrains what is still here."""
        return self.finish(
            replicas=replicas,
            undrain=self.still_here(
                [
                    n
                    for n in state.drained
                    if n in self.workers and self.workers[n].draining and self.ours(self.workers[n])
                ]
            ),
            state=ScaleDownState(low_demand_since=since),
            reason=reason,
        )

    def finish(
        self,
        *,
        replicas: int | None = None,
        drain: tuple[str, ...] = (),
        undrain: tuple[str, ...] = (),
        keep_lowest: tuple[str, ...] = (),
        state: ScaleDownState | None = None,
        hold: str | None = None,
        reason: str = "",
    ) -> Decision:
        """The decision, with the sweep: drains no scale-down owns are undone (unless the pod
        is terminating: its worker must not take a task now), and only pods drained for the
        scale-down in flight keep the lowest deletion cost."""
        next_state = ScaleDownState() if state is None else state
        owned = set(next_state.drained) | set(drain) | set(undrain)
        swept = tuple(
            w.id
            for w in self.obs.workers
            if w.draining
            and self.ours(w)
            and w.id not in owned
            and (w.id not in self.pods or self.pods[w.id].active)
        )
        keep = set(keep_lowest)
        return Decision(
            desired=self.desired,
            replicas=replicas if replicas != self.replicas else None,
            drain=drain,
            undrain=undrain + swept,
            lowest_cost=tuple(
                p.name
                for p in self.active
                if p.name in keep and p.deletion_cost != LOWEST_DELETION_COST
            ),
            restore_cost=tuple(
                p.name
                for p in self.active
                if p.name not in keep and p.deletion_cost == LOWEST_DELETION_COST
            ),
            hold=hold,
            state=next_state,
            reason=reason or (hold or ""),
        )


def protection_changes(
    pods: Sequence[Pod],
    workers: Sequence[Worker],
    now: float,
    busy_for_s: float = PROTECT_AFTER_S,
) -> dict[str, bool]:
    """Pods whose disruption annotations (`PROTECTION_ANNOTATIONS`) should change: True to set
    them (busy for `busy_for_s` or longer), False to clear them (idle). Decided per tick, not
    per task, to keep API writes low: a task shorter than `busy_for_s` costs none."""
    by_id = {w.id: w for w in workers}
    changes: dict[str, bool] = {}
    for pod in pods:
        if pod.terminating:
            continue
        worker = by_id.get(pod.name)
        busy_since = worker.busy_since if worker is not None and worker.busy else None
        if busy_since is not None and now - busy_since >= busy_for_s:
            if not pod.protected:
                changes[pod.name] = True
        elif (worker is None or not worker.busy) and pod.protected:
            changes[pod.name] = False
    return changes
