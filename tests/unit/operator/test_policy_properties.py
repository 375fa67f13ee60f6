"""Properties of the scaling policy, for random observations and random runs of a small model
of the ReplicaSet controller and the drain handshake: no busy worker is ever drained or
removed, the replicas never drop below the busy pods, desired stays in [min, max], and a quiet
queue does scale down."""

from __future__ import annotations

import random
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from blueque_operator.policy import (
    LOWEST_DELETION_COST,
    Counts,
    Decision,
    Observation,
    Pod,
    PodPhase,
    ScaleDownState,
    Worker,
    Workload,
    decide,
    desired_replicas,
)
from blueque_operator.spec import ScalingSpec

UID = "bq-uid"
LOW = LOWEST_DELETION_COST
PROFILE = settings(deadline=None, database=None, max_examples=400)


def exposed(pods: list[Pod], keep: int) -> list[Pod]:
    """The active pods the ReplicaSet may remove to keep `keep`: the lowest by rank and cost,
    with every pod tied with the last of them (its other tie-breakers are not modelled)."""
    active = sorted((p for p in pods if p.active), key=lambda p: (p.rank, p.deletion_cost))
    count = len(active) - keep
    if count <= 0:
        return []
    last = (active[count - 1].rank, active[count - 1].deletion_cost)
    return [p for p in active if (p.rank, p.deletion_cost) <= last]


# -- one observation -------------------------------------------------------------------------


@st.composite
def observations(draw: st.DrawFn) -> Observation:
    names = [f"p{i}" for i in range(draw(st.integers(0, 7)))]
    pods = []
    for name in names:
        scheduled = draw(st.booleans()) or draw(st.booleans())
        phases: list[PodPhase] = ["Running", "Running", "Pending", "Unknown", "Failed"]
        phase = draw(st.sampled_from(phases))
        pods.append(
            Pod(
                name,
                phase="Pending" if not scheduled else phase,
                ready=scheduled and phase == "Running" and draw(st.booleans()),
                scheduled=scheduled,
                deletion_cost=draw(st.sampled_from([0, 0, 5, -5, LOW])),
                terminating=draw(st.integers(0, 5)) == 0,
                current=draw(st.integers(0, 8)) > 0,
            )
        )
    workers = []
    for name in [*names, "laptop", "leftover"]:
        kind = draw(st.sampled_from(["none", "ours", "ours", "ours", "unregistered", "other"]))
        if kind == "none":
            continue
        registered = kind != "unregistered"
        workers.append(
            Worker(
                name,
                owner={"ours": UID, "other": "other-uid"}.get(kind),
                task=f"q:{name}" if registered and draw(st.booleans()) else None,
                draining=draw(st.booleans()),
                alive=draw(st.booleans()),
            )
        )
    minimum = draw(st.integers(0, 3))
    scaling = ScalingSpec(
        min_replicas=minimum,
        max_replicas=draw(st.integers(minimum, 8)),
        tasks_per_worker=draw(st.integers(1, 3)),
        scale_down_delay_s=draw(st.sampled_from([0.0, 30.0])),
        paused=draw(st.integers(0, 9)) == 0,
    )
    now = 1000.0
    drained = tuple(draw(st.lists(st.sampled_from(names), unique=True))) if names else ()
    state = draw(
        st.sampled_from(
            [
                ScaleDownState(),
                ScaleDownState(low_demand_since=now - 10),
                ScaleDownState(now - 100, drained, None, now + draw(st.sampled_from([-1, 60]))),
                ScaleDownState(
                    now - 100,
                    drained,
                    draw(st.integers(0, 8)),
                    now + draw(st.sampled_from([-1, 60])),
                ),
            ]
        )
    )
    running = sum(1 for w in workers if w.busy and w.owner == UID)
    return Observation(
        counts=Counts(draw(st.integers(0, 10)), draw(st.integers(0, 2)), running),
        workload=Workload(
            replicas=draw(st.integers(0, 9)),
            settled=draw(st.booleans()),
            rollout=draw(st.booleans()),
        ),
        pods=pods,
        workers=workers,
        scaling=scaling,
        owner=UID,
        now=now,
        state=state,
    )


