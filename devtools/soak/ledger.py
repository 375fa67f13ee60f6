"""What a soak found, from plain data: the executions the tasks recorded, what the soak did to
the worker processes and to Redis, and each task's final state. Pure functions, unit-tested
without Redis (tests/unit/test_soak_ledger.py); `harness.py` gathers the data.

The two numbers that must be 0 (see the package docstring for why they are defined so):

- **lost**: a task whose final state, once everything quiesced, is not complete, failed or
  cancelled (or whose hash is gone);
- **over-run**: a task run more often than its worker died. Its executions, in the order
  they were begun, form reruns (each execution but the last, followed by the next one); a
  rerun is explained when the worker process that ran the previous execution was lost
  between the begin of that execution and the start of the next (SIGKILLed, SIGSTOPped for
  longer than the heartbeat TTL minus one interval, or exited on its own), or else when the
  previous execution failed on purpose and the queue scheduled an automatic retry (at most
  `retries` of them). A task with a rerun left unexplained ran once more than its workers'
  deaths allow.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

FINISHED = ("complete", "failed", "cancelled")
BEGIN_LEAD_S = 2.0
"""How long before an execution's first line its worker may have begun it: a worker resumed
by SIGCONT reads its begin's answer, forks and calls the task within this (loaded machine)."""
DETAIL_LIMIT = 20
"""Tasks described one by one in the printed summary, per kind (all are in the JSON)."""


@dataclass(frozen=True)
class Execution:
    """One run of a task function, as the task recorded it when it started."""

    task_id: str
    incarnation: str
    """The worker process that ran it (`w<slot>.<start>`, one per process the soak started)."""
    attempt: int
    at: float
    """Unix time at which the function started."""
    fails: bool
    """Whether it was about to raise on purpose (then an automatic retry follows)."""
    pid: int = 0
    """The process that ran it (the worker's, or its forked child's)."""

    @classmethod
    def from_json(cls, task_id: str, text: str) -> Execution:
        data = json.loads(text)
        return cls(
            task_id=task_id,
            incarnation=str(data["inc"]),
            attempt=int(data["attempt"]),
            at=float(data["at"]),
            fails=bool(data["fails"]),
            pid=int(data.get("pid", 0)),
        )


@dataclass(frozen=True)
class Happening:
    """Something the soak did or saw during a time interval: a signal to a worker process,
    a Redis outage, a task requeued (from the queue's events)."""

    what: str
    start: float
    end: float
    incarnation: str | None = None
    """The worker process it happened to; None when it concerns no one worker (Redis, the
    scheduler)."""
    task_id: str | None = None
    """The task it concerns, for events about one task."""
    loss: bool = False
    """The worker process was lost: a rerun of what it ran is allowed."""

    def overlaps(self, start: float, end: float) -> bool:
        return self.end >= start and self.start <= end


@dataclass(frozen=True)
class FinalTask:
    """A task's hash once everything quiesced (state None: the hash is gone)."""

    id: str
    state: str | None
    attempts: int = 0
    retries: int = 0
    losses: int = 0
    """Times the queue says the task lost its worker while running (shown, never trusted)."""
    error_type: str | None = None
    error_message: str | None = None
    worker: str | None = None

    @property
    def reason(self) -> str:
        """Why it failed, short: the error type, and for a worker lost its reason."""
        kind = (self.error_type or "unknown").rsplit(".", 1)[-1]
        message = self.error_message or ""
        if kind == "WorkerLost":
            return f"WorkerLost ({message.split(' (', 1)[0]})"
        if kind == "KilledBySignal":
            return f"KilledBySignal ({message.rsplit(' ', 1)[-1]})"
        return kind


@dataclass(frozen=True)
class Rerun:
    previous: Execution
    next: Execution
    cause: str | None
    """What allowed it; None when nothing did."""
    around: tuple[Happening, ...] = ()
    """For an unexplained rerun: what happened around it (to its worker, to Redis, to the
    task), to debug."""


@dataclass(frozen=True)
class TaskVerdict:
    task: FinalTask
    executions: tuple[Execution, ...]
    reruns: tuple[Rerun, ...]

    @property
    def lost(self) -> bool:
        return self.task.state not in FINISHED

    @property
    def unexplained(self) -> tuple[Rerun, ...]:
        return tuple(r for r in self.reruns if r.cause is None)


