"""The targets of issue 4, and the tables: absolute numbers, then ratios against targets.

Every figure is the median over the run's rounds; the spread (min-max) is shown next to it,
so a reader can tell a real difference from the drift of a shared machine.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

Results = Mapping[str, Sequence[float]]


@dataclass(frozen=True)
class Target:
    label: str
    ours: str
    theirs: str
    better: str  # "higher" or "lower": the direction in which `ours` should beat `theirs`
    ratio: float

    def met(self, ratio: float) -> bool | None:
        if math.isnan(ratio):
            return None
        return ratio >= self.ratio if self.better == "higher" else ratio <= self.ratio

    @property
    def needed(self) -> str:
        return f"{'>=' if self.better == 'higher' else '<='} {self.ratio:g}x"


TARGETS = (
    Target("enqueue vs Huey enqueue", "blueque.enqueue", "huey.enqueue", "higher", 1.0),
    Target("enqueue vs RQ enqueue", "blueque.enqueue", "rq.enqueue", "higher", 4.0),
    Target("enqueue_many vs Huey enqueue", "blueque.enqueue_many", "huey.enqueue", "higher", 7.0),
    Target(
        "in-process worker vs Huey 1-thread consumer",
        "blueque.worker.inprocess",
        "huey.worker.inprocess",
        "higher",
        1.0,
    ),
    Target(
        "forking worker vs RQ forking Worker",
        "blueque.worker.fork",
        "rq.worker.fork",
        "higher",
        5.0,
    ),
    Target(
        "enqueue-to-done p50 vs Huey",
        "blueque.latency.to_done_p50_ms",
        "huey.latency.to_done_p50_ms",
        "lower",
        0.6,
    ),
)

# (label, metric suffix, unit, number format)
ROWS = (
    ("enqueue, one producer", "enqueue", "tasks/s", "{:,.0f}"),
    ("enqueue_many", "enqueue_many", "tasks/s", "{:,.0f}"),
    ("one worker, in-process", "worker.inprocess", "tasks/s", "{:,.0f}"),
    ("one worker, forking", "worker.fork", "tasks/s", "{:,.0f}"),
    ("enqueue-to-start p50", "latency.to_start_p50_ms", "ms", "{:.2f}"),
    ("enqueue-to-start p99", "latency.to_start_p99_ms", "ms", "{:.2f}"),
    ("enqueue-to-done p50", "latency.to_done_p50_ms", "ms", "{:.2f}"),
    ("enqueue-to-done p99", "latency.to_done_p99_ms", "ms", "{:.2f}"),
    (
        "diagnostic, kept subscription: enqueue-to-start p50",
        "latency_held.to_start_p50_ms",
        "ms",
        "{:.2f}",
    ),
    (
        "diagnostic, kept subscription: enqueue-to-done p50",
        "latency_held.to_done_p50_ms",
        "ms",
        "{:.2f}",
    ),
    (
        "diagnostic, kept subscription: enqueue-to-done p99",
        "latency_held.to_done_p99_ms",
        "ms",
        "{:.2f}",
    ),
    ("Redis CPU per enqueue", "redis_cpu_us.enqueue", "us/task", "{:.0f}"),
    ("Redis CPU per enqueue_many task", "redis_cpu_us.enqueue_many", "us/task", "{:.0f}"),
    ("Redis CPU per task, in-process worker", "redis_cpu_us.worker.inprocess", "us/task", "{:.0f}"),
    ("Redis CPU per task, forking worker", "redis_cpu_us.worker.fork", "us/task", "{:.0f}"),
    ("worker CPU per task, in-process", "worker_cpu_ms.inprocess", "ms/task", "{:.2f}"),
    ("  of which kernel", "worker_sys_ms.inprocess", "ms/task", "{:.2f}"),
    ("  page faults", "worker_faults.inprocess", "/task", "{:.0f}"),
    ("worker CPU per task, forking (with children)", "worker_cpu_ms.fork", "ms/task", "{:.2f}"),
    ("  of which kernel", "worker_sys_ms.fork", "ms/task", "{:.2f}"),
    ("  page faults", "worker_faults.fork", "/task", "{:.0f}"),
)

SYSTEMS = ("blueque", "huey", "rq")


def median_of(results: Results, key: str) -> float:
    values = sorted(v for v in results.get(key, ()) if not math.isnan(v))
    if not values:
        return float("nan")
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def _cell(results: Results, key: str, fmt: str) -> str:
    values = [v for v in results.get(key, ()) if not math.isnan(v)]
    if not values:
        return "-"
    text = fmt.format(median_of(results, key))
    if len(values) > 1:
        text += f" ({fmt.format(min(values))}-{fmt.format(max(values))})"
    return text


NOTES = (
    "diagnostic rows, not targets: Blueque's producer keeps one event subscription open and"
    " waits on it (what Task.wait could do) instead of Task.wait's new subscription per call"
)


def numbers_table(results: Results) -> str:
    lines = [
        "| measurement | unit | " + " | ".join(SYSTEMS) + " |",
        "|---|---|" + "---:|" * len(SYSTEMS),
    ]
    for label, suffix, unit, fmt in ROWS:
        cells = [_cell(results, f"{system}.{suffix}", fmt) for system in SYSTEMS]
        lines.append(f"| {label} | {unit} | " + " | ".join(cells) + " |")
    return "\n".join([*lines, "", NOTES])


def target_rows(results: Results) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for t in TARGETS:
        ours, theirs = median_of(results, t.ours), median_of(results, t.theirs)
        # Per-round ratios, then their median: both sides of a ratio ran minutes apart at
        # most, so drift of the machine's load cancels better than in a ratio of medians.
        per_round = [
            a / b
            for a, b in zip(results.get(t.ours, ()), results.get(t.theirs, ()), strict=False)
            if b and not math.isnan(a) and not math.isnan(b)
        ]
        ratio = median_of({"r": per_round}, "r")
        rows.append(
            {
                "target": t.label,
                "ours": ours,
                "theirs": theirs,
                "ratio": ratio,
                "needed": t.needed,
                "met": t.met(ratio),
            }
        )
    return rows


def _num(value: float, fmt: str) -> str:
    return "-" if math.isnan(value) else fmt.format(value)


def targets_table(results: Results) -> str:
    lines = ["| target | Blueque | peer | ratio | needed | |", "|---|---:|---:|---:|---|---|"]
    for row in target_rows(results):
        met = row["met"]
        mark = "n/a" if met is None else ("reached" if met else "MISSED")
        ours, theirs, ratio = (float(row[k]) for k in ("ours", "theirs", "ratio"))  # type: ignore[arg-type]
        lines.append(
            f"| {row['target']} | {_num(ours, '{:,.2f}')} | {_num(theirs, '{:,.2f}')}"
            f" | {_num(ratio, '{:.2f}x')} | {row['needed']} | {mark} |"
        )
    return "\n".join(lines)
