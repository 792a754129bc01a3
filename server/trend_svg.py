"""The readiness trend as an inline SVG of stacked state bands, drawn on the server (no
JavaScript).

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


# The colours of the dashboard's bars and legend (dashboard.css).
BAND_FILL = {"ready": "#1b6e38", "due": "#6a3d9a", "not_ready": "#b3261e", "stale": "#8a4f00", "never_reported": "#5f6673"}


def trend_bands_svg(points: Sequence[Any], bands: Sequence[str], *, days: int, title: str = "",
                    desc: str = "", day_label: Callable[[dt.date], str] = dt.date.isoformat) -> Markup:
    """The fleet's states per day as stacked bands (shares of the devices counted that
    day), ``bands`` from the bottom up; ``points`` have ``day``, ``devices`` and
    ``count(state)``. Days without devices are left out. ``day_label`` writes a tick's
    date for the reader."""
    pts = [p for p in points if p.devices]
    if not pts:
        return Markup("")
    end = as_date(points[-1].day)
    start = end - dt.timedelta(days=days - 1)
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM

    def x(d: Any) -> float:
        return LEFT + pw * ((as_date(d) - start).days / max(days - 1, 1))

    def y(share: float) -> float:
        return TOP + ph * (1 - max(0.0, min(1.0, share)))

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" role="img" '
           f'aria-labelledby="trend-title trend-desc" class="trend-chart">',
           f'<title id="trend-title">{escape(title)}</title><desc id="trend-desc">{escape(desc)}</desc>']
    below = [0.0] * len(pts)
    for band in bands:
        above = [b + p.count(band) / p.devices for b, p in zip(below, pts)]
        if any(a > b for a, b in zip(above, below)):
            if len(pts) == 1:  # one day: a bar, not an area
                x0, x1 = x(pts[0].day) - 4, x(pts[0].day) + 4
                poly = f"{x0:.1f},{y(below[0]):.1f} {x0:.1f},{y(above[0]):.1f} {x1:.1f},{y(above[0]):.1f} " \
                       f"{x1:.1f},{y(below[0]):.1f}"
            else:
                top = [f"{x(p.day):.1f},{y(a):.1f}" for p, a in zip(pts, above)]
                bottom = [f"{x(p.day):.1f},{y(b):.1f}" for p, b in zip(reversed(pts), reversed(below))]
                poly = " ".join(top + bottom)
            out.append(f'<polygon class="band band-{escape(band)}" fill="{BAND_FILL.get(band, "#999")}" '
                       f'points="{poly}"/>')
        below = above
    for v in (0, 25, 50, 75, 100):
        yy = y(v / 100)
        out.append(f'<line class="grid" x1="{LEFT}" y1="{yy:.1f}" x2="{W - RIGHT}" y2="{yy:.1f}"/>')
        out.append(f'<text x="{LEFT - 6}" y="{yy + 4:.1f}" text-anchor="end">{v}&#160;%</text>')
    out.append(f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{H - BOTTOM}"/>')
    out.append(f'<line class="axis" x1="{LEFT}" y1="{H - BOTTOM}" x2="{W - RIGHT}" y2="{H - BOTTOM}"/>')
    step = max(1, round(days / 6))
    for i in range(0, days, step):
        d = start + dt.timedelta(days=i)
        xx = x(d)
        out.append(f'<line class="axis" x1="{xx:.1f}" y1="{H - BOTTOM}" x2="{xx:.1f}" y2="{H - BOTTOM + 4}"/>')
        out.append(f'<text x="{xx:.1f}" y="{H - BOTTOM + 17}" text-anchor="middle">{escape(day_label(d))}</text>')
    out.append("</svg>")
    return Markup("".join(out))