@dataclass(frozen=True)
class Summary:
    enqueued: int
    completed: int
    failed: dict[str, int]
    """Reason -> count."""
    cancelled: int
    lost: tuple[TaskVerdict, ...]
    over_run: tuple[TaskVerdict, ...]
    executions: int
    reruns: dict[str, int]
    """Cause ('SIGKILL', 'SIGSTOP', 'planned failure', ..., or 'unexplained') -> count."""
    never_ran: dict[str, int]
    """Final state -> tasks that finished without an execution (a cancel before they ran;
    'complete' here would be a bug)."""
    begun_not_run: int
    """Attempts counted beyond the executions seen: begins that never reached the function
    (a worker killed between begin and the first line of the task, or issue 8 case 9)."""
    run: dict[str, Any] = field(default_factory=dict)
    """How the soak ran: settings, what it did, timings (from the harness)."""
    warnings: tuple[str, ...] = ()
    """Other inconsistencies seen (counters, crashed workers...): not fatal, but worth a
    look."""
    happenings: tuple[Happening, ...] = ()
    """Everything the soak did and saw, for the JSON report (to judge again by hand)."""

    @property
    def ok(self) -> bool:
        return not self.lost and not self.over_run

    @property
    def unexplained_around(self) -> dict[str, int]:
        """Unexplained reruns counted by what the soak did around them ('Redis', 'SIGSTOP',
        'Redis+SIGTERM', 'nothing known'...): where to look first."""
        return dict(Counter(_around_label(r) for v in self.over_run for r in v.unexplained))

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "enqueued": self.enqueued,
            "completed": self.completed,
            "failed": self.failed,
            "cancelled": self.cancelled,
            "lost": [_verdict_json(v) for v in self.lost],
            "over_run": [_verdict_json(v) for v in self.over_run],
            "unexplained_around": self.unexplained_around,
            "executions": self.executions,
            "reruns": self.reruns,
            "never_ran": self.never_ran,
            "begun_not_run": self.begun_not_run,
            "run": self.run,
            "warnings": list(self.warnings),
            "happenings": [_happening_json(h) for h in self.happenings],
        }


def judge(
    final: FinalTask, executions: Iterable[Execution], happenings: Iterable[Happening]
) -> TaskVerdict:
    """One task's executions checked against what happened to the workers that ran them.

    Executions are taken in the order they were begun (attempt), not started: a worker
    stopped between its begin and the first line of the task starts its attempt after the
    next worker started the next one. A rerun's window runs from a little before the previous
    execution started (`BEGIN_LEAD_S`: its worker may have been lost between the begin and
    that start) to the start of the next one.

    A planned failure explains its rerun only as often as the queue really scheduled an
    automatic retry (`retries`): a failure whose worker was wrongly presumed dead before it
    could record it is rerun by a requeue, not by a retry, and that rerun is unexplained.
    """
    ordered = tuple(sorted(executions, key=lambda e: (e.attempt, e.at)))
    events = list(happenings)
    pairs = list(pairwise(ordered))
    around = [
        [h for h in events if h.overlaps(min(p.at - BEGIN_LEAD_S, n.at), n.at)] for p, n in pairs
    ]
    causes: list[str | None] = []
    for (previous, _), seen in zip(pairs, around, strict=True):
        lost = [h for h in seen if h.loss and h.incarnation == previous.incarnation]
        causes.append(lost[0].what.split(" ", 1)[0] if lost else None)
    retries = final.retries
    for i, (previous, _) in enumerate(pairs):
        if causes[i] is None and previous.fails and retries > 0:
            causes[i] = "planned failure"
            retries -= 1
    reruns = []
    for (previous, nxt), seen, cause in zip(pairs, around, causes, strict=True):
        notes: tuple[Happening, ...] = ()
        if cause is None:
            notes = tuple(
                h
                for h in seen
                if h.incarnation in (None, previous.incarnation) and h.task_id in (None, final.id)
            )
        reruns.append(Rerun(previous, nxt, cause, notes))
    return TaskVerdict(final, ordered, tuple(reruns))


def summarize(
    tasks: Mapping[str, FinalTask],
    executions: Mapping[str, Iterable[Execution]],
    happenings: Iterable[Happening],
    *,
    run: dict[str, Any] | None = None,
    warnings: Iterable[str] = (),
) -> Summary:
    """The verdict on every task the soak enqueued."""
    happening_list = list(happenings)
    by_incarnation: dict[str | None, list[Happening]] = {}
    by_task: dict[str, list[Happening]] = {}
    for h in happening_list:
        if h.task_id is not None:
            by_task.setdefault(h.task_id, []).append(h)
        else:
            by_incarnation.setdefault(h.incarnation, []).append(h)
    verdicts = []
    for task_id, final in tasks.items():
        runs = list(executions.get(task_id, ()))
        relevant = list(by_incarnation.get(None, [])) + by_task.get(task_id, [])
        for inc in {e.incarnation for e in runs}:
            relevant += by_incarnation.get(inc, [])
        verdicts.append(judge(final, runs, relevant))
    states = Counter(v.task.state for v in verdicts)
    reruns = Counter(r.cause or "unexplained" for v in verdicts for r in v.reruns)
    return Summary(
        enqueued=len(verdicts),
        completed=states["complete"],
        failed=dict(Counter(v.task.reason for v in verdicts if v.task.state == "failed")),
        cancelled=states["cancelled"],
        lost=tuple(v for v in verdicts if v.lost),
        over_run=tuple(v for v in verdicts if v.unexplained),
        executions=sum(len(v.executions) for v in verdicts),
        reruns=dict(reruns),
        never_ran=dict(Counter(str(v.task.state) for v in verdicts if not v.executions)),
        begun_not_run=sum(max(0, v.task.attempts - len(v.executions)) for v in verdicts),
        run=dict(run or {}),
        warnings=tuple(warnings),
        happenings=tuple(happening_list),
    )


