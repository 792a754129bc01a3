"""One definition of a device's state, seen the same from every view: a fleet with
reports across days and a weekend, exceptions (device and unit, one revoked), a revoked
device and a unit's max report age changed — and the tile, the tree's root, today's
trend point, the API and the export's rows agree by state, on SQLite and PostgreSQL.
The trend's closed days show the fleet's state at each day's end: a weekend without
reports is stale, not a collapse of readiness."""
from __future__ import annotations

import csv
import datetime as dt
import io

import pytest

from readiness_fleet import EB, IFO, NOW, PASSWORD, SOC, build_fleet
from server import readiness as rd
from server.local_time import DEFAULT_ZONE, local_midnight_after

H = dt.timedelta(hours=1)
D = NOW.date()
HT = "Hemtjänst"  # the grace-across-days unit (due_days)


@pytest.fixture(scope="module")
def app_fleet(collector_db_url):
    from fastapi.testclient import TestClient

    from collector_fixtures import migrated_app

    app = migrated_app(collector_db_url, max_overflow=4)
    fleet = build_fleet(app.state.store)
    store, so = fleet.store, fleet.users["so_all"]
    # History: bu3 reports every weekday for two weeks, nothing over the weekend before NOW.
    for back in range(16, 0, -1):
        day = D - dt.timedelta(days=back)
        if day.weekday() < 5:
            fleet.report("bu3", (NOW - dt.datetime.combine(day, dt.time(9), dt.timezone.utc)) / H)
    fleet.report("bu3", 0.5)
    with store.engine.begin() as conn:
        # A device exception that makes eb2 ready, a unit one on BU's firewall, one revoked.
        rd.grant_exception(conn, so, check_id="disk-encrypted", device_id=fleet.devices["eb2"].id,
                           expires_at=NOW + 24 * 20 * H, justification="encryption ordered, awaiting disk", now=NOW - H)
        rd.grant_exception(conn, so, check_id="firewall", unit_id=fleet.units[IFO + "/Barn och unga"],
                           expires_at=NOW + 24 * 20 * H, justification="central firewall replaces it", now=NOW - H)
        e = rd.grant_exception(conn, so, check_id="os-patched", device_id=fleet.devices["ao3"].id,
                               expires_at=NOW + 24 * 20 * H, justification="patch window next week", now=NOW - H)
        rd.revoke_exception(conn, so, e.id, "no longer needed", NOW - H / 2)
    store.set_unit_max_age(SOC + "/Äldreomsorg", 48)  # a policy change: AO's max age 72 h → 48 h
    store.revoke_device(fleet.devices["bu2"].id, "lost")
    # Grace periods. eb5: os-patched newly failing under 72 h of grace → due.
    fleet.report("eb5", 3, {"os-patched": "fail"}, grace={"os-patched": 72})
    # eb2: os-patched newly failing with 48 h of grace; disk-encrypted (no grace) is
    # covered by its device exception → due.
    fleet.report("eb2", 0.5, {"disk-encrypted": "fail", "os-patched": "fail"}, grace={"os-patched": 48})
    # eb3: already failing before its policy gained a grace period → no grace: not ready.
    fleet.report("eb3", 0.75, {"disk-encrypted": "fail", "os-patched": "unknown"},
                 grace={"disk-encrypted": 72, "os-patched": 72})
    # ao2: firewall failing for 30 h with 24 h of grace: the deadline (NOW − 6 h) passed → not ready.
    fleet.report("ao2", 30, {"firewall": "fail"}, grace={"firewall": 24})
    yield app, fleet
    app.state.store.engine.dispose()


def _day(k: int) -> dt.date:
    return D - dt.timedelta(days=k)


def _tile(conn, path: str, at: dt.datetime) -> dict[str, int]:
    row = next(u for u in rd.unit_tree(conn, rd.Scope(), at) if u.path == path)
    return {s: getattr(row.counts, s) for s in rd.STATES}


