"""Charts drawn on the server as inline SVG: no chart script to load, nothing fetched from elsewhere."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

WIDTH, HEIGHT, PAD = 320, 120, 22


def line_chart(points: Sequence[tuple[str, float | None]], label: str) -> str:
    """A line of `points` (day, value; None leaves a gap) with its first and last day and its peak."""
    values = [v for _, v in points if v is not None]
    top = max(values) if values else 0.0
    scale = top if top > 0 else 1.0
    step = (WIDTH - 2 * PAD) / max(1, len(points) - 1)
    path: list[str] = []
    pen_down = False
    for n, (_, value) in enumerate(points):
        if value is None:
            pen_down = False
            continue
        x = PAD + n * step
        y = HEIGHT - PAD - (value / scale) * (HEIGHT - 2 * PAD)
        path.append(f"{'L' if pen_down else 'M'}{x:.1f},{y:.1f}")
        pen_down = True
    first = escape(points[0][0]) if points else ""
    last = escape(points[-1][0]) if points else ""
    dots = "" if len(points) > 1 else "".join(
        f'<circle cx="{PAD}" cy="{HEIGHT - PAD - (v / scale) * (HEIGHT - 2 * PAD):.1f}" r="3" class="line-dot"/>'
        for v in values)
    return (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(label)}">'
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" class="axis"/>'
        f'<path d="{" ".join(path)}" class="line"/>{dots}'
        f'<text x="{PAD}" y="{HEIGHT - 6}" class="tick">{first}</text>'
        f'<text x="{WIDTH - PAD}" y="{HEIGHT - 6}" class="tick" text-anchor="end">{last}</text>'
        f'<text x="{PAD}" y="12" class="tick">max {top:,.4g}</text>'
        "</svg>"
    )