def format_summary(summary: Summary, origin: float = 0.0) -> str:
    """The printed report; times are seconds since `origin` (the soak's start)."""
    s = summary
    failed = ", ".join(f"{reason} {n}" for reason, n in sorted(s.failed.items())) or "none"
    reruns = ", ".join(f"{cause} {n}" for cause, n in sorted(s.reruns.items())) or "none"
    never = ", ".join(f"{state} {n}" for state, n in sorted(s.never_ran.items())) or "none"
    extra = sum(len(v.unexplained) for v in s.over_run)
    lines = [f"{key}: {value}" for key, value in s.run.items()]
    lines += [
        f"tasks enqueued:    {s.enqueued}",
        f"completed:         {s.completed}",
        f"failed:            {sum(s.failed.values())} ({failed})",
        f"cancelled:         {s.cancelled}",
        f"executions:        {s.executions}; reruns by cause: {reruns}",
        f"finished unrun:    {never}; attempts begun but not run: {s.begun_not_run}",
        f"LOST:              {len(s.lost)}  (must be 0)",
        f"OVER-RUN:          {len(s.over_run)}  (must be 0; {extra} executions more than"
        " their workers' deaths allow)",
    ]
    if s.over_run:
        lines.append(
            "unexplained reruns by what happened around them: "
            + ", ".join(f"{label} {n}" for label, n in sorted(s.unexplained_around.items()))
        )
    lines += [f"warning: {w}" for w in s.warnings]
    for verdict in s.lost[:DETAIL_LIMIT]:
        t = verdict.task
        lines.append(
            f"lost {t.id}: state {t.state}, attempts {t.attempts}, worker {t.worker},"
            f" {len(verdict.executions)} execution(s)"
        )
    for verdict in s.over_run[:DETAIL_LIMIT]:
        lines.append(f"over-run {verdict.task.id}: {_runs_text(verdict, origin)}")
        for r in verdict.unexplained:
            around = "; ".join(_happening_text(h, origin) for h in r.around) or "nothing known"
            lines.append(
                f"  rerun after #{verdict.executions.index(r.previous) + 1} unexplained;"
                f" around it: {around}"
            )
    hidden = max(0, len(s.lost) - DETAIL_LIMIT) + max(0, len(s.over_run) - DETAIL_LIMIT)
    if hidden:
        lines.append(f"... {hidden} more in the JSON report")
    lines.append("RESULT: " + ("ok" if s.ok else "FAILED"))
    return "\n".join(lines)


def _runs_text(verdict: TaskVerdict, origin: float) -> str:
    t = verdict.task
    runs = ", ".join(
        f"#{i + 1} {e.incarnation} attempt {e.attempt} at +{e.at - origin:.2f}s"
        + (" (planned failure)" if e.fails else "")
        for i, e in enumerate(verdict.executions)
    )
    return (
        f"{t.state}, attempts {t.attempts}, retries {t.retries}, losses {t.losses};"
        f" executions: {runs}"
    )


def _around_label(rerun: Rerun) -> str:
    """'Redis+SIGSTOP': the kinds of what the soak did around an unexplained rerun (requeue
    events left out: they say how, not why)."""
    kinds = {h.what.split(" ", 1)[0] for h in rerun.around if h.task_id is None}
    return "+".join(sorted(kinds)) or "nothing known"


def _happening_text(h: Happening, origin: float) -> str:
    whose = f" of {h.incarnation}" if h.incarnation else ""
    return f"{h.what}{whose} at +{h.start - origin:.2f}s"


def _verdict_json(verdict: TaskVerdict) -> dict[str, Any]:
    t = verdict.task
    return {
        "id": t.id,
        "state": t.state,
        "attempts": t.attempts,
        "retries": t.retries,
        "losses": t.losses,
        "worker": t.worker,
        "error": t.reason if t.state == "failed" else None,
        "executions": [
            {"incarnation": e.incarnation, "attempt": e.attempt, "at": e.at, "fails": e.fails}
            for e in verdict.executions
        ],
        "unexplained_reruns": [
            {
                "after": verdict.executions.index(r.previous) + 1,
                "around": [_happening_json(h) for h in r.around],
            }
            for r in verdict.unexplained
        ],
    }


def _happening_json(h: Happening) -> dict[str, Any]:
    return {
        "what": h.what,
        "start": h.start,
        "end": h.end,
        "incarnation": h.incarnation,
        "task": h.task_id,
        "loss": h.loss,
    }