@pytest.fixture(scope="module")
def due_days(app_fleet):
    """Hemtjänst (24 h max age), reports sent day by day over the three days before NOW's,
    with os-patched given 48 h of grace; after each day the tiles are read at its end
    (local midnight), as an officer would have seen them then. By hand, at each end:

    ==== ========================= ============ ============ ====================
    dev  reports (UTC)             D-3          D-2          D-1 / now
    ==== ========================= ============ ============ ====================
    ht1  fail D-3 9h, D-2 9h,      due          due          not ready (deadline
         D-1 8h, D 11h                                       D-1 9h passed)
    ht2  fail D-2 10h, pass D-1,   never        due          ready
         pass D
    ht3  fail D-1 10h, D 11h       never        never        due (until D+1 10h)
    ht4  disk (no grace) + os      never        due (disk    not ready (the
         D-2 10h, D-1 9h, D 11h;                excepted)    exception ended)
         disk excepted D-2 11h → D-1 12h
    ht5  never reports             never        never        never
    ht6  pass D-3 9h only          ready        stale        stale
    ==== ========================= ============ ============ ====================
    """
    app, fleet = app_fleet
    fleet.enrol(HT, [f"ht{i}" for i in range(1, 7)])
    r = fleet.report
    g = {"os-patched": 48}
    at = lambda k, hour: (NOW - dt.datetime.combine(_day(k), dt.time(hour), dt.timezone.utc)) / H  # noqa: E731
    ends = {k: local_midnight_after(_day(k), DEFAULT_ZONE) for k in (3, 2, 1)}
    seen = {}

    def read_tiles(k: int) -> None:
        with fleet.store.engine.connect() as conn:
            seen[k] = _tile(conn, HT, ends[k])

    r("ht1", at(3, 9), {"os-patched": "fail"}, grace=g)
    r("ht6", at(3, 9))
    read_tiles(3)
    r("ht1", at(2, 9), {"os-patched": "fail"}, grace=g)
    r("ht2", at(2, 10), {"os-patched": "fail"}, grace=g)
    r("ht4", at(2, 10), {"disk-encrypted": "fail", "os-patched": "fail"}, grace=g)
    with fleet.store.engine.begin() as tx:
        rd.grant_exception(tx, fleet.users["so_all"], check_id="disk-encrypted", device_id=fleet.devices["ht4"].id,
                           expires_at=NOW - 24 * H, justification="disk swap booked for tomorrow",
                           now=NOW - at(2, 11) * H)
    read_tiles(2)
    r("ht1", at(1, 8), {"os-patched": "fail"}, grace=g)
    r("ht2", at(1, 10))
    r("ht3", at(1, 10), {"os-patched": "fail"}, grace=g)
    r("ht4", at(1, 9), {"disk-encrypted": "fail", "os-patched": "fail"}, grace=g)
    read_tiles(1)
    r("ht1", 1, {"os-patched": "fail"}, grace=g)
    r("ht2", 2)
    r("ht3", 1, {"os-patched": "fail"}, grace=g)
    r("ht4", 1, {"disk-encrypted": "fail", "os-patched": "fail"}, grace=g)
    return app, fleet, seen


def _counts(p) -> tuple[int, ...]:
    return tuple(p.count(s) for s in rd.STATES)  # ready, due, not_ready, stale, never_reported


def test_a_past_days_point_is_what_the_tiles_said_at_its_end_due_included(due_days):
    """Due across day boundaries: each closed day's point equals the tiles read at that
    day's end — devices inside their grace period shown as due, turned not ready once the
    deadline passed — counted afresh and then read back from the cache alike."""
    _app, fleet, seen = due_days
    assert seen[3] == dict(zip(rd.STATES, (1, 1, 0, 0, 4)))
    assert seen[2] == dict(zip(rd.STATES, (0, 3, 0, 1, 2)))
    assert seen[1] == dict(zip(rd.STATES, (1, 1, 2, 1, 1)))
    for _ in ("counted", "cached"):
        with fleet.store.engine.connect() as conn:
            points = rd.trend(conn, rd.Scope(), fleet.units[HT], NOW, days=4)
            conn.commit()
            now_tile = _tile(conn, HT, NOW)
        assert [p.day for p in points] == [_day(3), _day(2), _day(1), D]
        for k, p in zip((3, 2, 1), points):
            assert dict(zip(rd.STATES, _counts(p))) == seen[k], (k, p)
            assert p.ready_pct == rd.ready_share(seen[k])  # due counts with the ready ones, as on the tiles
        assert dict(zip(rd.STATES, _counts(points[-1]))) == now_tile == dict(zip(rd.STATES, (1, 1, 2, 1, 1)))
    from sqlalchemy import select

    from server.db import as_date, unit_day_ready as udr
    with fleet.store.engine.connect() as conn:
        cached = {as_date(d): n for d, n in conn.execute(select(udr.c.day, udr.c.due)
                                                         .where(udr.c.unit_id == fleet.units[HT]))}
    assert cached == {_day(k): seen[k]["due"] for k in (3, 2, 1)}


