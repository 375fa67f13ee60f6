"""The scaling policy, case by case: scale up, the three steps of a safe scale-down, the sweep."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from blueque_operator.policy import (
    LOWEST_DELETION_COST,
    SCALE_DOWN_TIMEOUT_S,
    Counts,
    Decision,
    Observation,
    Pod,
    ScaleDownState,
    Worker,
    Workload,
    decide,
    desired_replicas,
    protection_changes,
)
from blueque_operator.spec import ScalingSpec

UID = "bq-uid"
NOW = 10_000.0
LOW = LOWEST_DELETION_COST
SCALING = ScalingSpec(min_replicas=0, max_replicas=10, tasks_per_worker=1, scale_down_delay_s=30)


def idle(name: str, **kw: Any) -> Worker:
    return Worker(name, owner=UID, **kw)


def busy(name: str, **kw: Any) -> Worker:
    return Worker(name, owner=UID, task=f"q:{name}", busy_since=NOW - 5, **kw)


def observe(
    pods: list[Pod],
    workers: list[Worker],
    *,
    pending: int = 0,
    replicas: int | None = None,
    state: ScaleDownState | None = None,
    scaling: ScalingSpec = SCALING,
    now: float = NOW,
    **workload: Any,
) -> Observation:
    running = sum(1 for w in workers if w.busy and w.owner == UID)
    return Observation(
        counts=Counts(pending=pending, reserved=0, running=running),
        workload=Workload(
            replicas=len([p for p in pods if p.active]) if replicas is None else replicas,
            **workload,
        ),
        pods=pods,
        workers=workers,
        scaling=scaling,
        owner=UID,
        now=now,
        state=ScaleDownState(low_demand_since=now - 60) if state is None else state,
    )


def pods(*names: str, **kw: Any) -> list[Pod]:
    return [Pod(name, **kw) for name in names]


# -- desired ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pending", "reserved", "running", "minimum", "maximum", "per_worker", "expected"),
    [
        (0, 0, 0, 0, 10, 1, 0),  # scale to zero
        (0, 0, 0, 2, 10, 1, 2),  # minReplicas holds
        (3, 1, 2, 0, 10, 1, 6),  # pending + reserved + running
        (5, 0, 0, 0, 10, 2, 3),  # ceil(5 / 2)
        (50, 0, 0, 0, 4, 1, 4),  # maxReplicas caps
        (0, 0, 1, 0, 0, 1, 0),  # maxReplicas 0: nothing runs
    ],
)
def test_desired_replicas(
    pending: int,
    reserved: int,
    running: int,
    minimum: int,
    maximum: int,
    per_worker: int,
    expected: int,
) -> None:
    scaling = ScalingSpec(min_replicas=minimum, max_replicas=maximum, tasks_per_worker=per_worker)
    assert desired_replicas(Counts(pending, reserved, running), scaling) == expected


# -- up --------------------------------------------------------------------------------------


def test_scale_up_from_zero_at_once() -> None:
    decision = decide(observe([], [], pending=3, replicas=0, state=ScaleDownState()))
    assert decision.replicas == 3
    assert decision.desired == 3
    assert decision.state == ScaleDownState()
    assert "scale up to 3" in decision.reason


def test_scale_up_undrains_first() -> None:
    # A drain no scale-down owns (left by a dead operator) is undone, with the scale-up.
    decision = decide(
        observe(pods("a", "b"), [idle("a", draining=True), busy("b")], pending=3, replicas=2)
    )
    assert decision.undrain == ("a",)
    assert decision.replicas == 4


def test_scale_up_cancels_a_scale_down_that_drained() -> None:
    state = ScaleDownState(NOW - 60, drained=("a",), deadline=NOW + 60)
    decision = decide(
        observe(
            [Pod("a", deletion_cost=LOW), Pod("b")],
            [idle("a", draining=True), busy("b")],
            pending=2,
            state=state,
        )
    )
    assert decision.undrain == ("a",)
    assert decision.restore_cost == ("a",)
    assert decision.replicas == 3
    assert decision.state == ScaleDownState()


def test_demand_matching_the_replicas_resets_the_delay() -> None:
    decision = decide(observe(pods("a"), [busy("a")]))
    assert decision.replicas is None
    assert decision.state == ScaleDownState()


# -- down: waiting and planning ----------------------------------------------------------------


def test_scale_down_waits_for_the_delay() -> None:
    three = pods("a", "b", "c")
    workers = [busy("a"), idle("b"), idle("c")]
    first = decide(observe(three, workers, state=ScaleDownState()))
    assert first.state == ScaleDownState(low_demand_since=NOW)
    assert (first.replicas, first.drain) == (None, ())
    later = decide(observe(three, workers, state=first.state, now=NOW + 29.9))
    assert (later.replicas, later.drain, later.state) == (None, (), first.state)
    due = decide(observe(three, workers, state=first.state, now=NOW + 30))
    assert due.drain == ("b", "c")


def test_plan_drains_idle_workers_only_and_gives_them_the_lowest_cost() -> None:
    decision = decide(observe(pods("a", "b", "c"), [busy("a"), idle("b"), idle("c")]))
    assert decision.drain == ("b", "c")
    assert decision.lowest_cost == ("b", "c")
    assert decision.replicas is None  # lowered only once the drains took
    assert decision.state.drained == ("b", "c")
    assert decision.state.deadline == NOW + SCALE_DOWN_TIMEOUT_S
    assert decision.hold is None


def test_plan_prefers_pods_the_replicaset_removes_first() -> None:
    cluster = [Pod("a"), Pod("b", ready=False), Pod("c"), Pod("d", phase="Pending", ready=False)]
    workers = [idle("a"), idle("b"), busy("c")]  # d: not registered yet
    decision = decide(observe(cluster, workers, pending=1))  # desired 2, of 4
    assert decision.drain == ("d", "b")  # Pending first, then not Ready
    assert decision.state.drained == ("d", "b")


def test_an_unregistered_unscheduled_pod_goes_first() -> None:
    cluster = [Pod("a"), Pod("b", scheduled=False, phase="Pending", ready=False)]
    decision = decide(observe(cluster, [busy("a")]))
    assert decision.drain == ("b",)


def test_a_busy_pod_that_is_not_ready_blocks() -> None:
    cluster = [Pod("a", ready=False), Pod("b"), Pod("c")]
    decision = decide(observe(cluster, [busy("a"), idle("b"), idle("c")], pending=1))
    assert decision.drain == ()
    assert decision.replicas is None
    assert decision.hold is not None
    assert "pod a holds a task and is not Ready" in decision.hold
    assert decision.state.low_demand_since == NOW - 60  # still counting


def test_partial_scale_down_around_a_busy_slow_pod() -> None:
    # Two idle not-Ready pods and one busy not-Ready pod: at most the two idle ones can go,
    # and only if every not-Ready pod the ReplicaSet takes first is idle.
    cluster = [Pod("a", ready=False), Pod("b", ready=False), Pod("c", ready=False), Pod("d")]
    workers = [idle("a"), idle("b"), busy("c"), busy("d")]
    decision = decide(observe(cluster, workers, scaling=replace(SCALING, max_replicas=1)))
    assert decision.drain == ("a", "b")  # not the three the surplus asks for
    assert decision.hold is None


def test_every_worker_busy_is_no_hold() -> None:
    scaling = replace(SCALING, tasks_per_worker=2)
    decision = decide(
        observe(pods("a", "b", "c"), [busy("a"), busy("b"), busy("c")], scaling=scaling)
    )
    assert decision.desired == 2
    assert (decision.drain, decision.hold) == ((), None)
    assert "no idle worker" in decision.reason


def test_no_scale_down_during_a_rollout() -> None:
    cluster = [Pod("a"), Pod("b", current=False)]
    decision = decide(observe(cluster, [idle("a"), idle("b")]))
    assert decision.drain == ()
    assert decision.hold is not None and "rollout" in decision.hold
    decision = decide(observe(pods("a", "b"), [idle("a"), idle("b")], rollout=True))
    assert decision.hold is not None and "rollout" in decision.hold


def test_no_scale_down_while_the_deployment_settles() -> None:
    decision = decide(observe(pods("a", "b"), [idle("a"), idle("b")], settled=False))
    assert (decision.drain, decision.hold) == ((), None)


def test_pods_not_created_yet_go_without_draining() -> None:
    # 5 replicas wanted earlier, 2 pods exist, demand now 3: no pod has to be removed.
    decision = decide(observe(pods("a", "b"), [busy("a"), busy("b")], pending=1, replicas=5))
    assert decision.replicas == 3
    assert decision.drain == ()


def test_scale_to_zero() -> None:
    plan = decide(observe(pods("a", "b"), [idle("a"), idle("b")]))
    assert plan.drain == ("a", "b")
    drained = decide(
        observe(
            [Pod("a", deletion_cost=LOW), Pod("b", deletion_cost=LOW)],
            [idle("a", draining=True), idle("b", draining=True)],
            state=plan.state,
        )
    )
    assert drained.replicas == 0
    assert drained.state.target == 0


# -- down: lowering the replicas ---------------------------------------------------------------


def drained_state(*names: str) -> ScaleDownState:
    return ScaleDownState(NOW - 60, drained=names, deadline=NOW + 60)


def test_lower_once_the_drains_and_costs_show() -> None:
    cluster = [Pod("a"), Pod("b", deletion_cost=LOW), Pod("c", deletion_cost=LOW)]
    workers = [busy("a"), idle("b", draining=True), idle("c", draining=True)]
    decision = decide(observe(cluster, workers, state=drained_state("b", "c")))
    assert decision.replicas == 1
    assert decision.state.target == 1
    assert decision.state.drained == ("b", "c")
    assert decision.state.deadline == NOW + SCALE_DOWN_TIMEOUT_S
    assert decision.undrain == ()


def test_lower_waits_for_the_costs() -> None:
    cluster = [Pod("a"), Pod("b"), Pod("c", deletion_cost=LOW)]
    workers = [busy("a"), idle("b", draining=True), idle("c", draining=True)]
    decision = decide(observe(cluster, workers, state=drained_state("b", "c")))
    assert decision.replicas is None
    assert decision.lowest_cost == ("b",)
    assert decision.state == drained_state("b", "c")
    late = decide(observe(cluster, workers, state=drained_state("b", "c"), now=NOW + 61))
    assert late.undrain == ("b", "c")  # gave up at the deadline
    assert late.state == ScaleDownState(NOW - 60)


def test_lower_only_by_the_drains_that_took() -> None:
    cluster = [Pod("a"), Pod("b", deletion_cost=LOW), Pod("c", deletion_cost=LOW)]
    workers = [busy("a"), idle("b", draining=True), busy("c")]  # c began a task first
    decision = decide(observe(cluster, workers, state=drained_state("b", "c")))
    # c still has the lowest cost: the ReplicaSet could take it instead of b. Not yet.
    assert decision.replicas is None
    assert decision.restore_cost == ("c",)
    assert decision.state.drained == ("b",)
    cluster[2] = Pod("c")
    decision = decide(observe(cluster, workers, state=decision.state))
    assert decision.replicas == 2
    assert decision.state.target == 2


def test_no_drain_took() -> None:
    cluster = [Pod("a"), Pod("b", deletion_cost=LOW)]
    scaling = replace(SCALING, max_replicas=1)
    decision = decide(
        observe(cluster, [busy("a"), busy("b")], state=drained_state("b"), scaling=scaling)
    )
    assert decision.replicas is None
    assert decision.undrain == ()  # nothing is drained
    assert decision.restore_cost == ("b",)
    assert decision.state == ScaleDownState(NOW - 60)


def test_a_pod_turning_not_ready_cancels_the_lowering() -> None:
    # The ReplicaSet would now remove busy, not-Ready a before the drained ones.
    cluster = [Pod("a", ready=False), Pod("b", deletion_cost=LOW), Pod("c", deletion_cost=LOW)]
    workers = [busy("a"), idle("b", draining=True), idle("c", draining=True)]
    decision = decide(observe(cluster, workers, state=drained_state("b", "c")))
    assert decision.replicas is None
    assert decision.undrain == ("b", "c")
    assert set(decision.restore_cost) == {"b", "c"}
    assert decision.state == ScaleDownState(NOW - 60)


def test_demand_rising_while_draining_cancels_and_scales_up() -> None:
    cluster = [Pod("a"), Pod("b", deletion_cost=LOW)]
    workers = [busy("a"), idle("b", draining=True)]
    decision = decide(observe(cluster, workers, pending=2, state=drained_state("b")))
    assert decision.undrain == ("b",)
    assert decision.replicas == 3
    assert decision.state == ScaleDownState()


def test_a_rollout_while_draining_cancels() -> None:
    cluster = [Pod("a"), Pod("b", deletion_cost=LOW)]
    workers = [busy("a"), idle("b", draining=True)]
    decision = decide(observe(cluster, workers, state=drained_state("b"), rollout=True))
    assert decision.undrain == ("b",)
    assert decision.replicas is None


# -- down: settling ----------------------------------------------------------------------------


def lowered_state(target: int, *names: str, deadline: float = NOW + 60) -> ScaleDownState:
    return ScaleDownState(NOW - 60, drained=names, target=target, deadline=deadline)


def test_settled_scale_down_is_forgotten() -> None:
    cluster = [Pod("a"), Pod("b", deletion_cost=LOW, terminating=True)]
    workers = [busy("a"), idle("b", draining=True)]
    decision = decide(observe(cluster, workers, replicas=1, state=lowered_state(1, "b")))
    assert decision.undrain == ()  # b's pod is terminating: its worker must take nothing
    assert decision.state == ScaleDownState(NOW - 60)


def test_drained_pods_that_stayed_are_undrained_once_settled() -> None:
    cluster = [Pod("a"), Pod("c", deletion_cost=LOW)]  # the ReplicaSet removed b only
    workers = [busy("a"), idle("c", draining=True)]
    decision = decide(
        observe(cluster, workers, pending=1, replicas=2, state=lowered_state(2, "b", "c"))
    )
    assert decision.undrain == ("c",)
    assert decision.restore_cost == ("c",)
    assert decision.state == ScaleDownState(NOW - 60)


def test_waiting_for_the_replicaset() -> None:
    cluster = [Pod("a"), Pod("b", deletion_cost=LOW)]
    workers = [busy("a"), idle("b", draining=True)]
    state = lowered_state(1, "b")
    decision = decide(observe(cluster, workers, replicas=1, state=state, settled=False))
    assert decision == Decision(
        desired=1, state=state, reason="waiting for the ReplicaSet to remove b"
    )


def test_the_deadline_undrains_what_stayed() -> None:
    cluster = [Pod("a"), Pod("b", deletion_cost=LOW)]
    workers = [busy("a"), idle("b", draining=True)]
    state = lowered_state(1, "b", deadline=NOW)
    decision = decide(observe(cluster, workers, replicas=1, state=state, settled=False))
    assert decision.undrain == ("b",)
    assert decision.state == ScaleDownState(NOW - 60)
    assert "in time" in decision.reason


def test_demand_rising_after_the_lowering_scales_up_and_undrains() -> None:
    cluster = [Pod("a"), Pod("b", deletion_cost=LOW), Pod("c", deletion_cost=LOW, terminating=True)]
    workers = [busy("a"), idle("b", draining=True), idle("c", draining=True)]
    state = lowered_state(1, "b", "c")
    decision = decide(observe(cluster, workers, pending=3, replicas=1, state=state, settled=False))
    assert decision.replicas == 4
    assert decision.undrain == ("b",)  # c is going anyway
    assert decision.state == ScaleDownState()


def test_replicas_changed_by_someone_else_ends_the_scale_down() -> None:
    cluster = [Pod("a"), Pod("b", deletion_cost=LOW)]
    workers = [busy("a"), idle("b", draining=True)]
    decision = decide(observe(cluster, workers, replicas=5, state=lowered_state(1, "b")))
    assert decision.undrain == ("b",)
    assert decision.state.target is None


# -- the sweep, costs, pause -------------------------------------------------------------------


def test_the_sweep_undrains_only_our_unowned_drains() -> None:
    cluster = [Pod("a"), Pod("b"), Pod("c", terminating=True), Pod("d")]
    workers = [
        busy("a"),
        Worker("b", owner=UID, draining=True),  # ours, no scale-down: undrained
        Worker("c", owner=UID, draining=True),  # its pod is terminating: left alone
        Worker("d", draining=True),  # not registered yet, our pod's name: undrained
        Worker("laptop", owner=None, draining=True),  # no pod of ours: someone else's
        Worker("x", owner="other-uid", draining=True),  # another BlueQueue's
    ]
    decision = decide(observe(cluster, workers, pending=2, replicas=3))
    assert decision.undrain == ("b", "d")


def test_stale_lowest_costs_are_restored() -> None:
    cluster = [Pod("a", deletion_cost=LOW), Pod("b", deletion_cost=5)]
    decision = decide(observe(cluster, [busy("a"), busy("b")]))
    assert decision.restore_cost == ("a",)
    assert decision.lowest_cost == ()


def test_paused_changes_nothing() -> None:
    cluster = [Pod("a", deletion_cost=LOW), Pod("b")]
    workers = [idle("a", draining=True), idle("b")]
    state = drained_state("a")
    for pending in (0, 9):
        decision = decide(
            observe(
                cluster,
                workers,
                pending=pending,
                state=state,
                scaling=replace(SCALING, paused=True),
            )
        )
        assert decision == Decision(desired=pending, state=state, reason="paused")


# -- protection from node autoscalers --------------------------------------------------------


def test_protection_annotations() -> None:
    cluster = [
        Pod("long"),
        Pod("short"),
        Pod("idle", protected=True),
        Pod("gone", protected=True),
        Pod("kept", protected=True),
        Pod("leaving", terminating=True, protected=True),
        Pod("unknown"),
    ]
    workers = [
        Worker("long", task="q:1", busy_since=NOW - 60),
        Worker("short", task="q:2", busy_since=NOW - 59),
        Worker("idle"),
        Worker("kept", task="q:3", busy_since=NOW - 600),
        Worker("leaving"),
        Worker("unknown", task="q:4"),  # began before anyone saw it: not yet
    ]
    assert protection_changes(cluster, workers, NOW) == {"long": True, "idle": False, "gone": False}


def test_pods_gone_while_draining_lower_without_removing() -> None:
    # Found by the property test: busy workers' pods left meanwhile; 1 pod is counted, 2 wanted.
    cluster = [Pod("a", terminating=True), Pod("b", terminating=True), Pod("c", deletion_cost=LOW)]
    workers = [busy("a"), busy("b"), idle("c", draining=True)]
    decision = decide(observe(cluster, workers, replicas=3, state=drained_state("c")))
    assert decision.replicas == 2
    assert decision.undrain == ("c",)
    assert decision.state == ScaleDownState(NOW - 60)
