"""The trend chart's SVG (server/trend_svg.py) for units with 0, 1, 2, 3 and 30 days of
history and with a gap: what is drawn (columns or areas, how many), the date labels
(the reader's date format, today's always there, none past the edge or on top of
another), the text alternative stating the same numbers, and that every text is escaped.
The SVG is parsed as XML, so it is also well-formed."""
from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET

import pytest

from server.i18n_web import LANGS, Translator
from server.readiness import BANDS, TrendPoint
from server.trend_svg import COLUMN_DAYS, LAYOUTS, LABEL_CHARS_PX, NARROW, WIDE, chart_days, label_indexes, trend_chart

NS = {"s": "http://www.w3.org/2000/svg"}
TODAY = dt.date(2026, 12, 1)


def point(day: dt.date, ready: int = 0, due: int = 0, not_ready: int = 0, stale: int = 0,
          never: int = 0) -> TrendPoint:
    devices = ready + due + not_ready + stale + never
    return TrendPoint(day=day, ready_pct=(100.0 * (ready + due) / devices) if devices else None, ready=ready,
                      devices=devices, due=due, not_ready=not_ready, stale=stale, never_reported=never)


def window(history: list[TrendPoint], days: int = 90) -> list[TrendPoint]:
    """A trend's points over ``days`` ending today: empty days (nothing enrolled yet)
    before ``history``, as server.readiness.trend gives them."""
    first = TODAY - dt.timedelta(days=days - 1)
    have = {p.day: p for p in history}
    return [have.get(first + dt.timedelta(days=i)) or point(first + dt.timedelta(days=i)) for i in range(days)]


def history(n: int, gap_at: set[int] = frozenset()) -> list[TrendPoint]:
    """``n`` days ending today, with varied states; days in ``gap_at`` (0 = oldest) have no devices."""
    out = []
    for i in range(n):
        d = TODAY - dt.timedelta(days=n - 1 - i)
        out.append(point(d) if i in gap_at else point(d, ready=3 + i % 4, due=i % 2, not_ready=2, stale=i % 3,
                                                         never=1 if i == 0 else 0))
    return out


def svgs(chart) -> dict[str, ET.Element]:
    out = {}
    for markup in chart.svgs:
        root = ET.fromstring(str(markup))
        out[root.get("class").split()[-1].removeprefix("trend-")] = root
    return out


def labels(root: ET.Element) -> list[ET.Element]:
    return root.findall("s:text[@class='x-label']", NS)


def test_no_day_with_devices_draws_nothing() -> None:
    t = Translator("en")
    for pts in ([], window([])):
        chart = trend_chart(pts, BANDS, t, title="Trend")
        assert not chart and chart.svgs == () and str(chart.__html__()) == ""


@pytest.mark.parametrize("lang", LANGS)
def test_one_day_is_one_column_with_its_date_not_a_band_across_the_chart(lang: str) -> None:
    t = Translator(lang)
    p = point(TODAY, ready=3, not_ready=2)
    chart = trend_chart(window([p]), BANDS, t, title="Trend")
    assert chart and chart.starts_late and chart.first == TODAY and len(chart.days) == 1
    for name, root in svgs(chart).items():
        layout = {"wide": WIDE, "narrow": NARROW}[name]
        assert root.get("data-kind") == "columns" and root.get("data-days") == "1"
        assert root.findall("s:polygon", NS) == []  # no area, no line
        groups = root.findall("s:g[@class='day']", NS)
        assert [g.get("data-day") for g in groups] == [TODAY.isoformat()]
        rects = groups[0].findall("s:rect", NS)
        assert [r.get("class") for r in rects] == ["band band-ready", "band band-not_ready"]
        # The column stands in the middle of the chart, no wider than the layout allows.
        x, w = float(rects[0].get("x")), float(rects[0].get("width"))
        assert w <= layout.max_column
        assert abs((x + w / 2) - (layout.left + (layout.width - layout.left - layout.right) / 2)) < 1
        # Shares: 3 of 5 ready, 2 of 5 not ready, together the whole plot height.
        heights = [float(r.get("height")) for r in rects]
        plot = layout.height - layout.top - layout.bottom
        assert heights[0] == pytest.approx(plot * 3 / 5, abs=0.2) and sum(heights) == pytest.approx(plot, abs=0.2)
        assert [e.text for e in labels(root)] == [t.day(TODAY)]
        assert groups[0].find("s:title", NS).text == t("trend.day.title", day=t.day(TODAY), pct=t.pct(60.0), ready=3,
                                                       due=0, total=5)
        desc = root.find("s:desc", NS).text
        assert desc.startswith(t("trend.desc.one_day", day=t.day(TODAY)))
        assert t("trend.bands.alt", ready=3, not_ready=2, stale=0, never=0, total=5, due=0) in desc


@pytest.mark.parametrize("n", [2, 3])
def test_a_few_days_are_separate_columns_each_with_its_date(n: int) -> None:
    t = Translator("da")
    hist = history(n)
    chart = trend_chart(window(hist), BANDS, t, title="Trend")
    assert [d.day for d in chart.days] == [p.day for p in hist]
    for name, root in svgs(chart).items():
        assert root.get("data-kind") == "columns" and root.findall("s:polygon", NS) == []
        groups = root.findall("s:g[@class='day']", NS)
        assert [g.get("data-day") for g in groups] == [p.day.isoformat() for p in hist]
        for g, p in zip(groups, hist):
            assert [r.get("class").split("-", 1)[1] for r in g.findall("s:rect", NS)] == \
                [b for b in BANDS if p.count(b)]
        # Danish dates (dd.mm.yyyy), every day labelled, oldest first.
        texts = [e.text for e in labels(root)]
        assert texts == [t.day(p.day) for p in hist]
        assert all(re.fullmatch(r"\d\d\.\d\d\.\d{4}", s) for s in texts)
        desc = root.find("s:desc", NS).text
        assert desc.startswith(t("trend.desc.period", first=t.day(hist[0].day), last=t.day(TODAY), n=n))