def test_a_cached_day_without_a_due_count_is_counted_again(due_days):
    """Rows counted before days kept a deadline (due NULL, migration 0016) are not read."""
    from sqlalchemy import update

    from server.db import unit_day_ready as udr
    _app, fleet, seen = due_days
    uid = fleet.units[HT]
    with fleet.store.engine.begin() as conn:
        rd.trend(conn, rd.Scope(), uid, NOW, days=4)
        assert conn.execute(update(udr).where(udr.c.unit_id == uid).values(due=None, ready=99, not_ready=0)).rowcount
    with fleet.store.engine.connect() as conn:
        points = rd.trend(conn, rd.Scope(), uid, NOW, days=4)
    assert [dict(zip(rd.STATES, _counts(p))) for p in points[:3]] == [seen[3], seen[2], seen[1]]


def _by_state(rows):
    out = {s: 0 for s in rd.STATES}
    for r in rows:
        out[r] += 1
    return out


@pytest.mark.parametrize("unit", [SOC, IFO, EB, HT])
def test_every_view_agrees_by_state(due_days, unit):
    app, fleet, _seen = due_days
    store = fleet.store
    uid = fleet.units.get(unit) or next(u["id"] for u in store.list_units() if u["path"] == unit)
    with store.engine.connect() as conn:
        ov = rd.overview(conn, rd.Scope(), NOW)
        tile = next(u for u in ov.units if u.path == unit)
        tree_row = next(u for u in rd.unit_tree(conn, rd.Scope(), NOW) if u.path == unit)
        detail = rd.unit_detail(conn, rd.Scope(), uid, NOW)
        today = rd.trend(conn, rd.Scope(), uid, NOW, days=14)[-1]
        export = list(rd.export_records(conn, rd.Scope(), uid, NOW))
    want = {s: getattr(tile.counts, s) for s in rd.STATES}
    assert sum(want.values()) == tile.total > 0
    assert {s: getattr(tree_row.counts, s) for s in rd.STATES} == want
    assert {s: getattr(detail.summary.counts, s) for s in rd.STATES} == want
    assert {s: today.count(s) for s in rd.STATES} == want and today.day == D
    assert today.ready_pct == tile.ready_pct == detail.summary.ready_pct
    assert _by_state(r[rd.EXPORT_COLUMNS.index("state")] for r in export) == want
    assert detail.devices.total == tile.total
    assert tile.ready_pct == rd.percent(want["ready"] + want["due"], tile.total)  # due counts with ready
    if unit != EB:
        return
    assert want["due"] == 2 and want["not_ready"] == 1  # eb2, eb5 due; eb3 not ready (no retroactive grace)
    # Failing since, the same in the device rows, the export and the device page.
    col = rd.EXPORT_COLUMNS.index
    by_host = {r[col("hostname")]: r for r in export}
    with store.engine.connect() as conn:
        for name in ("eb2", "eb3", "eb5"):
            page = rd.device_detail(conn, rd.Scope(), fleet.devices[name].id, NOW).device
            row = by_host[f"{name}-laptop"]
            assert (row[col("state")], row[col("failing_since")], row[col("due_until")]) == \
                (page.state, page.failing_since, page.due_until)
    assert by_host["eb5-laptop"][col("failing_since")] == NOW - 3 * H
    assert by_host["eb5-laptop"][col("due_until")] == NOW + 69 * H
    assert by_host["eb2-laptop"][col("due_until")] == NOW + 47.5 * H
    assert by_host["eb3-laptop"][col("failing_since")] == NOW - 3 * H and by_host["eb3-laptop"][col("due_until")] is None
    # The unit page's failing-longest list: oldest first, only fresh, uncovered, required checks.
    runs = [(r.hostname, r.check_id, r.failing_since) for r in detail.failing_longest]
    assert [x[2] for x in runs] == sorted(x[2] for x in runs) and len(runs) == 4
    assert ("eb3-laptop", "disk-encrypted", NOW - 3 * H) in runs and ("eb5-laptop", "os-patched", NOW - 3 * H) in runs
    assert not any(h == "eb2-laptop" and c == "disk-encrypted" for h, c, _ in runs)  # covered by its exception
    oldest = {f.check_id: f.failing_since for f in detail.failing_checks}
    assert oldest["os-patched"] == NOW - 3 * H


