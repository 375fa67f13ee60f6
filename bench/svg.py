"""Line charts as SVG text (docs/plots/): no plotting library, no binary files in the repo.

`line_chart` draws series of (x, y) points on linear or logarithmic axes, with ticks, axis
titles, a legend and optional horizontal reference lines (a ceiling), and returns the SVG
document as a string.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf")
WIDTH, HEIGHT = 720, 420
LEFT, RIGHT, TOP, BOTTOM = 80, 200, 40, 60


@dataclass(frozen=True)
class Series:
    name: str
    points: Sequence[tuple[float, float]]
    dashed: bool = False


@dataclass(frozen=True)
class Reference:
    """A horizontal line across the chart, e.g. a ceiling measured by redis-benchmark."""

    name: str
    y: float


@dataclass(frozen=True)
class Axis:
    title: str
    log: bool = False
    lowest: float | None = None  # forces the range to include these
    highest: float | None = None
    ticks: Sequence[float] = field(default_factory=tuple)


def _range(values: list[float], axis: Axis) -> tuple[float, float]:
    lo = min([*values, *([axis.lowest] if axis.lowest is not None else [])])
    hi = max([*values, *([axis.highest] if axis.highest is not None else [])])
    if axis.log:
        lo, hi = 10 ** math.floor(math.log10(lo)), 10 ** math.ceil(math.log10(hi))
    elif hi == lo:
        hi = lo + 1
    elif axis.highest is None:
        hi += (hi - lo) * 0.1  # room above the highest point
    return lo, hi


def _ticks(lo: float, hi: float, axis: Axis) -> list[float]:
    if axis.ticks:
        return [t for t in axis.ticks if lo <= t <= hi]
    if axis.log:
        return [10.0**e for e in range(round(math.log10(lo)), round(math.log10(hi)) + 1)]
    step = 10 ** math.floor(math.log10((hi - lo) / 4))
    for factor in (1, 2, 5, 10):
        if (hi - lo) / (step * factor) <= 6:
            step *= factor
            break
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step) + 1)]


def _label(value: float) -> str:
    if value >= 1_000_000 and value % 1_000_000 == 0:
        return f"{value / 1_000_000:g}M"
    if value >= 1000 and value % 1000 == 0:
        return f"{value / 1000:g}k"
    return f"{value:g}"


def line_chart(
    title: str,
    x_axis: Axis,
    y_axis: Axis,
    series: Sequence[Series],
    references: Sequence[Reference] = (),
    note: str = "",
) -> str:
    xs = [x for s in series for x, _ in s.points]
    ys = [y for s in series for _, y in s.points] + [r.y for r in references]
    x_lo, x_hi = _range(xs, x_axis)
    y_lo, y_hi = _range(ys, Axis(y_axis.title, y_axis.log, y_axis.lowest, y_axis.highest))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(x: float) -> float:
        if x_axis.log:
            return LEFT + plot_w * math.log10(x / x_lo) / math.log10(x_hi / x_lo)
        return LEFT + plot_w * (x - x_lo) / (x_hi - x_lo)

    def py(y: float) -> float:
        if y_axis.log:
            return TOP + plot_h * (1 - math.log10(y / y_lo) / math.log10(y_hi / y_lo))
        return TOP + plot_h * (1 - (y - y_lo) / (y_hi - y_lo))

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}"'
        f' viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{WIDTH / 2}" y="22" text-anchor="middle" font-size="15">{escape(title)}</text>',
    ]
    for t in _ticks(x_lo, x_hi, x_axis):
        x = px(t)
        out.append(
            f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{TOP + plot_h}" stroke="#eee"/>'
        )
        out.append(
            f'<text x="{x:.1f}" y="{TOP + plot_h + 16}" text-anchor="middle">{_label(t)}</text>'
        )
    for t in _ticks(y_lo, y_hi, y_axis):
        y = py(t)
        out.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + plot_w}" y2="{y:.1f}" stroke="#eee"/>'
        )
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_label(t)}</text>')
    out.append(
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#444"/>'
    )
    out.append(
        f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 18}" text-anchor="middle">'
        f"{escape(x_axis.title)}</text>"
    )
    out.append(
        f'<text x="18" y="{TOP + plot_h / 2}" text-anchor="middle"'
        f' transform="rotate(-90 18 {TOP + plot_h / 2})">{escape(y_axis.title)}</text>'
    )
    legend_y = TOP + 8
    for i, ref in enumerate(references):
        y = py(ref.y)
        out.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + plot_w}" y2="{y:.1f}" stroke="#888"'
            f' stroke-dasharray="2 3"/>'
        )
        out.append(
            f'<text x="{LEFT + plot_w + 8}" y="{legend_y + 14 * i + 4}" fill="#555">'
            f"⋯ {escape(ref.name)}</text>"
        )
    legend_y += 14 * len(references) + (8 if references else 0)
    for i, s in enumerate(series):
        colour = COLOURS[i % len(COLOURS)]
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in s.points)
        out.append(
            f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>'
        )
        for x, y in s.points:
            out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{colour}"/>')
        ly = legend_y + 16 * i
        out.append(
            f'<line x1="{LEFT + plot_w + 8}" y1="{ly}" x2="{LEFT + plot_w + 26}" y2="{ly}"'
            f' stroke="{colour}" stroke-width="2"{dash}/>'
        )
        out.append(f'<text x="{LEFT + plot_w + 30}" y="{ly + 4}">{escape(s.name)}</text>')
    if note:
        out.append(
            f'<text x="{LEFT}" y="{HEIGHT - 4}" font-size="10" fill="#555">{escape(note)}</text>'
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"
