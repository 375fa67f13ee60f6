"""The tables: issue 11's comparison with its goals, every figure, and hiredis on against off.

`Results` maps `<hiredis mode>:<system>.<metric>` to one value per round. Every figure is
the median over the rounds, the range (min-max) next to it, so a reader can tell a real
difference from the drift of a shared machine; a ratio is the median of the per-round
ratios (both sides measured in the same round, minutes apart at most).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

Results = Mapping[str, Sequence[float]]
NONE = "\u2013"  # an en dash: no figure (as in the table)
MODES = ("on", "off")  # hiredis
SYSTEMS = ("blueque", "huey", "huey_notify", "rq")
TITLES = {
    "blueque": "Blueque",
    "huey": "Huey (default)",
    "huey_notify": "Huey (notify_result)",
    "rq": "python-rq",
}


@dataclass(frozen=True)
class Goal:
    peer: str  # "huey" (judged against Huey's faster mode on the path) or "rq"
    ratio: float


@dataclass(frozen=True)
class Path:
    label: str
    metric: str
    unit: str
    fmt: str
    higher_is_better: bool
    goals: tuple[Goal, ...]


PATHS = (
    Path(
        "enqueue, one thread",
        "enqueue",
        "tasks/s",
        "{:,.0f}",
        True,
        (Goal("huey", 1.2), Goal("rq", 4.0)),
    ),
    Path(
        "in-process worker, one process",
        "worker.inprocess",
        "tasks/s",
        "{:,.0f}",
        True,
        (Goal("huey", 2.5),),
    ),
    Path(
        "forking worker, one process", "worker.fork", "tasks/s", "{:,.0f}", True, (Goal("rq", 5.0),)
    ),
    Path(
        "enqueue-to-done p50, idle worker",
        "latency.to_done_p50_ms",
        "ms",
        "{:.2f}",
        False,
        (Goal("huey", 0.6),),
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
    ("diagnostic, kept subscription: to-done p50", "latency_held.to_done_p50_ms", "ms", "{:.2f}"),
    ("producer CPU per enqueue", "client_cpu_us.enqueue", "us/task", "{:.0f}"),
    ("producer CPU per enqueue_many task", "client_cpu_us.enqueue_many", "us/task", "{:.1f}"),
    ("Redis CPU per enqueue", "redis_cpu_us.enqueue", "us/task", "{:.0f}"),
    ("Redis CPU per enqueue_many task", "redis_cpu_us.enqueue_many", "us/task", "{:.1f}"),
    ("Redis CPU per task, in-process worker", "redis_cpu_us.worker.inprocess", "us/task", "{:.0f}"),
    ("Redis CPU per task, forking worker", "redis_cpu_us.worker.fork", "us/task", "{:.0f}"),
    ("worker CPU per task, in-process", "worker_cpu_ms.inprocess", "ms/task", "{:.2f}"),
    ("  of which kernel", "worker_sys_ms.inprocess", "ms/task", "{:.2f}"),
    ("worker CPU per task, forking (with children)", "worker_cpu_ms.fork", "ms/task", "{:.2f}"),
    ("  of which kernel", "worker_sys_ms.fork", "ms/task", "{:.2f}"),
    ("  of which kernel, the worker process alone", "parent_sys_ms.fork", "ms/task", "{:.2f}"),
    ("  page faults (with children)", "worker_faults.fork", "/task", "{:.0f}"),
    ("  page faults, the worker process alone", "parent_faults.fork", "/task", "{:.0f}"),
)


def values(results: Results, key: str) -> list[float]:
    return [v for v in results.get(key, ()) if not math.isnan(v)]


def median(numbers: Sequence[float]) -> float:
    ordered = sorted(numbers)
    if not ordered:
        return math.nan
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def cell(results: Results, key: str, fmt: str) -> str:
    found = values(results, key)
    if not found:
        return NONE
    text = fmt.format(median(found))
    if len(found) > 1:
        text += f" ({fmt.format(min(found))}-{fmt.format(max(found))})"
    return text


def per_round_ratios(results: Results, ours: str, theirs: str) -> list[float]:
    pairs = zip(results.get(ours, ()), results.get(theirs, ()), strict=False)
    return [a / b for a, b in pairs if b and not (math.isnan(a) or math.isnan(b))]


def _huey_ratio(results: Results, mode: str, path: Path) -> tuple[float, str]:
    """Blueque against Huey's faster mode on this path (the least favourable ratio), per
    round; and a text with both modes."""
    ours = f"{mode}:blueque.{path.metric}"
    both = {
        peer: median(per_round_ratios(results, ours, f"{mode}:{peer}.{path.metric}"))
        for peer in ("huey", "huey_notify")
    }
    known = [r for r in both.values() if not math.isnan(r)]
    if not known:
        return math.nan, NONE
    worst = min(known) if path.higher_is_better else max(known)
    text = f"{_x(both['huey'])} Huey, {_x(both['huey_notify'])} Huey notify"
    return worst, text


def _x(ratio: float) -> str:
    return NONE if math.isnan(ratio) else f"{ratio:.2f}x"


def comparison_table(results: Results, mode: str) -> str:
    """Issue 11's table: each path, each system, the ratios now, the goal, whether met."""
    head = ["path", *(TITLES[s] for s in SYSTEMS), "now", "goal", "met"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * len(SYSTEMS) + "---|---|---|"]
    for path in PATHS:
        cells = [
            cell(results, f"{mode}:{system}.{path.metric}", path.fmt) + f" {path.unit}"
            if values(results, f"{mode}:{system}.{path.metric}")
            else NONE
            for system in SYSTEMS
        ]
        now: list[str] = []
        goals: list[str] = []
        met: list[str] = []
        sign = "≥" if path.higher_is_better else "≤"
        for goal in path.goals:
            if goal.peer == "huey":
                ratio, text = _huey_ratio(results, mode, path)
                name = "Huey"
            else:
                ours, theirs = f"{mode}:blueque.{path.metric}", f"{mode}:rq.{path.metric}"
                ratio = median(per_round_ratios(results, ours, theirs))
                text, name = f"{_x(ratio)} RQ", "RQ"
            now.append(text)
            goals.append(f"{sign}{goal.ratio:g}x {name}")
            if math.isnan(ratio):
                met.append("n/a")
            else:
                ok = ratio >= goal.ratio if path.higher_is_better else ratio <= goal.ratio
                met.append(f"{'yes' if ok else 'MISSED'} ({_x(ratio)} {name})")
        row = [path.label, *cells, "; ".join(now), ", ".join(goals), "; ".join(met)]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def numbers_table(results: Results, mode: str) -> str:
    lines = [
        "| measurement | unit | " + " | ".join(TITLES[s] for s in SYSTEMS) + " |",
        "|---|---|" + "---:|" * len(SYSTEMS),
    ]
    for label, suffix, unit, fmt in ROWS:
        cells = [cell(results, f"{mode}:{system}.{suffix}", fmt) for system in SYSTEMS]
        if any(c != NONE for c in cells):
            lines.append(f"| {label} | {unit} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def hiredis_table(results: Results) -> str:
    """Each system's figures with hiredis against without: median of per-round ratios."""
    metrics = (
        ("enqueue", "enqueue", True),
        ("enqueue_many", "enqueue_many", True),
        ("in-process worker", "worker.inprocess", True),
        ("forking worker", "worker.fork", True),
        ("enqueue-to-done p50", "latency.to_done_p50_ms", False),
        ("producer CPU per enqueue", "client_cpu_us.enqueue", False),
        ("worker CPU per task, in-process", "worker_cpu_ms.inprocess", False),
    )
    lines = [
        "| with hiredis / without | " + " | ".join(TITLES[s] for s in SYSTEMS) + " |",
        "|---|" + "---:|" * len(SYSTEMS),
    ]
    for label, metric, _ in metrics:
        cells = [
            _x(median(per_round_ratios(results, f"on:{s}.{metric}", f"off:{s}.{metric}")))
            for s in SYSTEMS
        ]
        if any(c != NONE for c in cells):
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