def test_due_is_a_function_of_time(app_fleet):
    """No job runs at the deadline: the same stored state, judged at two moments."""
    _app, fleet = app_fleet
    ao2 = fleet.devices["ao2"].id
    with fleet.store.engine.connect() as conn:
        before = rd.device_detail(conn, rd.Scope(), ao2, NOW - 10 * H).device
        after = rd.device_detail(conn, rd.Scope(), ao2, NOW).device
    assert (before.state, before.due_until) == ("due", NOW - 6 * H)
    assert (after.state, after.due_until, after.failing_since) == ("not_ready", None, NOW - 30 * H)


def test_api_agrees_with_the_tiles(app_fleet):
    from fastapi.testclient import TestClient

    app, fleet = app_fleet
    # The API judges at its own "now"; compare it with the views at that moment.
    c = TestClient(app, base_url="https://testserver")
    assert c.post("/api/v1/login", json={"username": "so_all", "password": PASSWORD}).status_code == 200
    uid = fleet.units[EB]
    unit = c.get(f"/api/v1/units/{uid}").json()
    trend = c.get(f"/api/v1/units/{uid}/trend", params={"days": 7}).json()
    rows = list(csv.reader(io.StringIO(c.get(f"/api/v1/units/{uid}/export.csv").text)))
    c.close()
    counts = unit["summary"]["counts"] if "summary" in unit else unit["counts"]
    assert {s: trend[-1][s] for s in rd.STATES} == {s: counts[s] for s in rd.STATES}
    assert _by_state(r[3] for r in rows[1:]) == {s: counts[s] for s in rd.STATES}


def test_the_api_trend_shows_past_due_days_as_the_tiles_did(due_days, monkeypatch):
    """The API's trend, unit and export at NOW (its clock set there): the past days as the
    tiles were at each day's end, today as the unit and the export rows."""
    from fastapi.testclient import TestClient

    from server import api

    app, fleet, seen = due_days
    monkeypatch.setattr(api, "_now", lambda: NOW)
    c = TestClient(app, base_url="https://testserver")
    assert c.post("/api/v1/login", json={"username": "so_all", "password": PASSWORD}).status_code == 200
    uid = fleet.units[HT]
    trend = c.get(f"/api/v1/units/{uid}/trend", params={"days": 4}).json()
    unit = c.get(f"/api/v1/units/{uid}").json()
    rows = list(csv.reader(io.StringIO(c.get(f"/api/v1/units/{uid}/export.csv").text)))
    c.close()
    assert [p["day"] for p in trend] == [d.isoformat() for d in (_day(3), _day(2), _day(1), D)]
    assert [{s: p[s] for s in rd.STATES} for p in trend[:3]] == [seen[3], seen[2], seen[1]]
    counts = unit["summary"]["counts"] if "summary" in unit else unit["counts"]
    assert {s: trend[-1][s] for s in rd.STATES} == {s: counts[s] for s in rd.STATES} == \
        _by_state(r[3] for r in rows[1:])
    assert counts["due"] == 1 and counts["not_ready"] == 2


def test_a_weekend_without_reports_is_stale_not_a_collapse(app_fleet):
    _app, fleet = app_fleet
    with fleet.store.engine.connect() as conn:
        points = {p.day: p for p in rd.trend(conn, rd.Scope(), fleet.units[IFO + "/Barn och unga"], NOW, days=14)}
    bu3 = fleet.devices["bu3"]
    assert bu3  # bu3 reports weekdays only; bu1 failing firewall (excepted unit-wide only from NOW-1h)
    for day, p in points.items():
        if day == D:
            continue
        assert p.ready + p.due + p.not_ready + p.stale + p.never_reported == p.devices
        if day.weekday() >= 5:  # Saturday, Sunday: bu3's latest report is Friday's, stale
            assert p.ready == 0 and p.stale >= 1, (day, p)
        else:
            assert p.ready == 1, (day, p)  # bu3 on a weekday: fresh and passing


def test_closed_days_judge_from_the_latest_report_before_the_day_ended(app_fleet):
    _app, fleet = app_fleet
    with fleet.store.engine.connect() as conn:
        eb = rd.trend(conn, rd.Scope(), fleet.units[EB], NOW, days=3)
    # By hand (EB, 7 devices, 24 h max age): two days ago only eb1 had reported (passing);
    # yesterday eb1's latest failed disk-encrypted and eb4 passed; today = the tiles.
    assert [(p.ready, p.not_ready, p.stale, p.never_reported) for p in eb[:2]] == [(1, 0, 0, 6), (1, 1, 0, 5)]