def check(obs: Observation, decision: Decision) -> None:
    scaling = obs.scaling
    workers = {w.id: w for w in obs.workers}
    pods = {p.name: p for p in obs.pods}
    assert scaling.min_replicas <= decision.desired <= scaling.max_replicas
    if scaling.paused:
        assert decision == Decision(desired=decision.desired, state=obs.state, reason="paused")
    for name in decision.drain:  # never a busy worker, never someone else's
        assert name in pods
        worker = workers.get(name)
        assert worker is None or (not worker.busy and worker.owner in (UID, None))
    assert not set(decision.drain) & set(decision.undrain)
    for name in decision.undrain:
        worker = workers[name]
        assert worker.owner in (UID, None)
        assert name not in pods or pods[name].active  # a leaving worker must take nothing
    for name in decision.lowest_cost:
        assert name not in workers or not workers[name].busy
    if decision.replicas is not None and decision.replicas < obs.workload.replicas:
        busy = [p for p in obs.pods if p.active and p.name in workers and workers[p.name].busy]
        assert decision.replicas >= len(busy)
        assert not obs.workload.rollout
        assert all(p.current for p in obs.pods if p.active)  # one ReplicaSet
        for pod in exposed(list(obs.pods), decision.replicas):
            worker = workers.get(pod.name)
            assert worker is not None and worker.draining and not worker.busy, pod


@PROFILE
@given(observations())
def test_one_tick_is_safe(obs: Observation) -> None:
    check(obs, decide(obs))


# -- a run against a model of the cluster ------------------------------------------------------


@dataclass
class SimPod:
    name: str
    phase: str = "Pending"
    ready: bool = False
    cost: int = 0
    terminating: bool = False

    def view(self) -> Pod:
        return Pod(
            self.name,
            phase="Running" if self.phase == "Running" else "Pending",
            ready=self.ready,
            scheduled=self.phase != "Unscheduled",
            deletion_cost=self.cost,
            terminating=self.terminating,
        )


@dataclass
class SimWorker:
    registered: bool = False
    task: str | None = None
    draining: bool = False


