"""A dependency-free terminal scatter plot for Pareto frontiers (tokens/s/gpu vs tokens/s/user)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Series:
    label: str
    marker: str  # one character
    points: Sequence[tuple[float, float]]  # (x, y)


def _nice_max(value: float) -> float:
    """Round an axis maximum up to a short number (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8 x 10^k)."""
    if value <= 0:
        return 1.0
    exp = math.floor(math.log10(value))
    for step in (1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0):
        if value <= step * 10**exp:
            return step * 10**exp
    return 10.0 ** (exp + 1)


def render(
    series: Sequence[Series],
    *,
    width: int = 64,
    height: int = 16,
    x_label: str = "tokens/s/user",
    y_label: str = "tokens/s/gpu",
) -> str:
    """Draw every series on one character grid; later series overwrite earlier ones on collisions."""
    xs = [x for s in series for x, _ in s.points]
    ys = [y for s in series for _, y in s.points]
    x_max = _nice_max(max(xs, default=1.0))
    y_max = _nice_max(max(ys, default=1.0))
    grid = [[" "] * width for _ in range(height)]
    for s in series:
        for x, y in s.points:
            col = min(width - 1, max(0, round(x / x_max * (width - 1))))
            row = min(height - 1, max(0, round(y / y_max * (height - 1))))
            grid[height - 1 - row][col] = s.marker
    label_w = max(len(f"{y_max:g}"), len(y_label)) + 1
    lines = [y_label.rjust(label_w)]
    for i, cells in enumerate(grid):
        y_tick = y_max * (height - 1 - i) / (height - 1)
        tick = f"{y_tick:.0f}" if i % 4 == 0 or i == height - 1 else ""
        lines.append(f"{tick:>{label_w}}|{''.join(cells)}|")
    lines.append(" " * label_w + "+" + "-" * width + "+")
    ticks = [0.0, x_max / 4, x_max / 2, 3 * x_max / 4, x_max]
    axis = [" "] * (width + 2)
    for t in ticks:
        text = f"{t:.0f}"
        pos = min(width + 2 - len(text), round(t / x_max * (width - 1)))
        axis[pos : pos + len(text)] = list(text)
    lines.append(" " * label_w + "".join(axis))
    lines.append(" " * label_w + x_label.center(width + 2))
    legend = "   ".join(f"{s.marker} {s.label}" for s in series)
    lines.append(" " * label_w + legend)
    return "\n".join(lines)