@pytest.fixture(scope="module")
def due_fleet(app_fleet):
    """The fleet with devices inside a grace period too: ao1 due (72 h grace on os-patched),
    eb3 failing one check with grace and one without (not ready, not due)."""
    app, fleet = app_fleet
    fleet.report("ao1", 2, {"os-patched": "fail"}, grace={"os-patched": 72})
    fleet.report("eb3", 2, {"os-patched": "fail", "firewall": "fail"}, grace={"os-patched": 72})
    return app, fleet


@pytest.mark.parametrize("later_h", [0, 6, 30, 60, 80, 24 * 30])
def test_grouped_state_counts_equal_the_per_device_definition(due_fleet, later_h):
    """The overview's fast count (state_of applied once per group of alike devices) is the
    per-device definition summed — at several moments, so staleness, grace deadlines and
    the exceptions' expiry move devices between states, for the whole fleet and for each
    unit alone."""
    from sqlalchemy import func, select

    app, fleet = due_fleet
    now = NOW + later_h * H
    with fleet.store.engine.connect() as conn:
        for unit_ids in [None] + [[u] for u in sorted(fleet.units.values())]:
            st = rd.device_states(conn, now, unit_ids).subquery("st")
            want = {(int(r.unit_id), r.state, r.agent_version): int(r.n) for r in conn.execute(
                select(st.c.unit_id, st.c.state, st.c.agent_version, func.count().label("n"))
                .group_by(st.c.unit_id, st.c.state, st.c.agent_version))}
            got = {(u, s, v): n for u, s, v, n in rd.state_counts(conn, now, unit_ids)}
            assert got == want
            if unit_ids is None and later_h == 0:  # the fleet shows every state the rule decides by time
                assert {s for _u, s, _v in got} >= {"ready", "due", "not_ready", "stale"}


def _per_device_rollup(conn, now, tree):
    """The overview's numbers from the per-device definition (device_states, each device
    judged on its own row) rolled up by subtree: per unit its devices by state, and the
    required checks keeping its due and not-ready devices back (uncovered), by device count."""
    from sqlalchemy import select

    st = rd.device_states(conn, now).subquery("st")
    rows = conn.execute(select(st.c.id, st.c.unit_id, st.c.unit_path, st.c.state, st.c.failing_required)).all()
    cover = rd.exception_cover(conn, now)
    counts, blocking = {}, {}
    for u in tree:
        below = [r for r in rows if r.unit_path == u.path or r.unit_path.startswith(u.path + "/")]
        counts[u.path] = _by_state(r.state for r in below)
        checks: dict[str, int] = {}
        for r in below:
            if r.state in (rd.DUE, rd.NOT_READY):
                for c in cover.split(r.failing_required, r.unit_id, r.id)[0]:
                    checks[c] = checks.get(c, 0) + 1
        if checks:
            blocking[u.path] = min(checks.items(), key=lambda kv: (-kv[1], kv[0]))
    return counts, blocking


@pytest.mark.parametrize("later_h", [0, 1, 6, 23.5, 30, 47, 49, 60, 73, 80, 24 * 21, 24 * 30])
def test_overview_and_tree_follow_time_without_reports(due_fleet, later_h):
    """No report arrives while time passes: devices go stale (24 h, and 48 h in
    Äldreomsorg), grace periods run out (ao1's 72 h, eb5's, eb2's) and exceptions expire
    (20 days) — the overview's and the tree's counts and the overview's blocking checks,
    read from the counts kept at ingest, stay equal to every device judged on its own row
    at that moment, for every unit's subtree."""
    _app, fleet = due_fleet
    now = NOW + later_h * H
    with fleet.store.engine.connect() as conn:
        ov = rd.overview(conn, rd.Scope(), now)
        tree = rd.unit_tree(conn, rd.Scope(), now)
        want, want_blocking = _per_device_rollup(conn, now, tree)
    assert [u.path for u in ov.units] == [u.path for u in tree]
    for u in ov.units:
        assert {s: getattr(u.counts, s) for s in rd.STATES} == want[u.path], (later_h, u.path)
        assert u.total == sum(want[u.path].values())
    for u in tree:
        assert {s: getattr(u.counts, s) for s in rd.STATES} == want[u.path], (later_h, u.path)
    assert {next(u.path for u in tree if u.id == uid): b for uid, b in ov.blocking.items()} == want_blocking
    root = want[SOC]
    if later_h == 0:
        assert root["due"] and root["not_ready"] and root["ready"]
    if later_h >= 24 * 30:  # everything stale: nothing left to block
        assert root["stale"] == sum(root.values()) - root["never_reported"] and not want_blocking


