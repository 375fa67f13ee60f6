"""A small SVG strip plot of latency trials (text only: no image binary in the repository)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Protocol

WIDTH, ROW_H, LEFT, RIGHT, TOP = 640, 44, 190, 30, 30


class Series(Protocol):
    name: str
    values_s: list[float]


def _percentile(ordered: Sequence[float], pct: float) -> float:
    rank = (len(ordered) - 1) * pct / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def latency_plot(series: Sequence[Series], goals_s: dict[str, float] | None = None) -> str:
    """One row per series: every trial a dot, p50 and p95 as ticks, on one seconds axis;
    `goals_s` (name -> seconds) draws a dashed goal mark on a row."""
    goals_s = goals_s or {}
    top = max([max(s.values_s) for s in series if s.values_s] + list(goals_s.values()) + [0.1])
    scale_max = _nice(top)
    plot_w = WIDTH - LEFT - RIGHT
    height = TOP + ROW_H * len(series) + 40

    def x(seconds: float) -> float:
        return LEFT + plot_w * seconds / scale_max

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}"'
        f' viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
    ]
    axis_y = TOP + ROW_H * len(series)
    steps = 5
    for i in range(steps + 1):
        value = scale_max * i / steps
        xi = x(value)
        out.append(
            f'<line x1="{xi:.1f}" y1="{TOP - 10}" x2="{xi:.1f}" y2="{axis_y}" stroke="#ddd"/>'
        )
        out.append(f'<text x="{xi:.1f}" y="{axis_y + 16}" text-anchor="middle">{value:g} s</text>')
    for row, s in enumerate(series):
        y = TOP + ROW_H * row + ROW_H / 2
        out.append(
            f'<text x="{LEFT - 10}" y="{y + 4:.1f}" text-anchor="end">{escape(s.name)}</text>'
        )
        for v in s.values_s:
            out.append(
                f'<circle cx="{x(v):.1f}" cy="{y:.1f}" r="3.5" fill="#1f6feb" fill-opacity="0.45"/>'
            )
        if s.values_s:
            ordered = sorted(s.values_s)
            for pct, color in ((50, "#111"), (95, "#d1242f")):
                xp = x(_percentile(ordered, pct))
                out.append(
                    f'<line x1="{xp:.1f}" y1="{y - 12:.1f}" x2="{xp:.1f}" y2="{y + 12:.1f}"'
                    f' stroke="{color}" stroke-width="2"/>'
                )
        goal = goals_s.get(s.name)
        if goal is not None:
            xg = x(goal)
            out.append(
                f'<line x1="{xg:.1f}" y1="{y - 16:.1f}" x2="{xg:.1f}" y2="{y + 16:.1f}"'
                ' stroke="#2da44e" stroke-width="2" stroke-dasharray="4 3"/>'
            )
    out.append(
        f'<text x="{LEFT}" y="{height - 6}">dots: trials; black: p50; red: p95;'
        " green dashes: goal</text>"
    )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _nice(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^k at or above `value`."""
    magnitude = 10.0 ** (len(str(int(value))) - 1) if value >= 1 else 0.1
    while magnitude > value:
        magnitude /= 10
    for factor in (1, 2, 2.5, 5, 10):
        if factor * magnitude >= value:
            return factor * magnitude
    return 10 * magnitude
