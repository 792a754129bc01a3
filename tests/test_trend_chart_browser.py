"""The unit page's trend chart in a real headless Chromium (Debian's /usr/bin/chromium
through Playwright) against a real collector subprocess on SQLite, for a unit enrolled
today (one day of history) and one with a month: in sv, da and en, at a phone's 390 px,
a tablet's 768 px and a laptop's 1366 px, the one chart shown fits the viewport, its labels are inside it,
legible and apart; its table of numbers per day equals the API's trend; and a unit whose
name is markup runs nothing."""
from __future__ import annotations

import datetime as dt
from typing import Any, Iterator

import pytest
from sqlalchemy import update

from browser_harness import browser, needs_chromium  # noqa: F401 - browser: the fixture
from collector_fixtures import start_collector
from server.i18n_web import Translator

pytestmark = needs_chromium

OFFICER, PASSWORD = "officer.trend", "correct horse battery staple"
ONE_DAY = "Nykommun/Enrolled today"
MONTH = "Nykommun/A month"
EVIL = 'Nykommun/<img src=x onerror="window.__pwned=1">'
LOCALES = {"sv": "sv-SE", "da": "da-DK", "en": "en-GB"}


def _enrol_today(store: Any, unit: str, hostname: str, seed: int) -> None:
    """A device enrolled and reporting earlier today (local day of the collector's zone),
    whatever the time of day the test runs at."""
    from server.db import devices
    from server.local_time import DEFAULT_ZONE, local_day, local_midnight_after
    from server.simulate import add_device

    now = dt.datetime.now(dt.timezone.utc)
    midnight = local_midnight_after(local_day(now, DEFAULT_ZONE) - dt.timedelta(days=1), DEFAULT_ZONE)
    report_at = max(now - dt.timedelta(minutes=30), midnight + (now - midnight) / 2)
    device_id = add_device(store, unit, hostname, reports=1, seed=seed, now=report_at + dt.timedelta(minutes=30))
    with store.engine.begin() as conn:
        conn.execute(update(devices).where(devices.c.id == device_id)
                     .values(enrolled_at=midnight + (report_at - midnight) / 2))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from server import auth, migrate
    from server.db import make_engine, units
    from server.simulate import FleetSpec, simulate_fleet
    from server.store import Store

    work = tmp_path_factory.mktemp("trend-chart")
    db_url = f"sqlite:///{work / 'collector.db'}"
    engine = make_engine(db_url, pool_size=2, max_overflow=2)
    migrate.upgrade(engine)
    store = Store(engine)
    simulate_fleet(store, FleetSpec(devices=8, days=29, seed=4, units=((MONTH, 1.0),)))
    for i in range(3):
        _enrol_today(store, ONE_DAY, f"NEW-{i}", seed=20 + i)
    _enrol_today(store, EVIL, "EVIL-1", seed=30)
    with engine.begin() as conn:
        auth.create_user(conn, username=OFFICER, role="security_officer", password=PASSWORD, lang="en")
        ids = {r.path: r.id for r in conn.execute(units.select())}
    engine.dispose()
    collector = start_collector(db_url, work / "run", extra_args=("--insecure-cookies",))
    collector.unit_ids = ids  # type: ignore[attr-defined]
    try:
        yield collector
    finally:
        collector.stop()


