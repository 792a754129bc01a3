"""The readiness tiles (one macro, ``summary_tiles``) say the same on every page that shows
them: a unit's page and its committee report agree tile for tile, and the overview's total
agrees with the units at its top level, on SQLite and PostgreSQL."""
from __future__ import annotations

import html as html_lib
import re

import pytest

from readiness_fleet import EB, IFO, PASSWORD, SOC, build_fleet

TILE = re.compile(r'<div class="stat"><span class="n"(?: id="[^"]*")?>([^<]*)</span><span class="l">([^<]*)</span></div>')


@pytest.fixture(scope="module")
def tiles_env(collector_db_url):
    from fastapi.testclient import TestClient

    from collector_fixtures import migrated_app

    app = migrated_app(collector_db_url)
    fleet = build_fleet(app.state.store)
    c = TestClient(app, base_url="https://testserver")
    assert c.post("/api/v1/login", json={"username": "so_all", "password": PASSWORD}).status_code == 200
    yield fleet, c
    app.state.store.engine.dispose()


def tiles(page: str) -> dict[str, str]:
    found = {html_lib.unescape(label): html_lib.unescape(value) for value, label in TILE.findall(page)}
    assert found, "no tiles on the page"
    return found


@pytest.mark.parametrize("lang", ["sv", "da", "en"])
def test_unit_page_and_report_show_the_same_tiles(tiles_env, lang: str) -> None:
    fleet, c = tiles_env
    for path in (SOC, IFO, EB):
        unit = tiles(c.get(f"/units/{fleet.units[path]}?lang={lang}").text)
        report = tiles(c.get(f"/units/{fleet.units[path]}/report?lang={lang}").text)
        assert len(report) >= 6 and len(unit) == len(report) + 1  # the unit page adds the outdated agents
        assert {k: unit[k] for k in report} == report


def test_overview_total_agrees_with_its_units(tiles_env) -> None:
    fleet, c = tiles_env
    api = c.get("/api/v1/units").json()
    roots = [u for u in (api["units"] if isinstance(api, dict) else api) if "/" not in u["path"]]
    total = tiles(c.get("/?lang=en").text)
    assert total["Devices"] == str(sum(u["total"] for u in roots))
    for state, label in (("not_ready", "Not ready"), ("never_reported", "Never reported")):
        assert total[label] == str(sum(u["counts"][state] for u in roots))