@pytest.mark.parametrize("lang", ["sv", "da", "en"])
def test_the_unit_chart_draws_past_due_days_with_legend_and_rule(due_days, monkeypatch, lang):
    """30 h after NOW ht3's deadline has passed, so today has no due device: the due band
    the unit page draws is past days' alone — with its legend entry, and the rule under
    the chart names the state, in each language."""
    import re

    from fastapi.testclient import TestClient

    from server import api, web_auth
    from server.i18n_web import Translator

    app, fleet, _seen = due_days
    later = NOW + 30 * H
    for mod in (api, web_auth):
        monkeypatch.setattr(mod, "_now", lambda: later)
    monkeypatch.setattr(app.state.web, "now", lambda: later)
    with fleet.store.engine.connect() as conn:
        points = rd.trend(conn, rd.Scope(), fleet.units[HT], later, days=90)
    assert points[-1].due == 0 and [p.day for p in points if p.due] == [_day(3), _day(2), _day(1), D]
    c = TestClient(app, base_url="https://testserver")
    assert c.post("/api/v1/login", json={"username": "so_all", "password": PASSWORD}).status_code == 200
    html = c.get(f"/units/{fleet.units[HT]}", params={"lang": lang}).text
    c.close()
    t = Translator(lang)
    chart = re.search(r'<section class="trend card".*?</section>', html, re.S).group(0)
    due_band = re.search(r'<polygon class="band band-due" fill="([^"]+)" points="([^"]+)"', chart)
    assert due_band, chart[:2000]
    ys = {float(xy.split(",")[1]) for xy in due_band.group(2).split()}
    assert len(ys) > 1  # a band with height, not a line along the bottom
    legend = re.search(r'<div class="legend".*?</div>', chart, re.S).group(0)
    assert f'var(--due)"></i>{t("state.due")}</span>' in legend
    rule = re.search(r'<p[^>]*id="trend-rule"[^>]*>(.*?)</p>', chart, re.S).group(1)
    assert t("state.due").lower() in rule.lower() and t("state.not_ready").lower() in rule.lower()


@pytest.mark.parametrize("later_h", [0, 24 * 30])
def test_export_failing_and_excepted_checks_equal_the_device_list(app_fleet, later_h):
    """The export splits each device's failing required checks (kept on device_state) by
    the request's exception cover; the unit page's list looks each check up in SQL. Both
    give every device the same failing and excepted checks — with the exceptions active,
    and after they expired."""
    app, fleet = app_fleet
    now = NOW + later_h * H
    col = rd.EXPORT_COLUMNS.index
    with fleet.store.engine.connect() as conn:
        root = next(u.id for u in rd.unit_tree(conn, rd.Scope(), now) if u.path == SOC)
        export = {r[col("device_id")]: r for r in rd.export_records(conn, rd.Scope(), root, now)}
        listed = rd.unit_detail(conn, rd.Scope(), root, now, per_page=rd.MAX_PER_PAGE).devices.items
    assert len(export) == len(listed) > 10
    for d in listed:
        row = export[d.id]
        assert (row[col("failing_checks")], row[col("excepted_checks")]) == (d.failing_checks, d.excepted_checks), d.id
        assert row[col("state")] == d.state
    excepted = {d.id for d in listed if d.excepted_checks}
    assert bool(excepted) == (later_h == 0)  # eb2's device exception and BU's unit one, until they expire


