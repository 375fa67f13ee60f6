"""From what the recorder saw to the figures: pure functions of plain data, unit-tested.

Times are seconds since the epoch (the tasks' timestamps come from Redis's clock, the events'
from this process's: one machine, one clock).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from bench.scaling.recorder import Removal, ReplicaChange

__all__ = ["TaskRecord", "TrialResult", "median", "trial_result"]


@dataclass(frozen=True)
class TaskRecord:
    status: str
    attempts: int
    losses: int
    started_at: float | None
    finished_at: float | None


@dataclass(frozen=True)
class TrialResult:
    setup: str
    workload: str
    trial: int
    start: float
    first_replica_s: float
    """From the first enqueue to the Deployment asking for a replica."""
    target_s: float
    """...to it asking for the workload's target (NaN: never reached)."""
    first_task_s: float
    """...to the first task's start (a worker ran and claimed)."""
    makespan_s: float
    """...to the last task's end."""
    scale_in_s: float
    """From the last task's end to 0 replicas and no pod left (NaN: not within the bound)."""
    removed: int
    busy_removed: int
    cut_off: int
    """Task runs cut off: times a task lost its worker while running (the sum of `losses`)."""
    reruns: int
    """Runs begun again after such a loss (a task that lost its worker too often fails
    `WorkerLost` instead: its last loss is not followed by a run)."""
    failed: int
    unfinished: int
    peak_replicas: int


def _first_at_least(changes: Sequence[ReplicaChange], after: float, value: int) -> float:
    for change in changes:
        if change.t >= after and change.replicas >= value:
            return change.t
    return math.nan


def trial_result(
    *,
    setup: str,
    workload: str,
    trial: int,
    start: float,
    target: int,
    tasks: Sequence[TaskRecord],
    changes: Sequence[ReplicaChange],
    removals: Sequence[Removal],
    zero_at: float | None,
) -> TrialResult:
    """One trial's figures. `start`: the first enqueue; `zero_at`: when the Deployment was back
    at 0 replicas with no pod left (None: not within the bound); `changes` and `removals` may
    cover more than the trial: only those from `start` to `zero_at` (or the end) count."""
    finished = [t.finished_at for t in tasks if t.finished_at is not None]
    started = [t.started_at for t in tasks if t.started_at is not None]
    work_end = max(finished) if finished else math.nan
    end = zero_at if zero_at is not None else math.inf
    mine = [r for r in removals if start <= r.t <= end]
    window = [c for c in changes if start <= c.t <= end]
    return TrialResult(
        setup=setup,
        workload=workload,
        trial=trial,
        start=start,
        first_replica_s=_first_at_least(changes, start, 1) - start,
        target_s=_first_at_least(changes, start, target) - start,
        first_task_s=(min(started) - start) if started else math.nan,
        makespan_s=work_end - start,
        scale_in_s=(zero_at - work_end) if zero_at is not None else math.nan,
        removed=len(mine),
        busy_removed=sum(1 for r in mine if r.busy),
        cut_off=sum(t.losses for t in tasks),
        reruns=sum(t.losses - (1 if t.status == "failed" and t.losses else 0) for t in tasks),
        failed=sum(1 for t in tasks if t.status == "failed"),
        unfinished=sum(1 for t in tasks if t.status not in ("complete", "failed")),
        peak_replicas=max((c.replicas for c in window), default=0),
    )


def median(values: Sequence[float]) -> float:
    """The median of the values that are numbers; NaN when there are none."""
    numbers = [v for v in values if not math.isnan(v)]
    return statistics.median(numbers) if numbers else math.nan
