"""The workloads: when each task is enqueued and how long it runs, the same for every setup.

A workload is a fixed schedule (no randomness), so the three setups face exactly the same
demand. Durations are in seconds of the task's own sleep; the worker's start-up and the scaler's
reaction come on top.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["WORKLOADS", "Arrival", "Workload", "workload"]


@dataclass(frozen=True)
class Arrival:
    """`count` tasks of `task_s` seconds each, enqueued together `at_s` after the start."""

    at_s: float
    count: int
    task_s: float


@dataclass(frozen=True)
class Workload:
    name: str
    description: str
    arrivals: tuple[Arrival, ...]
    #: The replicas the demand asks for at its peak (capped by the maximum): the burst's target.
    target: int
    trials: int
    #: How long the work may take, scale-up and re-runs included, before the trial gives up.
    deadline_s: float

    @property
    def tasks(self) -> int:
        return sum(a.count for a in self.arrivals)

    @property
    def last_arrival_s(self) -> float:
        return max(a.at_s for a in self.arrivals)

    @property
    def busy_s(self) -> float:
        """Task-seconds of work in the schedule."""
        return sum(a.count * a.task_s for a in self.arrivals)


def _burst(max_replicas: int) -> Workload:
    count = 2 * max_replicas
    return Workload(
        name="burst",
        description=(
            f"{count} tasks of 20 s enqueued at once on an empty queue with no worker: "
            f"two waves for {max_replicas} replicas"
        ),
        arrivals=(Arrival(0.0, count, 20.0),),
        target=max_replicas,
        trials=2,
        deadline_s=300.0,
    )


def _trickle(max_replicas: int) -> Workload:
    return Workload(
        name="trickle",
        description="one task of 5 s every 3 s for 90 s (30 tasks): about 2 busy at any time",
        arrivals=tuple(Arrival(3.0 * i, 1, 5.0) for i in range(30)),
        target=min(2, max_replicas),
        trials=1,
        deadline_s=300.0,
    )


def _mixed(max_replicas: int) -> Workload:
    waves = 6
    arrivals = []
    for i in range(waves):
        arrivals += [Arrival(10.0 * i, 1, 60.0), Arrival(10.0 * i, 3, 3.0)]
    return Workload(
        name="mixed",
        description=(
            f"every 10 s for {10 * (waves - 1)} s, one task of 60 s and three of 3 s: the "
            "pending list is empty most of the time while the long tasks run"
        ),
        arrivals=tuple(arrivals),
        target=min(waves + 3, max_replicas),
        trials=1,
        deadline_s=420.0,
    )


def workload(name: str, max_replicas: int) -> Workload:
    return {"burst": _burst, "trickle": _trickle, "mixed": _mixed}[name](max_replicas)


WORKLOADS = ("burst", "trickle", "mixed")