class Cluster:
    """The ReplicaSet (removes the lowest-ranked pods, ties broken at random), the pods and
    the workers with the drain handshake of the Redis scripts."""

    def __init__(self, rng: random.Random, scaling: ScalingSpec) -> None:
        self.rng = rng
        self.scaling = scaling
        self.pods: dict[str, SimPod] = {}
        self.workers: dict[str, SimWorker] = {}
        self.replicas = 0
        self.pending = 0
        self.state = ScaleDownState()
        self.now = 0.0
        self.serial = 0
        self.removed_busy: list[str] = []

    def observe(self) -> Observation:
        pods = [p.view() for p in self.pods.values()]
        workers = [
            Worker(
                wid,
                owner=UID if w.registered else None,
                task=w.task,
                draining=w.draining,
            )
            for wid, w in self.workers.items()
            if w.registered or w.draining
        ]
        active = [p for p in pods if p.active]
        return Observation(
            counts=Counts(self.pending, 0, sum(1 for w in workers if w.busy)),
            workload=Workload(self.replicas, settled=len(active) == self.replicas),
            pods=pods,
            workers=workers,
            scaling=self.scaling,
            owner=UID,
            now=self.now,
            state=self.state,
        )

    def tick(self) -> Decision:
        obs = self.observe()
        decision = decide(obs)
        check(obs, decision)
        for wid in decision.undrain:
            self.workers[wid].draining = False
        for wid in decision.drain:  # the drain script: refused while the worker holds a task
            worker = self.workers.setdefault(wid, SimWorker())
            if worker.task is None:
                worker.draining = True
        for name in decision.lowest_cost:
            self.pods[name].cost = LOW
        for name in decision.restore_cost:
            self.pods[name].cost = 0
        self.state = decision.state
        if decision.replicas is not None:
            self.replicas = decision.replicas
        self.reconcile()
        return decision

    def reconcile(self) -> None:
        active = [p for p in self.pods.values() if not p.terminating]
        surplus = len(active) - self.replicas
        if surplus > 0:
            ranked = sorted(active, key=lambda p: (p.view().rank, p.cost, self.rng.random()))
            for pod in ranked[:surplus]:
                pod.terminating = True
                worker = self.workers.get(pod.name)
                if worker is not None and worker.task is not None:
                    self.removed_busy.append(pod.name)
        elif surplus < 0 and self.rng.random() < 0.7:  # sometimes the controller lags
            for _ in range(-surplus):
                self.serial += 1
                name = f"w{self.serial}"
                self.pods[name] = SimPod(name, phase=self.rng.choice(["Unscheduled", "Pending"]))

    def events(self, *, quiet: bool = False) -> None:
        rng = self.rng
        self.now += 5.0 if quiet else rng.choice([0.5, 1.0, 5.0, 20.0])
        if not quiet:
            self.pending += rng.choice([0, 0, 0, 1, 2, 5])
        for name, pod in list(self.pods.items()):
            worker = self.workers.get(name)
            if pod.terminating:  # the process exits (SIGTERM; a busy one would finish first)
                if worker is None or worker.task is None or quiet:
                    del self.pods[name]
                    self.workers.pop(name, None)  # a clean exit clears the drain too
                continue
            if pod.phase == "Unscheduled":
                pod.phase = "Pending"
            elif pod.phase == "Pending":
                pod.phase, pod.ready = "Running", True
            elif quiet:
                pod.ready = True
            elif rng.random() < 0.1:
                pod.ready = not pod.ready
            if pod.phase == "Running":
                worker = self.workers.setdefault(name, SimWorker())
                worker.registered = True
        for name, worker in self.workers.items():
            if worker.task is not None and (quiet or rng.random() < 0.3):
                worker.task = None
            elif (
                worker.registered
                and worker.task is None
                and not worker.draining  # begin refuses a drained worker
                and self.pending > 0
                and not self.pods[name].terminating
            ):
                self.pending -= 1
                self.serial += 1
                worker.task = f"q:{self.serial}"


@settings(deadline=None, database=None, max_examples=150)
@given(
    seed=st.integers(0, 2**32 - 1),
    minimum=st.integers(0, 2),
    extra=st.integers(0, 4),
    per_worker=st.integers(1, 2),
)
def test_runs_never_remove_a_busy_worker_and_settle_when_quiet(
    seed: int, minimum: int, extra: int, per_worker: int
) -> None:
    scaling = ScalingSpec(
        min_replicas=minimum,
        max_replicas=minimum + extra,
        tasks_per_worker=per_worker,
        scale_down_delay_s=10.0,
    )
    cluster = Cluster(random.Random(seed), scaling)
    for _ in range(60):
        cluster.tick()
        cluster.events()
    assert cluster.removed_busy == []
    # Quiet: no new work, tasks finish, every pod Ready. The replicas come down to the minimum.
    cluster.pending = 0
    for _ in range(40):
        decision = cluster.tick()
        cluster.events(quiet=True)
    assert cluster.removed_busy == []
    assert decision.desired == minimum
    assert cluster.replicas == minimum, decision
    assert not any(w.draining for w in cluster.workers.values())


def test_the_model_catches_a_policy_that_ignores_busy_workers() -> None:
    # The model is strong enough to see the failure the policy exists to prevent: setting the
    # replicas straight to the desired count (what the HPA does) removes busy pods.
    removed = 0
    for seed in range(20):
        cluster = Cluster(random.Random(seed), ScalingSpec(max_replicas=4))
        for _ in range(40):
            cluster.replicas = desired_replicas(cluster.observe().counts, cluster.scaling)
            cluster.reconcile()
            cluster.events()
        removed += len(cluster.removed_busy)
    assert removed > 0
