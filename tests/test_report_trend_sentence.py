"""The committee report's trend sentence counts from the first day on which one of the
unit's devices had reported, not from a day on which every enrolled device was still
waiting for its first report (which read "From 0 %" for a new unit), in sv, da and en,
on SQLite and PostgreSQL: served by the real app over its test client, the readiness
read from the trend itself, the expected sentences built from the catalogue.

The fleet, with the organisation's day D (Europe/Stockholm) ending at NOW's midnight:
* Ny: two laptops enrolled on D−3 whose first reports came on D: only D has a figure.
* Växande: three laptops enrolled on D−4; one reported on D−3 only (ready that day,
  stale from D−2), the other two first reported on D: 1/3 ready on D−3, 2/3 on D.
* Jämn: two laptops enrolled on D−4; one reported on D−3 only, one on D only: 1/2 both.
* Tyst: a laptop enrolled on D−2 that has never reported.
"""
from __future__ import annotations

import datetime as dt
import html as html_lib
import re

import pytest
from sqlalchemy import update

from server import readiness as rd
from server.db import devices
from server.i18n_web import Translator

NOW = dt.datetime(2026, 3, 10, 11, 0, tzinfo=dt.timezone.utc)  # 12:00 in Stockholm, far from DST
D = dt.date(2026, 3, 10)
DAY = dt.timedelta(days=1)
ROOT = "Trendkommun"
OFFICER, PASSWORD = "so.trend", "correct horse battery staple"
TREND_TEXT = re.compile(r'<p id="trend-text">(.*?)</p>', re.S)


@pytest.fixture(scope="module")
def report_site(collector_db_url):
    from fastapi.testclient import TestClient

    from collector_fixtures import migrated_app
    from server import auth
    from server.simulate import add_device

    app = migrated_app(collector_db_url)
    store = app.state.store

    def laptop(unit: str, host: str, *, enrolled: dt.datetime, reports_at: dt.datetime | None, seed: int) -> str:
        device_id = add_device(store, f"{ROOT}/{unit}", host, reports=2 if reports_at else 0, seed=seed,
                               now=reports_at or enrolled)
        with store.engine.begin() as conn:
            conn.execute(update(devices).where(devices.c.id == device_id).values(enrolled_at=enrolled))
        return device_id

    laptop("Ny", "ny-1", enrolled=NOW - 3 * DAY, reports_at=NOW, seed=1)
    laptop("Ny", "ny-2", enrolled=NOW - 3 * DAY, reports_at=NOW, seed=2)
    laptop("Växande", "vx-1", enrolled=NOW - 4 * DAY, reports_at=NOW - 3 * DAY, seed=3)
    laptop("Växande", "vx-2", enrolled=NOW - 4 * DAY, reports_at=NOW, seed=4)
    laptop("Växande", "vx-3", enrolled=NOW - 4 * DAY, reports_at=NOW, seed=5)
    laptop("Jämn", "jm-1", enrolled=NOW - 4 * DAY, reports_at=NOW - 3 * DAY, seed=6)
    laptop("Jämn", "jm-2", enrolled=NOW - 4 * DAY, reports_at=NOW, seed=7)
    laptop("Tyst", "ty-1", enrolled=NOW - 2 * DAY, reports_at=None, seed=8)
    with store.engine.begin() as conn:
        auth.create_user(conn, username=OFFICER, role="security_officer", password=PASSWORD, lang="sv", now=NOW)
    ids = {u["path"].split("/")[-1]: u["id"] for u in store.list_units()}
    yield app, ids
    store.engine.dispose()


@pytest.fixture
def client(report_site, monkeypatch):
    from fastapi.testclient import TestClient

    from server import api, web_auth

    app, ids = report_site
    for mod in (api, web_auth):
        monkeypatch.setattr(mod, "_now", lambda: NOW)
    monkeypatch.setattr(app.state.web, "now", lambda: NOW)
    c = TestClient(app, base_url="https://testserver")
    assert c.post("/api/v1/login", json={"username": OFFICER, "password": PASSWORD}).status_code == 200
    yield c, ids
    c.close()