def _logged_in(browser: Any, base: str, lang: str, width: int) -> tuple[Any, Any, list[str]]:
    context = browser.new_context(locale=LOCALES[lang], viewport={"width": width, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("dialog", lambda d: (errors.append("dialog: " + d.message), d.dismiss()))
    page.goto(base + "/login")
    page.fill("#username", OFFICER)
    page.fill("#password", PASSWORD)
    page.click("#login-submit")
    page.wait_for_url(base + "/")
    return context, page, errors


# Every drawn text's box, the chart's box and the font size, measured in the page.
MEASURE = """svg => {
  const box = svg.getBoundingClientRect();
  const texts = [...svg.querySelectorAll('text')].map(e => {
    const r = e.getBoundingClientRect();
    return {cls: e.getAttribute('class'), text: e.textContent, left: r.left, right: r.right, top: r.top,
            bottom: r.bottom, height: r.height};
  });
  return {box: {left: box.left, right: box.right, top: box.top, bottom: box.bottom}, texts,
          kind: svg.dataset.kind, days: Number(svg.dataset.days), cls: svg.getAttribute('class'),
          title: svg.querySelector('title').textContent, desc: svg.querySelector('desc').textContent};
}"""


@pytest.mark.parametrize("lang", ["sv", "da", "en"])
def test_one_day_and_a_month_fit_a_phone_and_a_laptop(site: Any, browser: Any, lang: str) -> None:  # noqa: F811
    for width in (390, 768, 1366):
        context, page, errors = _logged_in(browser, site.url, lang, width)
        try:
            for unit in (ONE_DAY, MONTH):
                page.goto(f"{site.url}/units/{site.unit_ids[unit]}?lang={lang}")
                api = page.request.get(f"{site.url}/api/v1/units/{site.unit_ids[unit]}/trend").json()
                counted = [p for p in api if p["devices"]]
                span = (dt.date.fromisoformat(api[-1]["day"]) - dt.date.fromisoformat(counted[0]["day"])).days + 1
                shown = page.locator("section.trend svg.trend-chart:visible")
                assert shown.count() == 1, (lang, width, unit)
                m = shown.evaluate(MEASURE)
                assert ("trend-narrow" if width <= 800 else "trend-wide") in m["cls"]
                assert m["days"] == span
                if unit == ONE_DAY:
                    assert span == 1 and m["kind"] == "columns"
                    assert page.locator("section.trend svg.trend-chart:visible g.day").count() == 1
                    assert page.locator("#trend-one-day").is_visible()
                else:
                    assert span >= 15 and m["kind"] == "areas"
                    assert page.locator("#trend-since").is_visible()
                # The chart within the viewport, nothing in its section wider than the section.
                assert 0 <= m["box"]["left"] and m["box"]["right"] <= width, (lang, width, unit, m["box"])
                assert page.locator("section.trend").evaluate("s => s.scrollWidth <= s.clientWidth")
                labels = [x for x in m["texts"] if x["cls"] == "x-label"]
                assert labels and labels[-1]["text"] == Translator(lang).day(dt.date.fromisoformat(api[-1]["day"]))
                for x in m["texts"]:
                    assert m["box"]["left"] - 0.5 <= x["left"] and x["right"] <= m["box"]["right"] + 0.5, x
                    assert x["height"] >= 9, (width, x)  # legible, not a scaled-down 4 px
                for a, b in zip(labels, labels[1:]):
                    assert a["right"] < b["left"], (a, b)
            assert errors == []
        finally:
            context.close()


def test_the_table_of_numbers_is_the_apis_trend(site: Any, browser: Any) -> None:  # noqa: F811
    context, page, errors = _logged_in(browser, site.url, "en", 1366)
    try:
        for unit in (ONE_DAY, MONTH):
            uid = site.unit_ids[unit]
            page.goto(f"{site.url}/units/{uid}?lang=en")
            api = page.request.get(f"{site.url}/api/v1/units/{uid}/trend").json()
            first = min(p["day"] for p in api if p["devices"])
            want = {p["day"]: [p["ready"], p["due"], p["not_ready"], p["stale"], p["never_reported"], p["devices"]]
                    for p in api if p["day"] >= first}
            page.click("details.trend-numbers summary")
            rows = page.locator("#trend-table tbody tr")
            got = {}
            for i in range(rows.count()):
                row = rows.nth(i)
                cells = [c.strip() for c in row.locator("td").all_inner_texts()]
                got[row.get_attribute("data-day")] = [int(c) for c in cells[2:]]
            assert got == want
            # The chart's text alternative states today's counts, as the tiles do.
            desc = page.locator("svg.trend-wide desc").text_content()
            last = api[-1]
            assert f"Now: {last['ready']} ready, {last['due']} due, {last['not_ready']} not ready" in desc
        assert errors == []
    finally:
        context.close()


def test_a_unit_named_with_markup_runs_nothing(site: Any, browser: Any) -> None:  # noqa: F811
    for lang in ("sv", "en"):
        context, page, errors = _logged_in(browser, site.url, lang, 390)
        try:
            page.goto(f"{site.url}/units/{site.unit_ids[EVIL]}?lang={lang}")
            assert page.inner_text("#unit-name") == EVIL.split("/")[-1]
            assert page.locator("section.trend svg.trend-chart:visible g.day").count() == 1
            assert page.locator("main img").count() == 0
            page.goto(f"{site.url}/units/{site.unit_ids[EVIL]}/report?lang={lang}")
            assert page.locator("section.trend svg.trend-chart").count() == 2
            assert page.evaluate("() => window.__pwned") is None
            assert errors == []
        finally:
            context.close()
