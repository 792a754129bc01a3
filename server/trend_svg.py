"""The readiness trend as inline SVG of stacked state bands, drawn on the server (no
JavaScript), and the days it shows.

A unit enrolled this week has only a few days of history, so what is drawn depends on
how many days have devices:

* none: nothing (the page says there is no history yet);
* up to :data:`COLUMN_DAYS` days: one stacked column per day, each its own date — days
  are separate counts, so one day is one column, not a band stretched across the chart,
  and two days are two columns, not a slope between them;
* more: stacked areas.

The time axis runs from the first day with devices to today, not from the start of the
window, so a three-day-old unit is not a sliver at the edge of 90 empty days; the date
labels are anchored on today. A day without devices inside that span is a gap — no
column, the areas broken around it — never drawn as 0 %.

Two layouts of the same chart are drawn (the page's CSS shows one): SVG text scales with
the viewBox, so a 900-unit-wide chart on a phone would have 4 px labels.

The numbers come from the trend's points (:func:`server.readiness.trend.trend`), the
only place they are computed; dates and numbers are written by the reader's Translator,
and every text is escaped (markupsafe), so the SVG can be placed in a template as
``Markup`` without carrying anything a device sent.
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any, Sequence

from markupsafe import Markup, escape

from server.db import as_date

# The colours of the dashboard's bars and legend (dashboard.css).
BAND_FILL = {"ready": "#1b6e38", "due": "#6a3d9a", "not_ready": "#b3261e", "stale": "#8a4f00", "never_reported": "#5f6673"}
COLUMN_DAYS = 14  # up to this many days: a column per day; more: areas
LABEL_CHARS_PX = 6.4  # about the width of one character of an 11 px axis label


@dataclass(frozen=True)
class Layout:
    name: str
    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int
    max_labels: int  # date labels along the time axis, at most
    max_column: float  # a day's column is never wider than this


WIDE = Layout("wide", 900, 240, 46, 12, 12, 28, 7, 56.0)
NARROW = Layout("narrow", 360, 220, 46, 14, 10, 28, 3, 40.0)  # about 1:1 on a phone, 4:3 on a tablet
LAYOUTS = (WIDE, NARROW)


@dataclass(frozen=True)
class ChartDay:
    day: dt.date
    point: Any | None  # None: no device was counted that day (a gap)


@dataclass(frozen=True)
class TrendChart:
    """The chart of a trend for one reader: its days (first with devices to the last),
    the SVG in each layout, and whether the window began before the first day."""

    days: tuple[ChartDay, ...]
    svgs: tuple[Markup, ...]
    starts_late: bool
    bands: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.days)

    def __html__(self) -> str:
        return str(Markup("").join(self.svgs))

    @property
    def first(self) -> dt.date | None:
        return self.days[0].day if self.days else None

    @property
    def with_data(self) -> int:
        return sum(1 for d in self.days if d.point is not None)


def chart_days(points: Sequence[Any]) -> list[ChartDay]:
    """The days the chart shows: from the first day with devices to the last point's day,
    each with its point, or None where no device was counted (or the day is missing)."""
    by_day = {as_date(p.day): p for p in points}
    counted = sorted(d for d, p in by_day.items() if p.devices)
    if not counted:
        return []
    first, last = counted[0], max(by_day)
    out = []
    for i in range((last - first).days + 1):
        d = first + dt.timedelta(days=i)
        p = by_day.get(d)
        out.append(ChartDay(d, p if p is not None and p.devices else None))
    return out


def label_indexes(n: int, most: int) -> list[int]:
    """Which of ``n`` days get a date label: the last (today) and every k-th before it,
    at most ``most`` of them."""
    if n <= 0:
        return []
    step = max(1, math.ceil(n / max(1, most)))
    return sorted(range(n - 1, -1, -step))


def description(days: Sequence[ChartDay], t: Any) -> str:
    """The chart's text alternative: the span, the days without data, and the latest
    counts — the same numbers the chart and its table show."""
    counted = [d for d in days if d.point is not None]
    if not counted:
        return ""
    if len(days) == 1:
        period = t("trend.desc.one_day", day=t.day(days[0].day))
    else:
        period = t("trend.desc.period", first=t.day(days[0].day), last=t.day(days[-1].day), n=len(days))
    gaps = len(days) - len(counted)
    if gaps:
        period += " " + t("trend.desc.gaps", n=gaps)
    last = counted[-1].point
    return period + " " + t("trend.bands.alt", ready=last.ready, not_ready=last.not_ready, stale=last.stale,
                            never=last.never_reported, total=last.devices, due=last.due)


def trend_chart(points: Sequence[Any], bands: Sequence[str], t: Any, *, title: str = "") -> TrendChart:
    """The chart of ``points`` (``day``, ``devices``, ``count(state)``; oldest first) with
    ``bands`` stacked from the bottom up, written for the reader of ``t`` (a Translator)."""
    days = chart_days(points)
    if not days:
        return TrendChart((), (), False, tuple(bands))
    desc = description(days, t)
    svgs = tuple(_svg(days, bands, t, layout, title=title, desc=desc) for layout in LAYOUTS)
    starts_late = as_date(points[0].day) < days[0].day
    return TrendChart(tuple(days), svgs, starts_late, tuple(bands))


def _svg(days: Sequence[ChartDay], bands: Sequence[str], t: Any, lo: Layout, *, title: str, desc: str) -> Markup:
    n = len(days)
    pw, ph = lo.width - lo.left - lo.right, lo.height - lo.top - lo.bottom
    columns = n <= COLUMN_DAYS
    slot = pw / n

    def x(i: int) -> float:  # the middle of day i's column, or day i's point on the areas
        return lo.left + (slot * (i + 0.5) if columns else pw * i / (n - 1))

    def y(share: float) -> float:
        return lo.top + ph * (1 - max(0.0, min(1.0, share)))

    ids = "trend" if lo is WIDE else f"trend-{lo.name}"
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {lo.width} {lo.height}" role="img" '
           f'aria-labelledby="{ids}-title {ids}-desc" class="trend-chart trend-{lo.name}" '
           f'data-days="{n}" data-kind="{"columns" if columns else "areas"}">',
           f'<title id="{ids}-title">{escape(title)}</title><desc id="{ids}-desc">{escape(desc)}</desc>']
    for v in (0, 25, 50, 75, 100):
        yy = y(v / 100)
        out.append(f'<line class="gridline" x1="{lo.left}" y1="{yy:.1f}" x2="{lo.width - lo.right}" y2="{yy:.1f}"/>')
        out.append(f'<text class="y-label" x="{lo.left - 6}" y="{yy + 4:.1f}" text-anchor="end">'
                   f'{escape(t.number(v))}&#160;%</text>')
    # Each run of consecutive days with devices is drawn on its own: a gap breaks it.
    runs: list[list[int]] = []
    for i, d in enumerate(days):
        if d.point is None:
            continue
        if runs and runs[-1][-1] == i - 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    width = min(slot * 0.62, lo.max_column) if columns else max(3.0, min(pw / (n - 1) * 0.6, lo.max_column))
    for run in runs:
        if columns or len(run) == 1:
            for i in run:
                out.append(_column(days[i], bands, t, x(i), width, y))
        else:
            out.append(_areas([days[i] for i in run], [x(i) for i in run], bands, y))
    out.append(f'<line class="axis" x1="{lo.left}" y1="{lo.top}" x2="{lo.left}" y2="{lo.height - lo.bottom}"/>')
    out.append(f'<line class="axis" x1="{lo.left}" y1="{lo.height - lo.bottom}" x2="{lo.width - lo.right}" '
               f'y2="{lo.height - lo.bottom}"/>')
    base = lo.height - lo.bottom
    for i, text, xx, anchor in _placed_labels(days, t, x, lo):
        out.append(f'<line class="axis" x1="{xx:.1f}" y1="{base}" x2="{xx:.1f}" y2="{base + 4}"/>')
        out.append(f'<text class="x-label" x="{xx:.1f}" y="{base + 17}" text-anchor="{anchor}">{escape(text)}</text>')
    out.append("</svg>")
    return Markup("".join(out))


def _placed_labels(days: Sequence[ChartDay], t: Any, x: Any, lo: Layout) -> list[tuple[int, str, float, str]]:
    """The date labels to draw, oldest first: (day index, text, x, text-anchor). A label
    that would run past the chart's edge is set against its tick instead; one that would
    touch the next newer label is left out (today's is always kept)."""
    out: list[tuple[int, str, float, str]] = []
    room = lo.width  # where the newer label kept so far begins
    for i in reversed(label_indexes(len(days), lo.max_labels)):
        text = t.day(days[i].day)
        xx, w = x(i), len(text) * LABEL_CHARS_PX
        anchor = "end" if xx + w / 2 > lo.width - 2 else "start" if xx - w / 2 < 2 else "middle"
        x0 = {"end": xx - w, "start": xx, "middle": xx - w / 2}[anchor]
        if out and x0 + w + 8 > room:
            continue
        out.append((i, text, xx, anchor))
        room = x0
    return out[::-1]


def _shares(p: Any, bands: Sequence[str]) -> list[tuple[str, float, float]]:
    """Each band's (name, bottom, top) share of the day's devices, bottom up."""
    out, below = [], 0.0
    for band in bands:
        above = below + p.count(band) / p.devices
        out.append((band, below, above))
        below = above
    return out


def _band_attrs(band: str) -> str:
    return f'class="band band-{escape(band)}" fill="{BAND_FILL.get(band, "#999")}"'


def _column(d: ChartDay, bands: Sequence[str], t: Any, xx: float, width: float, y: Any) -> str:
    p = d.point
    parts = [f'<g class="day" data-day="{d.day.isoformat()}"><title>'
             f'{escape(t("trend.day.title", day=t.day(d.day), pct=t.pct(p.ready_pct), ready=p.ready, due=p.due, total=p.devices))}'
             f'</title>']
    for band, lo_share, hi_share in _shares(p, bands):
        if hi_share > lo_share:
            top, bottom = y(hi_share), y(lo_share)
            parts.append(f'<rect {_band_attrs(band)} x="{xx - width / 2:.1f}" y="{top:.1f}" width="{width:.1f}" '
                         f'height="{bottom - top:.1f}"/>')
    parts.append("</g>")
    return "".join(parts)


def _areas(run: Sequence[ChartDay], xs: Sequence[float], bands: Sequence[str], y: Any) -> str:
    shares = [_shares(d.point, bands) for d in run]
    parts = []
    for k, band in enumerate(bands):
        if not any(s[k][2] > s[k][1] for s in shares):
            continue
        top = [f"{xx:.1f},{y(s[k][2]):.1f}" for xx, s in zip(xs, shares)]
        bottom = [f"{xx:.1f},{y(s[k][1]):.1f}" for xx, s in zip(reversed(xs), reversed(shares))]
        parts.append(f'<polygon {_band_attrs(band)} points="{" ".join(top + bottom)}"/>')
    return "".join(parts)
