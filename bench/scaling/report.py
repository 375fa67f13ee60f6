"""Markdown tables and SVG figures from a run, or from its JSON file (to redraw, not rerun)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.scaling.plots import Panel, figure
from bench.scaling.recorder import Sample
from bench.scaling.results import median
from bench.scaling.setups import SETUPS, Common, knob_rows

__all__ = ["cpu_table", "figures", "knobs_table", "results_table", "writes_table"]

#: Who is who in the audit log (the controller-manager's controllers are service accounts).
ROLES = {
    "system:serviceaccount:keda:keda-operator": "KEDA (operator + adapter)",
    "system:serviceaccount:kube-system:horizontal-pod-autoscaler": "HPA controller",
    "system:serviceaccount:blueque-system:blueque": "Blueque operator",
    "system:serviceaccount:kube-system:deployment-controller": "Deployment controller",
    "system:serviceaccount:kube-system:replicaset-controller": "ReplicaSet controller",
    "system:kube-scheduler": "scheduler (bindings)",
    "localkube-kwok": "KWOK (pod status)",
    "system:serviceaccount:bench-system:pod-runner": "pod runner (kubelet stand-in)",
}
SCALERS = (
    "system:serviceaccount:keda:keda-operator",
    "system:serviceaccount:kube-system:horizontal-pod-autoscaler",
    "system:serviceaccount:blueque-system:blueque",
)
TITLES = {s.name: s.title for s in SETUPS}


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str = "") -> str:
    marks = [("---:" if i and align != "left" else "---") for i in range(len(header))]
    return "\n".join([_row(header), _row(marks), *(_row(r) for r in rows)])


def knobs_table(common: Common) -> str:
    header = ["knob", *(TITLES[s.name] for s in SETUPS)]
    return _table(header, knob_rows(common), align="left")


def _fmt(values: Sequence[float], unit: str = " s") -> str:
    numbers = [v for v in values if not math.isnan(v)]
    missing = len(values) - len(numbers)
    if not numbers:
        return "never" if values else "-"
    text = f"{median(numbers):.1f}{unit}"
    if len(values) > 1:
        text += f" ({', '.join(f'{v:.1f}' for v in numbers)})"
    if missing:
        text += f" + {missing} never"
    return text


def results_table(setups: Sequence[dict[str, Any]]) -> str:
    """One row per workload and figure, one column per setup (medians, then each trial)."""
    names = [s["setup"] for s in setups]
    rows: list[list[str]] = []
    workloads: list[str] = []
    for s in setups:
        for t in s["trials"]:
            if t["workload"] not in workloads:
                workloads.append(t["workload"])

    def trials(setup: dict[str, Any], load: str) -> list[dict[str, Any]]:
        return [t for t in setup["trials"] if t["workload"] == load]

    figures = [
        ("to first replica", "first_replica_s", "time"),
        ("to target replicas", "target_s", "time"),
        ("to first task started", "first_task_s", "time"),
        ("all work done", "makespan_s", "time"),
        ("scale in after the work ends", "scale_in_s", "time"),
        ("pods removed", "removed", "count"),
        ("busy pods picked for removal", "busy_removed", "count"),
        ("task runs cut off (worker stopped mid-task)", "cut_off", "count"),
        ("tasks re-run after a cut", "reruns", "count"),
        ("tasks failed (`WorkerLost`) / unfinished", "failed", "count"),
    ]
    for load in workloads:
        count = max(len(trials(s, load)) for s in setups)
        for label, key, kind in figures:
            if load != "burst" and key in ("first_replica_s", "target_s", "first_task_s"):
                continue
            cells = [f"{load} (x{count})", label]
            for s in setups:
                values = [float(t[key]) for t in trials(s, load)]
                if kind == "time":
                    cells.append(_fmt(values))
                elif key == "failed":
                    failed = sum(t["failed"] for t in trials(s, load))
                    unfinished = sum(t["unfinished"] for t in trials(s, load))
                    cells.append(f"{failed} / {unfinished}")
                else:
                    cells.append(str(int(sum(values))) + (" in total" if len(values) > 1 else ""))
            rows.append(cells)
    return _table(["workload", "figure", *(TITLES[n] for n in names)], rows)


def writes_table(setups: Sequence[dict[str, Any]]) -> str:
    users = [u for u in ROLES if any(s["writes"].get(u) for s in setups)]
    rows = []
    for user in users:
        rows.append([ROLES[user], *(str(s["writes"].get(user, 0)) for s in setups)])
    scaler_total = [sum(s["writes"].get(u, 0) for u in SCALERS) for s in setups]
    leases = [
        sum(s["writes_by_resource"].get(u, {}).get("leases", 0) for u in SCALERS) for s in setups
    ]
    rows.append(["**the scaler's own writes**", *(f"**{n}**" for n in scaler_total)])
    rows.append(
        [
            "of which leader-election Lease renewals",
            *(str(n) for n in leases),
        ]
    )
    minutes = [(s["ended"] - s["started"]) / 60 for s in setups]
    rows.append(["setup's length", *(f"{m:.1f} min" for m in minutes)])
    rows.append(
        [
            "the scaler's writes per minute, Leases apart",
            *(
                f"{(total - lease) / m:.1f} (+ {lease / m:.1f})"
                for total, lease, m in zip(scaler_total, leases, minutes, strict=True)
            ),
        ]
    )
    reads = [sum(s["reads"].get(u, 0) for u in SCALERS) for s in setups]
    rows.append(
        [
            "the scaler's other requests (reads, metric queries, reviews)",
            *(str(n) for n in reads),
        ]
    )
    return _table(["API writes by", *(TITLES[s["setup"]] for s in setups)], rows)


def cpu_table(setups: Sequence[dict[str, Any]]) -> str:
    processes = []
    for s in setups:
        for name in s["cpu_s"]:
            if name not in processes:
                processes.append(name)
    rows = []
    for name in processes:
        cells = [name]
        for s in setups:
            value = s["cpu_s"].get(name)
            minutes = (s["ended"] - s["started"]) / 60
            cells.append("-" if value is None else f"{value:.1f} s ({value / minutes:.2f} s/min)")
        rows.append(cells)
    return _table(["CPU (user + system)", *(TITLES[s["setup"]] for s in setups)], rows)


def figures(setups: Sequence[dict[str, Any]], out_dir: Path, max_replicas: int) -> list[Path]:
    """One SVG per workload (its first trial), the setups side by side, on the same axes."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    loads: list[str] = []
    for s in setups:
        for t in s["trials"]:
            if t["workload"] not in loads:
                loads.append(t["workload"])
    for load in loads:
        panels = []
        duration = 0.0
        peak = max_replicas
        for s in setups:
            first = next((t for t in s["trials"] if t["workload"] == load), None)
            if first is None:
                continue
            samples = [Sample(**x) for x in s["samples"]]
            scale_in = first["scale_in_s"]
            end = first["start"] + first["makespan_s"] + scale_in
            if math.isnan(end):  # never back at zero within the bound: draw what was seen
                end = max((x.t for x in samples), default=first["start"])
            duration = max(duration, end - first["start"])
            window = [x for x in samples if first["start"] <= x.t <= end]
            peak = max([peak, *(x.pending + x.reserved + x.running for x in window)])
            panels.append(Panel(TITLES[s["setup"]], samples, first["start"], end))
        svg = figure(
            f"{load}: replicas and demand over time (first trial)",
            panels,
            duration_s=duration,
            y_max=peak,
        )
        path = out_dir / f"scaling-{load}.svg"
        path.write_text(svg)
        written.append(path)
    return written
