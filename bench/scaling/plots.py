"""SVG line charts of replicas and demand over time, one panel per setup, side by side.

Hand-written SVG (no plotting library): a few polylines per panel, the same axes in every panel
of a figure, so the setups compare at a glance. Each series is a step line: a value holds until
the next sample.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

from bench.scaling.recorder import Sample

__all__ = ["Panel", "figure"]

_W, _H = 330, 230  # one panel
_LEFT, _RIGHT, _TOP, _BOTTOM = 34, 8, 30, 30
_HEAD = 22  # the figure's title above the panels
_SERIES: tuple[tuple[str, str, str, Callable[[Sample], int]], ...] = (
    # (label, colour, dash, value of a sample)
    ("demand (pending + running)", "#999999", "", lambda s: s.pending + s.reserved + s.running),
    ("pending list (what KEDA reads)", "#e08a00", "4 3", lambda s: s.pending),
    ("replicas asked", "#1f5fbf", "", lambda s: s.replicas),
    ("worker pods", "#2a9d4a", "2 2", lambda s: s.pods),
)


@dataclass(frozen=True)
class Panel:
    title: str
    samples: Sequence[Sample]
    start: float
    """Time zero of the x axis (the trial's first enqueue)."""
    end: float
    """The last moment drawn (the trial's end: back at zero, or its bound)."""


def _ticks(top: float, count: int = 5) -> list[float]:
    for step in (1, 2, 5, 10, 15, 20, 30, 60, 120, 300, 600):
        if top / step <= count:
            return [i * step for i in range(int(top // step) + 1)]
    return [0.0, top]


def figure(title: str, panels: Sequence[Panel], *, duration_s: float, y_max: int) -> str:
    """One SVG with the panels side by side, x from 0 to `duration_s`, y from 0 to `y_max`."""
    width = max(_W * len(panels), 660)
    height = _HEAD + _H + 30
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="10">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="14" text-anchor="middle" font-size="12" '
        f'font-weight="bold">{escape(title)}</text>',
    ]
    for index, panel in enumerate(panels):
        parts.append(_panel(panel, index * _W, _HEAD, duration_s, y_max))
    legend_y = _HEAD + _H + 14
    x = 10.0
    for label, colour, dash, _ in _SERIES:
        parts.append(
            f'<line x1="{x}" y1="{legend_y}" x2="{x + 18}" y2="{legend_y}" stroke="{colour}" '
            f'stroke-width="2" stroke-dasharray="{dash}"/>'
        )
        parts.append(f'<text x="{x + 22}" y="{legend_y + 3}">{escape(label)}</text>')
        x += 30 + 5.2 * len(label)
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _panel(panel: Panel, left: float, top: float, duration_s: float, y_max: int) -> str:
    x0, x1 = left + _LEFT, left + _W - _RIGHT
    y0, y1 = top + _H - _BOTTOM, top + _TOP

    def sx(t: float) -> float:
        return x0 + (x1 - x0) * min(max(t, 0.0), duration_s) / duration_s

    def sy(v: float) -> float:
        return y0 - (y0 - y1) * min(v, y_max) / y_max

    out = [
        f'<text x="{(x0 + x1) / 2}" y="{top + 14}" text-anchor="middle" '
        f'font-weight="bold">{escape(panel.title)}</text>',
        f'<rect x="{x0}" y="{y1}" width="{x1 - x0}" height="{y0 - y1}" fill="none" '
        'stroke="#cccccc"/>',
    ]
    for tick in _ticks(y_max):
        out.append(
            f'<line x1="{x0}" y1="{sy(tick):.1f}" x2="{x1}" y2="{sy(tick):.1f}" stroke="#eeeeee"/>'
        )
        out.append(f'<text x="{x0 - 4}" y="{sy(tick) + 3:.1f}" text-anchor="end">{tick:g}</text>')
    for tick in _ticks(duration_s, 6):
        out.append(f'<text x="{sx(tick):.1f}" y="{y0 + 12}" text-anchor="middle">{tick:g}</text>')
    out.append(f'<text x="{(x0 + x1) / 2}" y="{y0 + 24}" text-anchor="middle">seconds</text>')
    window = [s for s in panel.samples if panel.start <= s.t <= panel.end]
    for _, colour, dash, value in _SERIES:
        points: list[str] = []
        previous: float | None = None
        for index, sample in enumerate(window):
            x, y = sx(sample.t - panel.start), sy(value(sample))
            last = index == len(window) - 1
            if previous is not None and y == previous and not last:
                continue  # a step line needs only the changes (a small file)
            if previous is not None:
                points.append(f"{x:.1f},{previous:.1f}")  # a step: hold, then move
            points.append(f"{x:.1f},{y:.1f}")
            previous = y
        if points:
            out.append(
                f'<polyline fill="none" stroke="{colour}" stroke-width="1.6" '
                f'stroke-dasharray="{dash}" points="{" ".join(points)}"/>'
            )
    return "\n".join(out)