@pytest.mark.parametrize("later_h", [0, 30, 24 * 30])
def test_the_unit_pages_devices_are_the_per_device_definition_sorted(due_fleet, later_h, monkeypatch):
    """A unit page's list of devices, page by page (by state, then hostname), is every
    device of the subtree with its per-device state in that order — whichever way a page
    is found (walking the hostname index or judging the state's candidates): each state's
    slices equal the sorted per-device list at every offset, both ways, and the pages of
    unit_detail concatenated are the whole list."""
    from sqlalchemy import select

    from server.readiness.devices import STATE_ORDER
    from server.readiness.state_page import devices_in_state

    from sqlalchemy import update

    from server.db import devices as dv
    from server.readiness import state_page

    app, fleet = due_fleet
    if "eb8" not in fleet.devices:
        fleet.enrol(EB, ["eb8"])  # one never reported (the tests after this one compare definitions only)
        with fleet.store.engine.begin() as conn:  # two laptops named alike (the agent names them): id decides
            conn.execute(update(dv).where(dv.c.id == fleet.devices["eb6"].id).values(hostname="eb5-laptop"))
    monkeypatch.setattr(state_page, "MIN_BATCH", 1)  # walks of many short batches, each after the last key
    now = NOW + later_h * H
    scope = rd.Scope.all()
    seen_states = set()
    with fleet.store.engine.connect() as conn:
        for path, uid in sorted(fleet.units.items()):
            tree = {u.id: u for u in rd.overview(conn, scope, now, why=False).units}
            ids = [u.id for u in tree.values() if u.path == path or u.path.startswith(path + "/")]
            ds = rd.device_state_rows(conn, scope, now, unit_ids=ids).subquery("ds")
            every = [dict(r) for r in conn.execute(select(ds)).mappings()]
            every.sort(key=lambda r: (STATE_ORDER[r["state"]], r["hostname"], r["id"]))
            cover = rd.exception_cover(conn, now, ids)
            for st in rd.STATES:
                want = [r["id"] for r in every if r["state"] == st]
                assert len(want) == getattr(tree[uid].counts, st)
                seen_states |= {st} if want else set()
                for fleet_n in (0, 10 ** 9):  # 0: the walk looks cheapest; 10⁹: the scan does
                    for offset in range(len(want) + 1):
                        for limit in (1, 2, 5):
                            got = devices_in_state(conn, scope, now, ids, st, offset=offset, limit=limit,
                                                   in_state=len(want), in_subtree=len(every), fleet=fleet_n,
                                                   cover=cover)
                            assert [r["id"] for r in got] == want[offset:offset + limit], (path, st, fleet_n, offset)
            for state in (None, *rd.STATES):
                listed, page = [], 1
                while True:
                    d = rd.unit_detail(conn, scope, uid, now, state=state, page=page, per_page=2)
                    listed += [(r.id, r.state) for r in d.devices.items]
                    if page * 2 >= d.devices.total:
                        break
                    page += 1
                assert listed == [(r["id"], r["state"]) for r in every if state in (None, r["state"])], (path, state)
    if later_h == 0:
        assert seen_states >= {"ready", "due", "not_ready", "stale", "never_reported"}


@pytest.mark.parametrize("later_h", [0, 30, 24 * 30])
def test_the_checks_failing_most_are_the_failing_rows_counted(due_fleet, later_h):
    """A unit page's checks failing most — counted from the groups of alike devices for the
    required checks — are each failing row of device_checks judged one by one: on a fresh
    report uncovered (with its oldest run), covered by an exception (the device's, or its
    unit's or an ancestor's), or stale; recommended checks alike. At moments that make
    reports stale and exceptions expire, with a device exception on a device that fails
    more than the excepted check."""
    from sqlalchemy import select

    from server.db import device_checks as dc, device_state as s, devices as dv, utc
    from server.store import FAILING_STATUSES

    app, fleet = due_fleet
    now = NOW + later_h * H
    scope = rd.Scope.all()
    with fleet.store.engine.connect() as conn:
        tree = {u.id: u for u in rd.overview(conn, scope, now, why=False).units}
        cover = rd.exception_cover(conn, now)
        rows = conn.execute(select(dc.c.device_id, dc.c.check_id, dc.c.severity, dc.c.failing_since, s.c.unit_id,
                                   s.c.generated_at, s.c.last_report_id)
                            .join(s, s.c.device_id == dc.c.device_id).join(dv, dv.c.id == dc.c.device_id)
                            .where(dc.c.status.in_(FAILING_STATUSES), dv.c.revoked_at.is_(None))).all()
        states = {r.id: r.state for r in conn.execute(select(rd.device_states(conn, now).subquery("st")))}
        seen = set()
        for path, uid in sorted(fleet.units.items()):
            ids = {u.id for u in tree.values() if u.path == path or u.path.startswith(path + "/")}
            want: dict[tuple[str, str], list] = {}
            for r in rows:
                if r.unit_id not in ids:
                    continue
                w = want.setdefault((r.check_id, r.severity), [0, 0, 0, None])
                covered = (r.check_id, r.unit_id) in cover.unit_checks or (r.check_id, r.device_id) in cover.device_checks
                if states[r.device_id] == "stale":
                    w[2] += 1
                elif covered:
                    w[1] += 1
                    seen.add("excepted")
                else:
                    w[0] += 1
                    since = utc(r.failing_since)
                    w[3] = since if w[3] is None or (since and since < w[3]) else w[3]
                seen.add(r.severity)
            got = rd.unit_detail(conn, scope, uid, now, failing_limit=100).failing_checks
            assert {(f.check_id, f.severity): [f.devices_failing, f.devices_excepted, f.devices_stale, f.failing_since]
                    for f in got} == want, path
    if later_h == 0:
        assert seen >= {"required", "recommended", "excepted"}


