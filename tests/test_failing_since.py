"""Failing since and grace deadlines, kept at ingest from the device's previous state
(never by scanning history): a check's unbroken failing run keeps its start; a pass ends
it; a late report (older than the latest, stored as history) changes nothing; a run that
started without grace never gains it. On SQLite and PostgreSQL."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from readiness_fleet import NOW, build_fleet
from server.db import device_checks, device_state, utc

H = dt.timedelta(hours=1)


@pytest.fixture(scope="module")
def fleet(collector_db_url):
    from collector_fixtures import migrated_app

    app = migrated_app(collector_db_url)
    yield build_fleet(app.state.store)
    app.state.store.engine.dispose()


def runs(fleet, name):
    dev = fleet.devices[name].id
    with fleet.store.engine.connect() as conn:
        checks = {r.check_id: (utc(r.failing_since), utc(r.due_until))
                  for r in conn.execute(select(device_checks).where(device_checks.c.device_id == dev))}
        s = conn.execute(select(device_state).where(device_state.c.device_id == dev)).one()
    return checks, (utc(s.failing_since), utc(s.due_until), s.failing_hard)


def test_an_unbroken_run_keeps_its_start_and_a_pass_ends_it(fleet):
    # eb5 has never reported in the base fleet.
    fleet.report("eb5", 40, {"firewall": "fail"})
    fleet.report("eb5", 30, {"firewall": "unknown", "os-patched": "fail"})
    checks, device = runs(fleet, "eb5")
    assert checks["firewall"] == (NOW - 40 * H, None)  # fail → unknown: still not met, same run
    assert checks["os-patched"] == (NOW - 30 * H, None)
    assert checks["disk-encrypted"] == (None, None)
    assert device == (NOW - 40 * H, None, "firewall,os-patched")
    fleet.report("eb5", 20, {"os-patched": "fail"})  # firewall passes: its run ends
    checks, device = runs(fleet, "eb5")
    assert checks["firewall"] == (None, None) and checks["os-patched"] == (NOW - 30 * H, None)
    assert device == (NOW - 30 * H, None, "os-patched")
    fleet.report("eb5", 10, {"firewall": "fail", "os-patched": "fail"})  # a new run starts now
    checks, device = runs(fleet, "eb5")
    assert checks["firewall"] == (NOW - 10 * H, None)
    assert device[0] == NOW - 30 * H


def test_a_late_report_is_history_and_changes_no_run(fleet):
    before = runs(fleet, "eb5")
    # Older than the latest (10 h ago) and passing everything: kept as history only.
    d = fleet.devices["eb5"]
    d.seq += 5  # a higher sequence, but generated earlier than the stored state
    fleet.report("eb5", 15, status="history")
    assert runs(fleet, "eb5") == before


def test_grace_starts_with_the_run_and_is_never_granted_afterwards(fleet):
    # ao1: os-patched newly fails under a policy with 72 h grace → due until +72 h.
    fleet.report("ao1", 6, {"os-patched": "fail"}, grace={"os-patched": 72})
    checks, device = runs(fleet, "ao1")
    assert checks["os-patched"] == (NOW - 6 * H, NOW + 66 * H)
    assert device == (NOW - 6 * H, NOW + 66 * H, "")
    # The run continues under a policy with a longer grace: the deadline staff were shown stays.
    fleet.report("ao1", 5, {"os-patched": "fail"}, grace={"os-patched": 200})
    assert runs(fleet, "ao1")[0]["os-patched"] == (NOW - 6 * H, NOW + 66 * H)
    # A second check failing without grace makes the device hard-failing at once.
    fleet.report("ao1", 4, {"os-patched": "fail", "firewall": "fail"}, grace={"os-patched": 72})
    assert runs(fleet, "ao1")[1] == (NOW - 6 * H, NOW + 66 * H, "firewall")
    # bu1's firewall has been failing since before the policy gained a grace period: none.
    fleet.report("bu1", 0.5, {"firewall": "fail"}, grace={"firewall": 48})
    checks, device = runs(fleet, "bu1")
    assert checks["firewall"] == (NOW - 24 * H, None)
    assert device == (NOW - 24 * H, None, "firewall")


@pytest.mark.parametrize("bad", [0, -5, True, "72", 24 * 365 + 1, 1.5])
def test_a_grace_the_collector_cannot_trust_is_no_grace(bad):
    from server.store import check_runs

    row = check_runs([{"check_id": "x", "severity": "required", "status": "fail", "grace_hours": bad}], NOW)[0]
    assert row == {"check_id": "x", "severity": "required", "status": "fail", "failing_since": NOW,
                   "due_until": None}


def test_exceptions_cover_the_checks_without_grace(fleet):
    """A unit-wide exception on the check without grace leaves the graced one to decide: due."""
    from readiness_fleet import BU, EB
    from server import readiness as rd

    with fleet.store.engine.begin() as conn:
        rd.grant_exception(conn, fleet.users["so_all"], check_id="firewall", unit_id=fleet.units[BU],
                           expires_at=NOW + 240 * H, justification="central firewall", now=NOW - H)
    fleet.report("bu3", 0.25, {"firewall": "fail", "os-patched": "fail"}, grace={"os-patched": 48})
    fleet.report("eb4", 0.25, {"firewall": "fail", "os-patched": "fail"}, grace={"os-patched": 48})  # no exception
    fleet.report("eb6", 0.25, {"os-patched": "fail"}, grace={"os-patched": 2})
    with fleet.store.engine.connect() as conn:
        state = {name: rd.device_detail(conn, rd.Scope(), fleet.devices[name].id, NOW).device.state
                 for name in ("bu3", "eb4", "eb6")}
        later = rd.device_detail(conn, rd.Scope(), fleet.devices["eb6"].id, NOW + 2 * H).device.state
        tiles = {u.path: u for u in rd.overview(conn, rd.Scope(), NOW).units}
    assert state == {"bu3": "due", "eb4": "not_ready", "eb6": "due"}
    assert later == "not_ready"  # eb6's 2 h of grace ran out
    assert tiles[BU].counts.due >= 1 and tiles[EB].counts.due >= 1
