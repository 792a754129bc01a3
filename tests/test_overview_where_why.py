"""The overview answers "where and why": worst first on request, each unit's most common
blocking check, a never-reported tile, units below the configured target marked, the
tree's older-agent column agreeing with the tile; failing-check counts only of devices
judged on a fresh report (stale ones apart) — on SQLite and PostgreSQL."""
from __future__ import annotations

import datetime as dt
import re

import pytest

from readiness_fleet import AO, BU, EB, IFO, NOW, PASSWORD, SOC, build_fleet
from server import readiness as rd


@pytest.fixture(scope="module")
def app_fleet(collector_db_url):
    from fastapi.testclient import TestClient

    from collector_fixtures import migrated_app

    app = migrated_app(collector_db_url, max_overflow=4)
    fleet = build_fleet(app.state.store)
    c = TestClient(app, base_url="https://testserver")
    assert c.post("/api/v1/login", json={"username": "so_all", "password": PASSWORD}).status_code == 200
    yield app, fleet, c
    c.close()
    app.state.store.engine.dispose()


def test_failing_checks_count_fresh_devices_only(app_fleet):
    _app, fleet, _c = app_fleet
    with fleet.store.engine.connect() as conn:
        d = rd.unit_detail(conn, rd.Scope(), fleet.units[BU], NOW)
    by = {f.check_id: f for f in d.failing_checks}
    # bu1 fails firewall on a fresh report; bu2's disk-encrypted failure is 50 h old (stale): apart.
    assert (by["firewall"].devices_failing, by["firewall"].devices_stale) == (1, 0)
    assert (by["disk-encrypted"].devices_failing, by["disk-encrypted"].devices_stale) == (0, 1)


def test_blocking_check_per_unit_and_outdated_per_row(app_fleet):
    _app, fleet, _c = app_fleet
    with fleet.store.engine.connect() as conn:
        ov = rd.overview(conn, rd.Scope(), NOW)
    assert ov.blocking[fleet.units[EB]] == ("disk-encrypted", 2)  # eb2, eb3 (eb1 passes now)
    assert ov.blocking[fleet.units[BU]] == ("firewall", 1)
    ids = {u.path: u.id for u in ov.units}
    assert ov.blocking[ids[IFO]] == ("disk-encrypted", 2)  # rolled up the tree
    assert ov.outdated[ids[AO]] == 1 and ov.outdated[ids[SOC]] == 1 == ov.agent_versions.outdated


def test_overview_page_worst_first_target_never_tile(app_fleet):
    _app, fleet, c = app_fleet
    html = c.get("/", params={"lang": "en", "sort": "readiness"}).text
    order = re.findall(r'<tr data-unit-id="(\d+)">', html)
    with fleet.store.engine.connect() as conn:
        tree = rd.unit_tree(conn, rd.Scope(), dt.datetime.now(dt.timezone.utc))
    pct = {str(u.id): u.ready_pct for u in tree}
    known = [pct[i] for i in order if pct[i] is not None]
    assert known == sorted(known) and len(order) == len(tree)
    assert re.search(r'id="never-reported">(\d+)<', html).group(1) == str(sum(
        u.counts.never_reported for u in tree if u.depth == 1))
    below = [u for u in tree if u.ready_pct is not None and u.ready_pct < 95]
    assert re.search(r'id="below-target">(\d+)<', html).group(1) == str(len(below))
    assert html.count('class="badge not_ready below-target"') == len(below)
    assert "Most common blocker" in html
    tree_order = re.findall(r'<tr data-unit-id="(\d+)">', c.get("/").text)
    assert sorted(tree_order) == sorted(order) and tree_order != order or len(order) < 2