def _groups_as_stored(conn):
    """unit_state_deltas summed, and the same groups counted straight off device_state (the
    group key includes the stored stale and within-grace flags, 0022)."""
    from sqlalchemy import func, select

    from server.db import device_state as s, unit_state_deltas as d

    kept = {(r.unit_id, r.agent_version, r.failing_required, r.failing_hard, r.stale, r.due): (int(r.n), int(r.never))
            for r in conn.execute(select(d.c.unit_id, d.c.agent_version, d.c.failing_required, d.c.failing_hard,
                                         d.c.stale, d.c.due,
                                         func.sum(d.c.n).label("n"), func.sum(d.c.never).label("never"))
                                  .group_by(d.c.unit_id, d.c.agent_version, d.c.failing_required, d.c.failing_hard,
                                            d.c.stale, d.c.due))}
    direct = {}
    for r in conn.execute(select(s.c.unit_id, s.c.agent_version, s.c.failing_required, s.c.failing_hard,
                                 s.c.counted_stale, s.c.counted_due, s.c.last_report_id)
                          .where(s.c.unit_id.is_not(None))):
        key = (r.unit_id, r.agent_version, r.failing_required, r.failing_hard, r.counted_stale, r.counted_due)
        n, nv = direct.get(key, (0, 0))
        direct[key] = (n + 1, nv + (r.last_report_id is None))
    return {k: v for k, v in kept.items() if v != (0, 0)}, direct


def _assert_counts_agree(conn, fleet, moments):
    from sqlalchemy import func, select

    for later_h in moments:
        now = NOW + later_h * H
        for unit_ids in [None] + [[u] for u in sorted(fleet.units.values())]:
            st = rd.device_states(conn, now, unit_ids).subquery("st")
            want = {(int(r.unit_id), r.state, r.agent_version): int(r.n) for r in conn.execute(
                select(st.c.unit_id, st.c.state, st.c.agent_version, func.count().label("n"))
                .group_by(st.c.unit_id, st.c.state, st.c.agent_version))}
            assert {(u, s, v): n for u, s, v, n in rd.state_counts(conn, now, unit_ids)} == want, (later_h, unit_ids)


def test_counts_kept_at_ingest_follow_every_change(due_fleet):
    """The per-unit group counts kept at ingest (unit_state_deltas, written by triggers on
    device_state) equal device_state grouped, and the dashboard's counts read from them
    equal the per-device definition — after a new failing report, a late report (history
    only), a device revoked, a device exception granted, a unit's max age changed, at
    moments past grace deadlines and staleness cut-offs, and after the rows are folded
    together (compaction). Runs last: it changes the shared fleet."""
    app, fleet = due_fleet
    store, so = fleet.store, fleet.users["so_all"]
    fleet.report("eb4", 0.25, {"screen-lock": "fail", "firewall": "fail"}, grace={"screen-lock": 12})
    fleet.report("eb1", 20, {"disk-encrypted": "fail"}, status="history")  # older than eb1's latest
    store.revoke_device(fleet.devices["eb6"].id, "decommissioned")
    with store.engine.begin() as conn:
        rd.grant_exception(conn, so, check_id="firewall", device_id=fleet.devices["eb4"].id,
                           expires_at=NOW + 24 * 5 * H, justification="firewall replaced by the VPN client", now=NOW)
    store.set_unit_max_age(EB, 4)  # eb7 (5 h) becomes stale
    with store.engine.connect() as conn:
        kept, direct = _groups_as_stored(conn)
        assert kept == direct
        eb = {s: n for u, s, _v, n in rd.state_counts(conn, NOW, [fleet.units[EB]])}
        assert eb.get("due", 0) >= 1 and eb.get("stale", 0) >= 1  # eb4 due (screen-lock in grace, firewall excepted)
        _assert_counts_agree(conn, fleet, [0, 5, 13, 30, 24 * 6])
    with store.engine.begin() as conn:
        assert rd.compact_groups(conn) > len(kept)  # more rows than groups were kept; folded to one each
    with store.engine.connect() as conn:
        after, direct = _groups_as_stored(conn)
        assert after == kept == direct
        from sqlalchemy import func, select

        from server.db import unit_state_deltas
        assert conn.execute(select(func.count()).select_from(unit_state_deltas)).scalar_one() == len(kept)
        _assert_counts_agree(conn, fleet, [0, 13])