def test_thirty_days_are_areas_from_the_first_day_labelled_up_to_today() -> None:
    t = Translator("sv")
    hist = history(30)
    chart = trend_chart(window(hist), BANDS, t, title="Trend")
    assert chart.first == hist[0].day and chart.with_data == 30 and chart.starts_late
    for name, root in svgs(chart).items():
        layout = {"wide": WIDE, "narrow": NARROW}[name]
        assert root.get("data-kind") == "areas" and root.findall("s:g[@class='day']", NS) == []
        polys = root.findall("s:polygon", NS)
        assert [p.get("class").split("-", 1)[1] for p in polys] == [b for b in BANDS if any(p.count(b) for p in hist)]
        for poly in polys:  # one point per day on the top edge and on the bottom edge
            assert len(poly.get("points").split()) == 2 * 30
        xs = [float(e.get("x")) for e in labels(root)]
        texts = [e.text for e in labels(root)]
        assert 2 <= len(texts) <= layout.max_labels
        assert texts[-1] == t.day(TODAY) and all(re.fullmatch(r"\d{4}-\d\d-\d\d", s) for s in texts)
        assert xs == sorted(xs)
        # No label past the drawing's edges or touching its neighbour.
        spans = []
        for e in labels(root):
            x, w = float(e.get("x")), len(e.text) * LABEL_CHARS_PX
            x0 = {"start": x, "middle": x - w / 2, "end": x - w}[e.get("text-anchor")]
            assert 0 <= x0 and x0 + w <= layout.width
            spans.append((x0, x0 + w))
        assert all(a[1] < b[0] for a, b in zip(spans, spans[1:]))


def test_a_short_window_that_is_full_does_not_say_it_starts_late() -> None:
    chart = trend_chart(history(7), BANDS, Translator("en"), title="Trend")
    assert not chart.starts_late and len(chart.days) == 7


def test_a_gap_is_a_gap_not_zero_percent() -> None:
    t = Translator("en")
    # Areas: day 15 of 30 without devices splits every band in two; nothing is drawn there.
    hist = history(30, gap_at={15})
    chart = trend_chart(window(hist), BANDS, t, title="Trend")
    assert [d.point is None for d in chart.days] == [i == 15 for i in range(30)]
    root = svgs(chart)["wide"]
    polys = root.findall("s:polygon", NS)
    present = [b for b in BANDS if any(p.count(b) for p in hist)]
    assert [p.get("class").split("-", 1)[1] for p in polys] == present + [b for b in present if b != "never_reported"]
    gap_x = WIDE.left + (WIDE.width - WIDE.left - WIDE.right) * 15 / 29
    for poly in polys:
        xs = {round(float(pt.split(",")[0]), 1) for pt in poly.get("points").split()}
        assert round(gap_x, 1) not in xs
    assert t("trend.desc.gaps", n=1) in root.find("s:desc", NS).text
    # Columns: a missing day leaves its slot empty (and a day absent from the points is a gap too).
    few = [p for p in history(5, gap_at={2}) if p.devices]
    assert len(few) == 4
    chart = trend_chart(few, BANDS, t, title="Trend")
    assert [d.day for d in chart.days] == [TODAY - dt.timedelta(days=4 - i) for i in range(5)]
    root = svgs(chart)["wide"]
    assert [g.get("data-day") for g in root.findall("s:g[@class='day']", NS)] == [p.day.isoformat() for p in few]
    # An isolated day among areas is drawn as a column of its own.
    lone = history(30, gap_at={28})
    root = svgs(trend_chart(lone, BANDS, t, title="Trend"))["wide"]
    assert [g.get("data-day") for g in root.findall("s:g[@class='day']", NS)] == [TODAY.isoformat()]


def test_chart_days_run_from_the_first_day_with_devices_to_the_last_point() -> None:
    hist = history(4, gap_at={0})
    days = chart_days(window(hist, days=10))
    assert [d.day for d in days] == [p.day for p in hist[1:]]
    assert chart_days([point(TODAY)]) == []


def test_label_indexes_keep_today_and_stay_within_the_limit() -> None:
    for n in range(1, 120):
        for most in (3, 7):
            idx = label_indexes(n, most)
            assert idx[-1] == n - 1 and len(idx) <= most and idx == sorted(set(idx))


def test_every_text_is_escaped_and_the_ids_are_distinct() -> None:
    evil = '<script>alert(1)</script> & "x"'
    chart = trend_chart(history(3), BANDS, Translator("en"), title=evil)
    html = chart.__html__()
    assert "<script>" not in html and "&lt;script&gt;" in html
    roots = svgs(chart)
    assert {r.find("s:title", NS).text for r in roots.values()} == {evil}
    ids = [e.get("id") for r in roots.values() for e in r.iter() if e.get("id")]
    assert len(ids) == len(set(ids)) == 2 * len(LAYOUTS)
    assert roots["wide"].get("aria-labelledby") == "trend-title trend-desc"


def test_columns_up_to_the_limit_then_areas() -> None:
    t = Translator("en")
    assert svgs(trend_chart(history(COLUMN_DAYS), BANDS, t))["wide"].get("data-kind") == "columns"
    assert svgs(trend_chart(history(COLUMN_DAYS + 1), BANDS, t))["wide"].get("data-kind") == "areas"
