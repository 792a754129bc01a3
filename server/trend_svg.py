"""The readiness trend as an inline SVG, drawn on the server (no JavaScript).

Every label is escaped (markupsafe) and the numbers are formatted here, so the SVG can
be placed in a template as ``Markup`` without carrying any agent-supplied text.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Callable, Sequence

from markupsafe import Markup, escape

from server.db import as_date

W, H = 900, 240
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 12, 28


def trend_svg(points: Sequence[tuple[Any, float | None]], *, days: int, end: dt.date | None = None,
              title: str = "", desc: str = "", day_label: Callable[[dt.date], str] = dt.date.isoformat) -> Markup:
    """``points`` = (day, readiness 0..100 or None) pairs; the x axis spans ``days`` days
    ending at ``end`` (default: the last point's day). Days without a value are left out
    of the line (it joins the known days). ``day_label`` writes a tick's date for the reader."""
    pts = [(as_date(d), float(v)) for d, v in points if v is not None]
    if not pts:
        return Markup("")
    end = end or max(d for d, _ in pts)
    start = end - dt.timedelta(days=days - 1)
    pts = sorted((d, v) for d, v in pts if start <= d <= end)
    if not pts:
        return Markup("")
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM

    def x(d: dt.date) -> float:
        return LEFT + pw * ((d - start).days / max(days - 1, 1))

    def y(v: float) -> float:
        return TOP + ph * (1 - max(0.0, min(100.0, v)) / 100)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" role="img" '
           f'aria-labelledby="trend-title trend-desc" class="trend-chart">',
           f'<title id="trend-title">{escape(title)}</title><desc id="trend-desc">{escape(desc)}</desc>']
    for v in (0, 25, 50, 75, 100):
        yy = y(v)
        out.append(f'<line class="grid" x1="{LEFT}" y1="{yy:.1f}" x2="{W - RIGHT}" y2="{yy:.1f}"/>')
        out.append(f'<text x="{LEFT - 6}" y="{yy + 4:.1f}" text-anchor="end">{v}&#160;%</text>')
    out.append(f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{H - BOTTOM}"/>')
    out.append(f'<line class="axis" x1="{LEFT}" y1="{H - BOTTOM}" x2="{W - RIGHT}" y2="{H - BOTTOM}"/>')
    # Date ticks: about six, on whole days.
    step = max(1, round(days / 6))
    for i in range(0, days, step):
        d = start + dt.timedelta(days=i)
        xx = x(d)
        out.append(f'<line class="axis" x1="{xx:.1f}" y1="{H - BOTTOM}" x2="{xx:.1f}" y2="{H - BOTTOM + 4}"/>')
        out.append(f'<text x="{xx:.1f}" y="{H - BOTTOM + 17}" text-anchor="middle">{escape(day_label(d))}</text>')
    line = " ".join(f"{x(d):.1f},{y(v):.1f}" for d, v in pts)
    if len(pts) > 1:
        area = f"{x(pts[0][0]):.1f},{y(0):.1f} {line} {x(pts[-1][0]):.1f},{y(0):.1f}"
        out.append(f'<polygon class="area" points="{area}"/>')
        out.append(f'<polyline class="line" points="{line}"/>')
    for d, v in pts[-1:]:
        out.append(f'<circle cx="{x(d):.1f}" cy="{y(v):.1f}" r="3.5" fill="#1f7a3f"/>')
        out.append(f'<text x="{min(x(d), W - RIGHT - 30):.1f}" y="{max(y(v) - 8, TOP + 10):.1f}" '
                   f'text-anchor="end" font-weight="700">{v:.0f}&#160;%</text>')
    out.append("</svg>")
    return Markup("".join(out))
