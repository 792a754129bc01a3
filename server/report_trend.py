"""The committee report's sentence on the period's trend, from the trend's day points.

It compares the first day on which any of the unit's devices had reported with the
last: a day on which every enrolled device was still waiting for its first report has
no readiness to speak of (0 % of devices that never spoke), and counting from it made a
new unit read "From 0 % to 100 %". One catalogue sentence for each case, none pieced
together from fragments.
"""
from __future__ import annotations

from typing import Sequence

from server.i18n_web import Translator
from server.readiness import TrendPoint

FLAT = 0.05  # percentage points: a change below this is shown as none


def trend_sentence(points: Sequence[TrendPoint], t: Translator) -> str:
    """What the period's readiness did, in the reader's language: from the first day with
    a reported device to the last, unchanged since it, the one day there is, or nothing
    reported yet."""
    reported = [p for p in points if p.ready_pct is not None and p.reported]
    if not reported:
        return t("report.trend.none")
    first, last = reported[0], reported[-1]
    since, first_pct, last_pct = t.day(first.day), first.ready_pct or 0.0, last.ready_pct or 0.0
    if len(reported) == 1:
        return t("report.trend.first", since=since, first=t.pct(first_pct))
    change = last_pct - first_pct
    if abs(change) < FLAT:
        return t("report.trend.flat", last=t.pct(last_pct), since=since)
    return t("report.trend.change", first=t.pct(first_pct), since=since, last=t.pct(last_pct),
             change=("+" if change > 0 else "−") + t.number(abs(change), 1))