def sentence(c, unit_id: int, lang: str, days: int = 30) -> str:
    page = c.get(f"/units/{unit_id}/report", params={"lang": lang, "days": days})
    assert page.status_code == 200
    found = TREND_TEXT.findall(page.text)
    assert len(found) == 1, found
    return html_lib.unescape(found[0])


def test_the_trend_holds_the_days_the_sentence_reads(report_site) -> None:
    """What the sentences below stand on, from the trend (the structured source): the
    first days have enrolled devices that had not reported yet."""
    app, ids = report_site
    with app.state.store.engine.connect() as conn:
        def days(unit: str) -> dict[dt.date, tuple[int, int, float | None]]:
            return {p.day: (p.devices, p.reported, p.ready_pct)
                    for p in rd.trend(conn, rd.Scope(), ids[unit], NOW, days=30) if p.devices}
        assert days("Ny") == {D - 3 * DAY: (2, 0, 0.0), D - 2 * DAY: (2, 0, 0.0), D - DAY: (2, 0, 0.0),
                              D: (2, 2, 100.0)}
        vx = days("Växande")
        assert {d: v[:2] for d, v in vx.items()} == {D - 4 * DAY: (3, 0), D - 3 * DAY: (3, 1), D - 2 * DAY: (3, 1),
                                                     D - DAY: (3, 1), D: (3, 3)}
        assert (vx[D - 4 * DAY][2], vx[D - 3 * DAY][2], vx[D][2]) == (0.0, 33.3, 66.7)  # to a tenth, as shown
        assert days("Tyst") == {D - 2 * DAY: (1, 0, 0.0), D - DAY: (1, 0, 0.0), D: (1, 0, 0.0)}


@pytest.mark.parametrize("lang", ["sv", "da", "en"])
def test_a_new_unit_has_no_earlier_figure(client, lang: str) -> None:
    c, ids = client
    t = Translator(lang)
    assert sentence(c, ids["Ny"], lang) == t("report.trend.first", since=t.day(D), first=t.pct(100.0))


@pytest.mark.parametrize("lang", ["sv", "da", "en"])
def test_the_change_counts_from_the_first_day_a_device_reported(client, lang: str) -> None:
    c, ids = client
    t = Translator(lang)
    # The change is that of the figures shown (33.3 and 66.7), so the sentence adds up.
    want = t("report.trend.change", first=t.pct(33.3), since=t.day(D - 3 * DAY), last=t.pct(66.7),
             change="+" + t.number(33.4, 1))
    assert sentence(c, ids["Växande"], lang) == want
    assert t.pct(0.0) not in want  # the day before, with nobody reported, is not its start


@pytest.mark.parametrize("lang", ["sv", "da", "en"])
def test_unchanged_since_the_first_day_a_device_reported(client, lang: str) -> None:
    c, ids = client
    t = Translator(lang)
    assert sentence(c, ids["Jämn"], lang) == t("report.trend.flat", last=t.pct(50.0), since=t.day(D - 3 * DAY))


@pytest.mark.parametrize("lang", ["sv", "da", "en"])
def test_a_unit_whose_devices_never_reported_says_so(client, lang: str) -> None:
    c, ids = client
    assert sentence(c, ids["Tyst"], lang) == Translator(lang)("report.trend.none")


def test_the_whole_organisation_counts_from_its_first_reported_day(client) -> None:
    """The parent unit's sentence: its first reported day is D−3 (Växande, Jämn), when
    2 of its 7 devices enrolled by then had reported and were ready; on D, 5 of 8 are."""
    c, ids = client
    root = ids[ROOT]
    t = Translator("en")
    want = t("report.trend.change", first=t.pct(28.6), since=t.day(D - 3 * DAY), last=t.pct(62.5),
             change="+" + t.number(33.9, 1))
    assert sentence(c, root, "en") == want
