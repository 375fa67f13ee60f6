"""The scaling benchmark's pure parts: figures from records, the schedules, the SVG, the knobs."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

from bench.scaling.plots import Panel, figure
from bench.scaling.recorder import Removal, ReplicaChange, Sample
from bench.scaling.results import TaskRecord, median, trial_result
from bench.scaling.setups import SETUPS, Common, knob_rows
from bench.scaling.workloads import WORKLOADS, workload

T0 = 1000.0


def _task(
    started: float, finished: float, *, losses: int = 0, status: str = "complete"
) -> TaskRecord:
    return TaskRecord(status, 1 + losses, losses, started, finished)


def test_a_trial_is_measured_from_its_first_enqueue_and_counts_only_its_own_window() -> None:
    changes = [
        ReplicaChange(T0 - 50, 4),  # an earlier trial's
        ReplicaChange(T0 - 10, 0),
        ReplicaChange(T0 + 2.0, 1),
        ReplicaChange(T0 + 5.0, 4),
        ReplicaChange(T0 + 9.0, 10),
        ReplicaChange(T0 + 70.0, 0),
    ]
    removals = [
        Removal(T0 - 20, "old", True, "x"),  # before the trial: not counted
        Removal(T0 + 40, "a", True, "t1"),
        Removal(T0 + 70, "b", False, None),
        Removal(T0 + 90, "late", True, "y"),  # after zero: the next trial's
    ]
    tasks = [
        _task(T0 + 3.5, T0 + 30),
        _task(T0 + 4.0, T0 + 60, losses=1),
        _task(T0 + 4.0, T0 + 50, losses=2, status="failed"),
    ]
    result = trial_result(
        setup="s",
        workload="burst",
        trial=0,
        start=T0,
        target=10,
        tasks=tasks,
        changes=changes,
        removals=removals,
        zero_at=T0 + 80,
    )
    assert result.first_replica_s == 2.0
    assert result.target_s == 9.0
    assert result.first_task_s == 3.5
    assert result.makespan_s == 60.0
    assert result.scale_in_s == 20.0
    assert (result.removed, result.busy_removed) == (2, 1)
    assert result.cut_off == 3
    assert result.reruns == 2  # the failed task's last loss was not followed by a run
    assert (result.failed, result.unfinished) == (1, 0)
    assert result.peak_replicas == 10


def test_a_target_never_reached_and_no_return_to_zero_are_nan_not_zero() -> None:
    result = trial_result(
        setup="s",
        workload="burst",
        trial=0,
        start=T0,
        target=10,
        tasks=[_task(T0 + 1, T0 + 2), TaskRecord("pending", 0, 0, None, None)],
        changes=[ReplicaChange(T0 + 1, 4)],
        removals=[],
        zero_at=None,
    )
    assert result.first_replica_s == 1.0
    assert math.isnan(result.target_s)
    assert math.isnan(result.scale_in_s)
    assert result.unfinished == 1


def test_median_skips_nan() -> None:
    assert median([3.0, math.nan, 1.0, 2.0]) == 2.0
    assert math.isnan(median([math.nan]))


def test_every_workload_is_a_fixed_schedule_within_the_maximum() -> None:
    for name in WORKLOADS:
        load = workload(name, 10)
        assert load.tasks > 0 and load.trials >= 1
        assert 1 <= load.target <= 10
        assert load == workload(name, 10)  # no randomness
    assert workload("burst", 10).tasks == 20
    assert workload("burst", 4).target == 4


def test_the_setups_share_everything_but_the_scaler() -> None:
    common = Common("redis://127.0.0.1:6379/0", max_replicas=7, grace_s=45)
    keda_default, keda_tuned, blueque = SETUPS
    deployment = keda_default.objects(common)[0][1]
    scaled = keda_default.objects(common)[1][1]["spec"]
    tuned = keda_tuned.objects(common)[1][1]["spec"]
    bq = blueque.objects(common)[0][1]["spec"]
    pod = deployment["spec"]["template"]["spec"]
    assert (
        pod["terminationGracePeriodSeconds"] == 45 == bq["worker"]["terminationGracePeriodSeconds"]
    )
    assert pod["containers"][0]["args"] == bq["worker"]["args"]
    assert (
        scaled["maxReplicaCount"] == tuned["maxReplicaCount"] == bq["scaling"]["maxReplicas"] == 7
    )
    assert (
        scaled["minReplicaCount"] == tuned["minReplicaCount"] == bq["scaling"]["minReplicas"] == 0
    )
    # KEDA reads the literal pending list; its defaults stay unset in the default setup.
    assert scaled["triggers"][0]["metadata"] == {
        "address": "127.0.0.1:6379",
        "listName": "blueque:{bench-keda-default}:pending",
        "listLength": "1",
    }
    assert "pollingInterval" not in scaled and "advanced" not in scaled
    assert tuned["pollingInterval"] == 1
    assert keda_tuned.controller_manager_flags == ("--horizontal-pod-autoscaler-sync-period=1s",)
    assert keda_default.controller_manager_flags == blueque.controller_manager_flags == ()
    assert all(len(row) == 4 for row in knob_rows(common))


def test_the_figure_is_svg_with_one_panel_per_setup() -> None:
    samples = [
        Sample(
            T0 + i,
            pending=max(0, 5 - i),
            reserved=0,
            running=2,
            replicas=3,
            pods=i % 4,
            terminating=0,
        )
        for i in range(10)
    ]
    svg = figure(
        "burst",
        [Panel("A", samples, T0, T0 + 10), Panel("B", samples, T0, T0 + 5), Panel("C", [], T0, T0)],
        duration_s=10,
        y_max=10,
    )
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    assert root.tag == f"{ns}svg"
    titles = [t.text for t in root.iter(f"{ns}text")]
    assert {"A", "B", "C"} <= set(titles)
    # Four series in each of the two panels that have samples, none in the empty one.
    assert len(list(root.iter(f"{ns}polyline"))) == 8
